"""Error answers of the package's routes: one JSON shape, `{"error": {type, message, field?}}`,
and a validation failure as a 400 naming the field that failed."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..parallel_runs.validation import first_problem


def error_response(status: int, kind: str, message: str, field: str | None = None) -> web.Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


def invalid(error: ValidationError, root: str, kind: str) -> web.Response:
    """A 400 for what pydantic refused in the request's `root` ("query", "body")."""
    field, message = first_problem(error, root)
    return error_response(400, kind, message, field)
