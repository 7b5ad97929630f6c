"""The jobs API's query (`GET /jobs?status=...&limit=...`) and what it selects: filters, order,
one page. Pure.

The query is the jobs API's as ComfyUI documents it (status list, workflow_id, sort_by,
sort_order, limit, offset) plus `parallel_client`. Unknown parameters are ignored, as ComfyUI
ignores them: frontends add parameters over versions, and refusing one would empty their list.
The parameters it knows are checked (400 with the parameter's name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .shapes import JOB_STATUSES

CLIENT_PARAM = "parallel_client"
CLIENT_PATTERN = r"^[\x21-\x7e]{1,200}$"  # a client id: printable, no spaces
PAGE_PARAMS = ("limit", "offset")


class JobsQuery(BaseModel):
    """Query string of GET /jobs."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: list[str] | None = None
    workflow_id: str | None = Field(default=None, max_length=200)
    sort_by: Literal["created_at", "execution_duration"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    limit: int | None = Field(default=None, gt=0)
    offset: int = 0
    parallel_client: str | None = Field(default=None, pattern=CLIENT_PATTERN)

    @field_validator("status", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        """`pending,in_progress` as a list; each must be a status the jobs API knows."""
        if not isinstance(value, str):
            return value
        statuses = [part.strip().lower() for part in value.split(",") if part.strip()]
        unknown = [s for s in statuses if s not in JOB_STATUSES]
        if unknown:
            raise ValueError(
                f"unknown status {', '.join(unknown)[:100]} (known: {', '.join(JOB_STATUSES)})"
            )
        return statuses or None

    @field_validator("sort_by", "sort_order", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("offset")
    @classmethod
    def _not_before_start(cls, value: int) -> int:
        return max(value, 0)


def client_only(query: Mapping[str, str]) -> str | None:
    """`parallel_client` of any list route's query, checked; None when absent.
    Raises ValueError (the route answers 400) when it is not a client id."""
    value = query.get(CLIENT_PARAM)
    if value is None:
        return None
    return JobsQuery.model_validate({CLIENT_PARAM: value}).parallel_client


def matches(job: Mapping[str, Any], query: JobsQuery) -> bool:
    """Whether a job passes the query's status and workflow filters."""
    if query.status is not None and job.get("status") not in query.status:
        return False
    return query.workflow_id is None or job.get("workflow_id") == query.workflow_id


def _duration(job: Mapping[str, Any]) -> float:
    start, end = job.get("execution_start_time"), job.get("execution_end_time")
    return float(end - start) if start and end else 0.0


def ordered(jobs: Iterable[dict[str, Any]], query: JobsQuery) -> list[dict[str, Any]]:
    """Jobs in the query's order: by creation time (default) or by how long they ran."""
    if query.sort_by == "execution_duration":
        return sorted(jobs, key=_duration, reverse=query.sort_order == "desc")
    return sorted(
        jobs, key=lambda job: float(job.get("create_time") or 0), reverse=query.sort_order == "desc"
    )


def page(jobs: list[dict[str, Any]], query: JobsQuery) -> dict[str, Any]:
    """The answer of GET /jobs: one page of `jobs` (already filtered and ordered) and where it
    is. `limit` is always a number (the frontend requires one): the page size asked for, or
    every job when none was."""
    total = len(jobs)
    end = total if query.limit is None else query.offset + query.limit
    shown = jobs[query.offset : end]
    return {
        "jobs": shown,
        "pagination": {
            "offset": query.offset,
            "limit": query.limit if query.limit is not None else total,
            "total": total,
            "has_more": query.offset + len(shown) < total,
        },
    }
