"""Prompts in the shapes of ComfyUI's list routes. Pure functions over plain values.

Two shapes:
- a *queue item*, as `GET /queue` lists it: `[number, prompt_id, prompt, extra_data,
  outputs_to_execute]` (ComfyUI 0.3.75's PromptQueue tuple without its sensitive part);
- a *job*, as the jobs API (`GET /jobs`, ComfyUI >= 0.4) lists it and the newest frontend
  parses it (zod, `zRawJobListItem`): `id`, `status` (pending, in_progress, completed, failed,
  cancelled), `create_time` (ms, required), `execution_start_time`, `execution_end_time`,
  `execution_error` (node_id, node_type, exception_message, exception_type and traceback all
  required), `outputs_count`, `previewable_outputs_count` (integers), `preview_output`
  (`nodeId` and `mediaType` required), `workflow_id`, `priority`; other keys are kept.

A local job is built from a queue item or a history entry the way ComfyUI's own jobs API
describes them. An offloaded job is built from the summary the offload registry keeps
(`JobRecord.summary()`); it also carries `parallel_runs: {executor}` (kept by the frontend,
which renders no field that could name it; the web extension labels it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from ...parallel_runs.client.comfy_client import OFFLOADED_KEY

PENDING, IN_PROGRESS = "pending", "in_progress"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
JOB_STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
ACTIVE_STATUSES = frozenset({PENDING, IN_PROGRESS})
# the offload registry's statuses as the jobs API names them
FROM_OFFLOADED = {
    "queued": PENDING,
    "running": IN_PROGRESS,
    "success": COMPLETED,
    "error": FAILED,
    "interrupted": CANCELLED,
}
PACKAGE_KEY = OFFLOADED_KEY  # where an offloaded prompt says where it runs

PREVIEW_MEDIA = frozenset({"images", "video", "audio", "3d", "text"})
MODEL_SUFFIXES = frozenset({".obj", ".fbx", ".gltf", ".glb", ".usdz"})
TEXT_SUFFIXES = frozenset({".txt", ".md", ".json"})
TEXT_PREVIEW_CHARS = 1024
_END_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


def _number(value: Any) -> int | float | None:
    """A JSON number, not a bool."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ms(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _pruned(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Without the fields that have no value (the jobs API leaves them out)."""
    return {key: value for key, value in fields.items() if value is not None}


# --- local prompts ------------------------------------------------------------------------------


def extra_data_of(item: Sequence[Any]) -> Mapping[str, Any]:
    extra = item[3] if len(item) > 3 else None
    return extra if isinstance(extra, Mapping) else {}


def client_of_item(item: Sequence[Any]) -> str | None:
    """The client id that queued a queue item (None: a script that gave none)."""
    client = extra_data_of(item).get("client_id")
    return client if isinstance(client, str) and client else None


def workflow_of(extra: Mapping[str, Any]) -> str | None:
    """The UI workflow's id, which names the frontend's workflow tab."""
    pnginfo = extra.get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, Mapping) else None
    value = workflow.get("id") if isinstance(workflow, Mapping) else None
    return str(value) if isinstance(value, str | int) and value != "" else None


def without_secrets(item: Sequence[Any]) -> list[Any]:
    """A queue item as it may be listed: its first five parts (the sixth is sensitive)."""
    return list(item[:5])


def job_from_queue_item(item: Sequence[Any], status: str) -> dict[str, Any]:
    """A running (`in_progress`) or waiting (`pending`) local prompt as a job."""
    extra = extra_data_of(item)
    return _pruned(
        {
            "id": str(item[1]),
            "status": status,
            "priority": _number(item[0]),
            "create_time": _ms(extra.get("create_time")) or 0,
            "outputs_count": 0,
            "previewable_outputs_count": 0,
            "workflow_id": workflow_of(extra),
        }
    )


def _events(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A history entry's recorded events by name (the last of each name)."""
    found: dict[str, Mapping[str, Any]] = {}
    for message in status.get("messages") or []:
        if isinstance(message, Sequence) and not isinstance(message, str) and len(message) >= 2:
            name, data = message[0], message[1]
            if isinstance(name, str) and isinstance(data, Mapping):
                found[name] = data
    return found


def execution_error(data: Mapping[str, Any], prompt_id: str) -> dict[str, Any]:
    """An `execution_error` event's data with every field the frontend requires, typed as it
    requires (a missing node is "", a traceback a list of strings); other fields kept."""
    trace = data.get("traceback")
    lines = [str(line) for line in trace] if isinstance(trace, list) else []
    error = {key: value for key, value in data.items() if isinstance(key, str)}
    error.update(
        prompt_id=prompt_id,
        node_id=str(data.get("node_id") or ""),
        node_type=str(data.get("node_type") or ""),
        exception_message=str(data.get("exception_message") or ""),
        exception_type=str(data.get("exception_type") or ""),
        traceback=lines,
    )
    if _number(error.get("timestamp")) is None:
        error.pop("timestamp", None)
    executed = error.get("executed")
    if executed is not None and not (
        isinstance(executed, list) and all(isinstance(e, str) for e in executed)
    ):
        error.pop("executed")
    return error


def job_from_history(prompt_id: str, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """A finished local prompt as a job; None when the entry is not shaped like one."""
    item = entry.get("prompt")
    if not isinstance(item, Sequence) or isinstance(item, str) or len(item) < 4:
        return None
    status = entry.get("status")
    status = status if isinstance(status, Mapping) else {}
    events = _events(status)
    if status.get("status_str") == "error":
        state = CANCELLED if "execution_interrupted" in events else FAILED
    else:  # success, or nothing recorded (ComfyUI's jobs API counts that as completed)
        state = COMPLETED
    ended = [events[name] for name in _END_EVENTS if name in events]
    extra = extra_data_of(item)
    started = _ms(events.get("execution_start", {}).get("timestamp"))
    outputs = entry.get("outputs")
    count, previewable, preview = outputs_summary(outputs if isinstance(outputs, Mapping) else {})
    error = events.get("execution_error")
    return _pruned(
        {
            "id": str(prompt_id),
            "status": state,
            "priority": _number(item[0]),
            "create_time": _ms(extra.get("create_time")) or started or 0,
            "execution_start_time": started,
            "execution_end_time": max(
                (t for t in (_ms(e.get("timestamp")) for e in ended) if t is not None),
                default=None,
            ),
            "execution_error": None if error is None else execution_error(error, str(prompt_id)),
            "outputs_count": count,
            "previewable_outputs_count": previewable,
            "preview_output": preview,
            "workflow_id": workflow_of(extra),
        }
    )


# --- outputs ------------------------------------------------------------------------------------


def _suffix(item: Mapping[str, Any]) -> str:
    name = item.get("filename")
    return PurePosixPath(name).suffix.lower() if isinstance(name, str) else ""


def _previewable(media: str, item: Mapping[str, Any]) -> bool:
    form = item.get("format")
    if media in PREVIEW_MEDIA:
        return True
    if isinstance(form, str) and form.startswith(("video/", "audio/")):
        return True
    return _suffix(item) in MODEL_SUFFIXES | TEXT_SUFFIXES


def _as_file(media: str, item: Any) -> Mapping[str, Any] | None:
    """An output item as a file: a dict, or a 3D model saved under its bare file name."""
    if isinstance(item, Mapping):
        return item
    if isinstance(item, str) and PurePosixPath(item).suffix.lower() in MODEL_SUFFIXES:
        return {"filename": item, "subfolder": "", "type": "output", "mediaType": "3d"}
    return None


def _preview(node: str, media: str, item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The frontend's preview of one file: the file's fields plus its node and media type;
    None when a field has a type the frontend refuses."""
    preview = {key: value for key, value in item.items() if isinstance(key, str)}
    preview["nodeId"] = str(node)
    preview.setdefault("mediaType", media)
    for key in ("filename", "subfolder", "content", "display_name", "mediaType"):
        if key in preview and not isinstance(preview[key], str):
            return None
    if "type" in preview and preview["type"] not in ("input", "output", "temp"):
        return None
    return preview


def outputs_summary(
    outputs: Mapping[str, Any],
) -> tuple[int, int, dict[str, Any] | None]:
    """(output files, previewable ones, the preview): a saved picture, video, sound or model
    first, then a temporary one, then a saved text file, then text a node showed."""
    count = previewable = 0
    saved = temporary = text_file = shown_text = None
    for node, by_media in outputs.items():
        if not isinstance(by_media, Mapping):
            continue
        for media, items in by_media.items():
            if media == "animated" or not isinstance(items, list):
                continue
            for raw in items:
                item = _as_file(media, raw)
                if item is None:
                    if media == "text" and shown_text is None and raw is not None:
                        text = raw[0] if isinstance(raw, list | tuple) and raw else raw
                        shown_text = {
                            "content": str(text)[:TEXT_PREVIEW_CHARS],
                            "nodeId": str(node),
                            "mediaType": "text",
                        }
                    continue
                count += 1
                if not _previewable(media, item):
                    continue
                previewable += 1
                preview = _preview(node, media, item)
                if preview is None:
                    continue
                if media == "text" or _suffix(item) in TEXT_SUFFIXES:
                    text_file = text_file or preview
                elif item.get("type") == "output":
                    saved = saved or preview
                else:
                    temporary = temporary or preview
    return count, previewable, saved or temporary or text_file or shown_text


# --- offloaded prompts --------------------------------------------------------------------------


def offloaded_status(summary: Mapping[str, Any]) -> str:
    return FROM_OFFLOADED.get(str(summary.get("status")), FAILED)


def _offloaded_error(summary: Mapping[str, Any], prompt_id: str) -> dict[str, Any] | None:
    error = summary.get("error")
    if not isinstance(error, Mapping) or offloaded_status(summary) != FAILED:
        return None
    return execution_error(
        {
            "node_id": error.get("node_id"),
            "node_type": error.get("node_type"),
            "exception_message": error.get("message"),
            "exception_type": error.get("type"),
            "timestamp": summary.get("finished_at"),
        },
        prompt_id,
    )


def job_from_offloaded(summary: Mapping[str, Any]) -> dict[str, Any]:
    """An offloaded prompt (its registry summary) as a job, with where it runs."""
    prompt_id = str(summary["prompt_id"])
    outputs = summary.get("outputs")
    count, previewable, preview = outputs_summary(outputs if isinstance(outputs, Mapping) else {})
    started = _ms(summary.get("started_at"))
    return _pruned(
        {
            "id": prompt_id,
            "status": offloaded_status(summary),
            "create_time": _ms(summary.get("queued_at")) or started or 0,
            "execution_start_time": started,
            "execution_end_time": _ms(summary.get("finished_at")),
            "execution_error": _offloaded_error(summary, prompt_id),
            "outputs_count": count,
            "previewable_outputs_count": previewable,
            "preview_output": preview,
            "workflow_id": summary.get("workflow_id") or None,
            PACKAGE_KEY: {"executor": str(summary.get("executor"))},
        }
    )


def queue_item_from_offloaded(summary: Mapping[str, Any]) -> list[Any]:
    """An offloaded prompt that is waiting or running, as a `GET /queue` item.

    Its number is when it was queued (ms): the registry keeps no queue number, and the
    pinned frontend orders each list by that number. The API prompt and the UI workflow are not
    kept for a prompt that ran elsewhere, so the item has none (the frontend then offers no
    "Load workflow" for it rather than loading an empty one)."""
    queued = _ms(summary.get("queued_at")) or 0
    extra = _pruned(
        {
            "client_id": summary.get("client_id") or None,
            "create_time": queued,
            PACKAGE_KEY: {
                "executor": str(summary.get("executor")),
                "workflow_id": summary.get("workflow_id") or None,
            },
        }
    )
    return [queued, str(summary["prompt_id"]), {}, extra, []]


def offloaded_client(summary: Mapping[str, Any]) -> str | None:
    client = summary.get("client_id")
    return client if isinstance(client, str) and client else None


def is_active(summary: Mapping[str, Any]) -> bool:
    return offloaded_status(summary) in ACTIVE_STATUSES


def in_scope(client: str | None, only: str | None) -> bool:
    """Whether a prompt queued by `client` is listed for `parallel_client=only` (None: all)."""
    return only is None or client == only


def offloaded_ids(summaries: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(summary["prompt_id"]) for summary in summaries}
