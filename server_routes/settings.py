"""Server-side configuration of the package, read from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

_FALSE = {"0", "false", "no", "off"}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    return default if value is None or not value.strip() else value.strip().lower() not in _FALSE


class Settings(BaseModel):
    """What an operator can switch; everything defaults to on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scoped_progress_text: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(scoped_progress_text=_flag(env, "PARALLEL_RUNS_SCOPED_PROGRESS_TEXT", True))
