"""What frontend 1.58.1 accepts from the jobs API, as pydantic models: a copy of its zod schema
(`zJobsListResponse`, `zRawJobListItem` in src/platform/remote/comfyui/jobs/jobTypes.ts of
ComfyUI_frontend, read from the source map the wheel ships). The frontend shows no job at all
when one entry fails it, so every answer the tests get from /jobs is checked against this."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

# zod `.optional()`: may be left out, never null; `.nullable()`: may be null. A field typed
# without None and defaulting to None is "optional, not nullable" (defaults are not validated).

Number = StrictInt | StrictFloat  # a JSON number (zod: z.number()), never a bool or a string


class ZodModel(BaseModel):
    model_config = ConfigDict(extra="allow")  # zod .passthrough()


class ExecutionError(ZodModel):
    prompt_id: StrictStr = None  # type: ignore[assignment]
    timestamp: Number = None  # type: ignore[assignment]
    node_id: StrictStr
    node_type: StrictStr
    executed: list[StrictStr] = None  # type: ignore[assignment]
    exception_message: StrictStr
    exception_type: StrictStr
    traceback: list[StrictStr]


class PreviewOutput(ZodModel):
    filename: StrictStr = None  # type: ignore[assignment]
    subfolder: StrictStr = None  # type: ignore[assignment]
    type: Literal["input", "output", "temp"] = None  # type: ignore[assignment]
    nodeId: StrictStr
    mediaType: StrictStr
    content: StrictStr = None  # type: ignore[assignment]
    display_name: StrictStr = None  # type: ignore[assignment]


class RawJob(ZodModel):
    id: StrictStr
    status: Literal["pending", "in_progress", "completed", "failed", "cancelled"]
    create_time: Number
    execution_start_time: Number | None = None
    execution_end_time: Number | None = None
    preview_output: PreviewOutput | None = None
    outputs_count: StrictInt | None = None
    previewable_outputs_count: StrictInt | None = None
    execution_error: ExecutionError | None = None
    workflow_id: StrictStr | None = None
    priority: Number = None  # type: ignore[assignment]


class Pagination(BaseModel):
    offset: Number
    limit: Number
    total: Number
    has_more: StrictBool


class JobsList(BaseModel):
    jobs: list[RawJob]
    pagination: Pagination
