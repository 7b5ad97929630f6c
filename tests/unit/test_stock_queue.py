"""Offloaded prompts in the frontend's own lists, on a bare app: the jobs API the package serves
for a ComfyUI without one, ComfyUI's /queue, /history and /interrupt wrapped, the jobs API of
a newer ComfyUI wrapped, and the `parallel_client` scope.

Every jobs answer is checked against `JobsList` (tests/frontend_jobs_schema.py), a pydantic
copy of what frontend 1.58.1's zod schema accepts: the frontend shows no job at all when one
entry fails it."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from frontend_jobs_schema import JobsList
from prompt_queue import PromptQueue, item

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient
from parallel_runs_node.server_routes.executors.records import JobError, JobRecord, SavedFile
from parallel_runs_node.server_routes.patches.guard import PatchRefused
from parallel_runs_node.server_routes.patches.route_handlers import RouteWrap, wrap_routes
from parallel_runs_node.server_routes.stock_queue.install import install_stock_queue
from parallel_runs_node.server_routes.stock_queue.sources import CancelRefused, Offloaded


def test_the_schema_copy_refuses_what_the_frontend_refuses():
    """The copy must be able to fail, as zod does, where a careless answer would."""
    good = {"id": "a", "status": "pending", "create_time": 1}
    JobsList.model_validate({"jobs": [good], "pagination": PAGE})
    bad_jobs = [
        {"id": "a", "status": "pending"},  # no create_time
        {**good, "status": "queued"},
        {**good, "priority": None},  # optional, not nullable
        {**good, "outputs_count": 1.5},
        {**good, "preview_output": {"filename": "a.png"}},  # no nodeId / mediaType
        {**good, "execution_error": {"exception_message": "x"}},
        {**good, "workflow_id": 3},
    ]
    for job in bad_jobs:
        with pytest.raises(ValueError):
            JobsList.model_validate({"jobs": [job], "pagination": PAGE})
    with pytest.raises(ValueError):
        JobsList.model_validate({"jobs": [], "pagination": {**PAGE, "limit": None}})


PAGE = {"offset": 0, "limit": 1, "total": 1, "has_more": False}

# --- a ComfyUI 0.3.75 prompt queue and its routes -----------------------------------------------

CLIENT_A, CLIENT_B = "client-a", "client-b"
UUIDS = {name: f"00000000-0000-4000-8000-{n:012d}" for n, name in enumerate("abcdefghij")}


def core_routes(queue: PromptQueue, interrupted: list[str]) -> web.RouteTableDef:
    """ComfyUI 0.3.75's /queue, /history and /interrupt, as its server.py answers them."""
    routes = web.RouteTableDef()

    @routes.get("/queue")
    async def get_queue(_request):
        running, pending = queue.get_current_queue_volatile()
        return web.json_response(
            {"queue_running": [i[:5] for i in running], "queue_pending": [i[:5] for i in pending]}
        )

    @routes.post("/queue")
    async def post_queue(request):
        body = await request.json()
        if body.get("clear"):
            queue.wipe_queue()
        for prompt_id in body.get("delete", []):
            queue.delete_queue_item(lambda item, p=prompt_id: item[1] == p)
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request):
        try:
            body = await request.json()
        except ValueError:
            body = {}
        running, _ = queue.get_current_queue_volatile()
        prompt_id = body.get("prompt_id")
        if prompt_id is None or any(i[1] == prompt_id for i in running):
            interrupted.append(prompt_id or "*")
        return web.Response(status=200)

    @routes.get("/history")
    async def get_history(request):
        max_items = request.query.get("max_items")
        items = int(max_items) if max_items is not None else None
        return web.json_response(queue.get_history(max_items=items))

    @routes.post("/history")
    async def post_history(request):
        body = await request.json()
        if body.get("clear"):
            queue.wipe_history()
        for prompt_id in body.get("delete", []):
            queue.delete_history_item(prompt_id)
        return web.Response(status=200)

    return routes


def history_entry(entry: tuple, status: str, messages: list, outputs: dict | None = None) -> dict:
    return {
        "prompt": entry[:5],
        "outputs": outputs or {},
        "status": {"status_str": status, "completed": status == "success", "messages": messages},
        "meta": {},
    }


def record(prompt_id: str, status: str, client: str, **fields: Any) -> JobRecord:
    return JobRecord(
        prompt_id=prompt_id,
        executor=fields.pop("executor", "comfyui:other"),
        job_id="remote-" + prompt_id,
        client_id=client,
        workflow_id=fields.pop("workflow_id", "wf-remote"),
        status=status,
        created_at=1_700_000_100.0 + len(prompt_id) + fields.pop("offset", 0),
        **fields,
    )


class Bed:
    """ComfyUI's queue and routes with the package's wrappers, plus offloaded records."""

    def __init__(self) -> None:
        self.queue = PromptQueue()
        self.interrupted: list[str] = []  # by ComfyUI's /interrupt
        self.local_interrupts = 0  # by the package's own interrupt of the running prompt
        self.records: dict[str, JobRecord] = {}
        self.cancelled: list[str] = []
        self.refuse: CancelRefused | None = None
        self.routes = core_routes(self.queue, self.interrupted)
        self.prompt_queue = self.queue

    def offloaded(self) -> Offloaded:
        async def cancel(prompt_id: str) -> None:
            if prompt_id not in self.records:
                raise KeyError(prompt_id)
            if self.refuse is not None:
                raise self.refuse
            self.cancelled.append(prompt_id)
            self.records[prompt_id] = self.records[prompt_id].model_copy(
                update={"status": "interrupted"}
            )

        def forget(prompt_id: str) -> None:
            del self.records[prompt_id]

        return Offloaded(lambda: [r.summary() for r in self.records.values()], cancel, forget)

    def interrupt(self) -> None:
        self.local_interrupts += 1

    def app(self) -> web.Application:
        """Install as ComfyUI loads the package, then build the router as ComfyUI does (every
        route also under /api)."""
        stock = install_stock_queue(self, self.offloaded(), interrupt=self.interrupt)
        if stock.routes is not None:
            for route in stock.routes:
                self.routes.route(route.method, route.path)(route.handler)
        app = web.Application()
        app.add_routes([web.route(r.method, "/api" + r.path, r.handler) for r in self.routes])
        app.add_routes(self.routes)
        return app


@pytest.fixture
def bed() -> Bed:
    bed = Bed()
    q = bed.queue
    q.currently_running[0] = item(7, UUIDS["a"], CLIENT_A, "wf-a")
    q.queue = [item(8, UUIDS["b"], CLIENT_B, "wf-b"), item(9, UUIDS["c"], None)]
    done = item(3, UUIDS["d"], CLIENT_A, "wf-a")
    q.history[UUIDS["d"]] = history_entry(
        done,
        "success",
        [
            ("execution_start", {"prompt_id": UUIDS["d"], "timestamp": 1_700_000_003_100}),
            ("execution_success", {"prompt_id": UUIDS["d"], "timestamp": 1_700_000_003_900}),
        ],
        {"4": {"images": [{"filename": "d.png", "subfolder": "", "type": "temp"}]}},
    )
    failed = item(4, UUIDS["e"], CLIENT_B, "wf-b")
    q.history[UUIDS["e"]] = history_entry(
        failed,
        "error",
        [
            ("execution_start", {"prompt_id": UUIDS["e"], "timestamp": 1_700_000_004_100}),
            (
                "execution_error",
                {"prompt_id": UUIDS["e"], "node_id": 2, "exception_message": "boom"},
            ),
        ],
    )
    stopped = item(5, UUIDS["f"], CLIENT_A)
    q.history[UUIDS["f"]] = history_entry(
        stopped,
        "error",
        [("execution_interrupted", {"prompt_id": UUIDS["f"], "timestamp": 1_700_000_005_500})],
    )
    saved = {"9": [SavedFile(filename="r_00001_.png", subfolder="")]}
    bed.records = {
        r.prompt_id: r
        for r in (
            record(UUIDS["g"], "running", CLIENT_B, started_at=1_700_000_101.0),
            record(UUIDS["h"], "queued", CLIENT_A, executor="runpod:ep1"),
            record(
                UUIDS["i"],
                "success",
                CLIENT_B,
                outputs=saved,
                started_at=1_700_000_101.0,
                finished_at=1_700_000_200.0,
            ),
            record(
                UUIDS["j"],
                "error",
                CLIENT_A,
                error=JobError(type="server_unreachable", message="gone"),
                finished_at=1_700_000_300.0,
            ),
        )
    }
    return bed


async def jobs(client, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/jobs{query}")
    assert response.status == 200, await response.text()
    answer = await response.json()
    JobsList.model_validate(answer)  # as the frontend parses it
    return answer


# --- the jobs API the package serves ------------------------------------------------------------


async def test_jobs_lists_local_and_offloaded_prompts_as_the_frontend_parses_them(
    aiohttp_client, bed
):
    client = await aiohttp_client(bed.app())
    queue = await jobs(client, "?status=in_progress,pending&limit=200&offset=0")
    by_id = {job["id"]: job for job in queue["jobs"]}
    assert set(by_id) == {UUIDS[n] for n in "abcgh"}
    assert by_id[UUIDS["a"]]["status"] == "in_progress"
    assert by_id[UUIDS["a"]]["workflow_id"] == "wf-a"
    assert by_id[UUIDS["a"]]["priority"] == 7
    assert "parallel_runs" not in by_id[UUIDS["a"]]  # a local job is as ComfyUI lists it
    assert by_id[UUIDS["g"]]["status"] == "in_progress"
    assert by_id[UUIDS["g"]]["parallel_runs"] == {"executor": "comfyui:other"}
    assert by_id[UUIDS["g"]]["execution_start_time"] == 1_700_000_101_000
    assert by_id[UUIDS["h"]]["status"] == "pending"
    assert by_id[UUIDS["h"]]["parallel_runs"] == {"executor": "runpod:ep1"}
    times = [job["create_time"] for job in queue["jobs"]]
    assert times == sorted(times, reverse=True)  # newest first, as ComfyUI orders them
    assert queue["pagination"] == {"offset": 0, "limit": 200, "total": 5, "has_more": False}

    history = await jobs(client, "?status=completed,failed,cancelled&limit=200&offset=0")
    by_id = {job["id"]: job for job in history["jobs"]}
    assert {k: by_id[UUIDS[k]]["status"] for k in "defij"} == {
        "d": "completed",
        "e": "failed",
        "f": "cancelled",
        "i": "completed",
        "j": "failed",
    }
    assert by_id[UUIDS["i"]]["preview_output"] == {
        "filename": "r_00001_.png",
        "subfolder": "",
        "type": "output",
        "nodeId": "9",
        "mediaType": "images",
    }
    assert by_id[UUIDS["i"]]["outputs_count"] == 1
    assert by_id[UUIDS["j"]]["execution_error"]["exception_message"] == "gone"
    assert by_id[UUIDS["j"]]["execution_error"]["node_id"] == ""  # required: no node failed
    assert by_id[UUIDS["e"]]["execution_error"]["node_id"] == "2"
    assert by_id[UUIDS["e"]]["execution_error"]["traceback"] == []
    assert by_id[UUIDS["d"]]["execution_end_time"] == 1_700_000_003_900
    assert by_id[UUIDS["d"]]["preview_output"]["type"] == "temp"


async def test_jobs_follow_the_client_scope(aiohttp_client, bed):
    client = await aiohttp_client(bed.app())
    mine = await jobs(client, f"?parallel_client={CLIENT_A}")
    assert {job["id"] for job in mine["jobs"]} == {UUIDS[n] for n in "adfhj"}
    theirs = await jobs(client, f"?status=in_progress&parallel_client={CLIENT_B}")
    assert {job["id"] for job in theirs["jobs"]} == {UUIDS["g"]}
    everyone = await jobs(client)
    assert len(everyone["jobs"]) == 10  # a script's prompt (no client id) too


async def test_jobs_pages_filters_and_orders(aiohttp_client, bed):
    client = await aiohttp_client(bed.app())
    first = await jobs(client, "?limit=3")
    second = await jobs(client, "?limit=3&offset=3")
    assert first["pagination"] == {"offset": 0, "limit": 3, "total": 10, "has_more": True}
    assert second["pagination"]["offset"] == 3 and second["pagination"]["has_more"] is True
    assert not {j["id"] for j in first["jobs"]} & {j["id"] for j in second["jobs"]}
    oldest = await jobs(client, "?sort_order=asc&limit=1")
    assert oldest["jobs"][0]["id"] == UUIDS["d"]
    only = await jobs(client, "?workflow_id=wf-remote&status=completed")
    assert [j["id"] for j in only["jobs"]] == [UUIDS["i"]]
    longest = await jobs(client, "?sort_by=execution_duration&limit=1")
    assert longest["jobs"][0]["id"] == UUIDS["i"]  # 99 s remotely


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=queued", "status"),
        ("?limit=0", "limit"),
        ("?limit=many", "limit"),
        ("?sort_by=name", "sort_by"),
        ("?parallel_client=", "parallel_client"),
        ("?parallel_client=a%20b", "parallel_client"),
    ],
)
async def test_jobs_query_errors_name_the_parameter(aiohttp_client, bed, query, field):
    client = await aiohttp_client(bed.app())
    response = await client.get(f"/api/jobs{query}")
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == "invalid_query" and error["field"] == field


async def test_job_detail_local_and_offloaded(aiohttp_client, bed):
    client = await aiohttp_client(bed.app())
    local = await (await client.get(f"/api/jobs/{UUIDS['d']}")).json()
    assert local["status"] == "completed"
    assert local["outputs"]["4"]["images"][0]["filename"] == "d.png"
    assert local["workflow"]["extra_data"]["extra_pnginfo"]["workflow"]["id"] == "wf-a"
    assert "never-listed" not in str(local)
    waiting = await (await client.get(f"/api/jobs/{UUIDS['b']}")).json()
    assert waiting["status"] == "pending" and waiting["workflow"]["prompt"]["1"]
    remote = await (await client.get(f"/api/jobs/{UUIDS['i']}")).json()
    assert remote["outputs"] == {
        "9": {"images": [{"filename": "r_00001_.png", "subfolder": "", "type": "output"}]}
    }
    missing = await client.get("/api/jobs/nope")
    assert missing.status == 404


async def test_cancel_by_id_stops_the_prompt_wherever_it_runs(aiohttp_client, bed):
    client = await aiohttp_client(bed.app())

    async def cancel(job_id: str) -> bool:
        response = await client.post(f"/api/jobs/{job_id}/cancel")
        assert response.status == 200
        return (await response.json())["cancelled"]

    assert await cancel(UUIDS["g"]) is True  # running on the other server
    assert bed.cancelled == [UUIDS["g"]]
    assert await cancel(UUIDS["a"]) is True  # running here
    assert bed.local_interrupts == 1
    assert await cancel(UUIDS["b"]) is True  # waiting here
    assert [i[1] for i in bed.queue.queue] == [UUIDS["c"]]
    assert await cancel(UUIDS["i"]) is False  # finished: nothing to stop
    assert await cancel("unknown") is False
    assert bed.cancelled == [UUIDS["g"]] and bed.local_interrupts == 1

    response = await client.post("/api/jobs/cancel", json={"job_ids": [UUIDS["h"], UUIDS["c"]]})
    assert await response.json() == {"cancelled": True}
    assert bed.cancelled == [UUIDS["g"], UUIDS["h"]] and bed.queue.queue == []


async def test_cancel_refusals_are_answered(aiohttp_client, bed):
    client = await aiohttp_client(bed.app())
    bed.refuse = CancelRefused(502, "server_unreachable", "the other server is gone")
    response = await client.post(f"/api/jobs/{UUIDS['g']}/cancel")
    assert response.status == 502
    assert (await response.json())["error"]["type"] == "server_unreachable"
    for body, field in (
        ({"job_ids": "all"}, "job_ids"),
        ({"job_ids": [1]}, "job_ids.0"),
        ({"job_ids": [], "also": 1}, "also"),
    ):
        response = await client.post("/api/jobs/cancel", json=body)
        assert response.status == 400
        assert (await response.json())["error"]["field"] == field
    response = await client.post("/api/jobs/cancel", data="{", headers={"Content-Type": "x"})
    assert response.status == 400


# --- ComfyUI's own routes, wrapped --------------------------------------------------------------


async def test_queue_lists_offloaded_prompts_for_the_pinned_frontend(aiohttp_client, bed):
    client = await aiohttp_client(bed.app())
    queue = await (await client.get("/queue")).json()
    running = {i[1]: i for i in queue["queue_running"]}
    pending = {i[1]: i for i in queue["queue_pending"]}
    assert set(running) == {UUIDS["a"], UUIDS["g"]}
    assert set(pending) == {UUIDS["b"], UUIDS["c"], UUIDS["h"]}
    remote = running[UUIDS["g"]]
    number, _id, prompt, extra, outputs = remote  # the tuple the pinned frontend reads
    assert isinstance(number, int) and prompt == {} and outputs == []
    assert extra["client_id"] == CLIENT_B and isinstance(extra["create_time"], int)
    assert extra["parallel_runs"] == {"executor": "comfyui:other", "workflow_id": "wf-remote"}
    assert "extra_pnginfo" not in extra  # no workflow kept: "Load workflow" is not offered
    assert all(len(i) == 5 for i in [*running.values(), *pending.values()])
    assert "never-listed" not in str(queue)

    mine = await (await client.get(f"/api/queue?parallel_client={CLIENT_A}")).json()
    assert [i[1] for i in mine["queue_running"]] == [UUIDS["a"]]
    assert [i[1] for i in mine["queue_pending"]] == [UUIDS["h"]]
    response = await client.get("/queue?parallel_client=a%20b")
    assert response.status == 400


async def test_stock_stop_actions_reach_offloaded_prompts(aiohttp_client, bed):
    client = await aiohttp_client(bed.app())
    # the pinned queue sidebar's Delete on a running prompt: /interrupt, then /queue delete
    assert (await client.post("/interrupt", json={"prompt_id": UUIDS["g"]})).status == 200
    assert (await client.post("/queue", json={"delete": [UUIDS["g"]]})).status == 200
    assert bed.cancelled == [UUIDS["g"]]  # stopped once: it had ended by the second call
    assert bed.interrupted == []  # ComfyUI's own interrupt never saw it
    # its Delete on a waiting one
    assert (await client.post("/api/queue", json={"delete": [UUIDS["h"]]})).status == 200
    assert bed.cancelled == [UUIDS["g"], UUIDS["h"]]
    # a local running prompt still goes to ComfyUI
    await client.post("/interrupt", json={"prompt_id": UUIDS["a"]})
    assert bed.interrupted == [UUIDS["a"]]
    await client.post("/interrupt", data="")  # the global interrupt: ComfyUI's, as before
    assert bed.interrupted == [UUIDS["a"], "*"]
    bed.records[UUIDS["g"]] = record(UUIDS["g"], "running", CLIENT_B)
    bed.refuse = CancelRefused(409, "submitting", "cancel again in a moment")
    response = await client.post("/interrupt", json={"prompt_id": UUIDS["g"]})
    assert response.status == 409


async def test_clear_pending_everyone_or_one_client(aiohttp_client, bed):
    bed.records[UUIDS["c"]] = record(UUIDS["c"], "queued", CLIENT_B, offset=5)
    bed.queue.queue.pop()  # (UUIDS["c"] is now an offloaded prompt of client B)
    client = await aiohttp_client(bed.app())
    await client.post(f"/queue?parallel_client={CLIENT_A}", json={"clear": True})
    assert bed.cancelled == [UUIDS["h"]]  # A's waiting remote prompt
    assert [i[1] for i in bed.queue.queue] == [UUIDS["b"]]  # B's local one is still there
    await client.post("/queue", json={"clear": True})  # everyone's, as ComfyUI clears
    assert bed.cancelled == [UUIDS["h"], UUIDS["c"]] and bed.queue.queue == []
    assert UUIDS["g"] not in bed.cancelled  # running, not waiting


async def test_history_follows_the_scope_and_forgets_offloaded(aiohttp_client, bed):
    client = await aiohttp_client(bed.app())
    mine = await (await client.get(f"/history?parallel_client={CLIENT_A}")).json()
    assert set(mine) == {UUIDS["d"], UUIDS["f"]}
    everyone = await (await client.get("/history?max_items=64")).json()
    assert set(everyone) == {UUIDS["d"], UUIDS["e"], UUIDS["f"]}

    await client.post("/history", json={"delete": [UUIDS["i"], UUIDS["g"], UUIDS["d"]]})
    assert UUIDS["i"] not in bed.records  # finished offloaded: forgotten
    assert UUIDS["g"] in bed.records  # running: a history delete never touches it
    assert UUIDS["d"] not in bed.queue.history
    await client.post(f"/history?parallel_client={CLIENT_A}", json={"clear": True})
    assert set(bed.queue.history) == {UUIDS["e"]}
    assert UUIDS["j"] not in bed.records and UUIDS["h"] in bed.records
    listed = await jobs(client, "?status=completed,failed,cancelled")
    assert {j["id"] for j in listed["jobs"]} == {UUIDS["e"]}


# --- a ComfyUI with its own jobs API -----------------------------------------------------------


def add_core_jobs_api(bed: Bed) -> list[str]:
    """A jobs API shaped like ComfyUI >= 0.4's (registered as /api/jobs): local prompts only,
    with its own pages."""
    cancelled: list[str] = []

    async def get_jobs(request):
        running, pending = bed.queue.get_current_queue_volatile()
        listed = [
            {
                "id": i[1],
                "status": "in_progress",
                "create_time": i[3]["create_time"],
                "priority": i[0],
            }
            for i in running
        ]
        listed += [
            {"id": i[1], "status": "pending", "create_time": i[3]["create_time"], "priority": i[0]}
            for i in pending
        ]
        statuses = request.query.get("status")
        if statuses:
            listed = [j for j in listed if j["status"] in statuses.split(",")]
        listed.sort(key=lambda j: j["create_time"], reverse=True)
        offset = int(request.query.get("offset", 0))
        limit = int(request.query["limit"]) if "limit" in request.query else None
        page = listed[offset:] if limit is None else listed[offset : offset + limit]
        return web.json_response(
            {
                "jobs": page,
                "pagination": {
                    "offset": offset,
                    "limit": limit,
                    "total": len(listed),
                    "has_more": offset + len(page) < len(listed),
                },
            }
        )

    async def cancel_job(request):
        cancelled.append(request.match_info["job_id"])
        return web.json_response({"cancelled": True})

    async def cancel_jobs(request):
        cancelled.extend((await request.json())["job_ids"])
        return web.json_response({"cancelled": False})

    bed.routes.get("/api/jobs")(get_jobs)
    bed.routes.post("/api/jobs/{job_id}/cancel")(cancel_job)
    bed.routes.post("/api/jobs/cancel")(cancel_jobs)
    return cancelled


async def test_core_jobs_api_is_wrapped_not_replaced(aiohttp_client, bed):
    core_cancelled = add_core_jobs_api(bed)
    client = await aiohttp_client(bed.app())
    assert not any(r.path == "/jobs" for r in bed.routes)  # the package serves none of its own
    first = await jobs(client, "?status=in_progress,pending&limit=3&offset=0")
    rest = await jobs(client, "?status=in_progress,pending&limit=3&offset=3")
    listed = [j["id"] for j in first["jobs"] + rest["jobs"]]
    assert sorted(listed) == sorted(UUIDS[n] for n in "abcgh")  # pages over both, no repeat
    assert first["pagination"]["total"] == 5 and first["pagination"]["has_more"] is True
    mine = await jobs(client, f"?status=in_progress,pending&parallel_client={CLIENT_A}")
    assert {j["id"] for j in mine["jobs"]} == {UUIDS["a"], UUIDS["h"]}

    await client.post(f"/api/jobs/{UUIDS['g']}/cancel")
    await client.post(f"/api/jobs/{UUIDS['a']}/cancel")
    assert bed.cancelled == [UUIDS["g"]] and core_cancelled == [UUIDS["a"]]
    response = await client.post("/api/jobs/cancel", json={"job_ids": [UUIDS["h"], UUIDS["b"]]})
    assert (await response.json())["cancelled"] is True
    assert bed.cancelled == [UUIDS["g"], UUIDS["h"]]
    assert core_cancelled == [UUIDS["a"], UUIDS["h"], UUIDS["b"]]  # unknown to it: a no-op


# --- the guard ---------------------------------------------------------------------------------


def test_a_missing_or_changed_route_leaves_every_route_as_it_was():
    async def handler(_request): ...

    def sync_handler(_request): ...

    async def two(_request, _extra): ...

    def wraps():
        return [
            RouteWrap("GET", ("/queue",), lambda h: h),
            RouteWrap("POST", ("/queue",), lambda h: h),
        ]

    for broken in (
        [("GET", "/queue", handler)],
        [("GET", "/queue", handler)] * 2 + [("POST", "/queue", handler)],
        [("GET", "/queue", sync_handler), ("POST", "/queue", handler)],
        [("GET", "/queue", two), ("POST", "/queue", handler)],
    ):
        table = web.RouteTableDef()
        for method, path, fn in broken:
            table.route(method, path)(fn)
        before = list(table)
        with pytest.raises(PatchRefused):
            wrap_routes(table, wraps())
        assert list(table) == before
    with pytest.raises(PatchRefused):
        wrap_routes(object(), wraps())  # type: ignore[arg-type]


async def test_wrapped_once_and_served_under_both_paths(aiohttp_client, bed):
    app = bed.app()
    handlers = [r.handler for r in bed.routes if r.path == "/queue"]
    install_stock_queue(bed, bed.offloaded(), interrupt=bed.interrupt)  # a second install
    assert [r.handler for r in bed.routes if r.path == "/queue"] == handlers
    client = await aiohttp_client(app)
    for path in ("/jobs", "/api/jobs", "/queue", "/api/queue"):
        assert (await client.get(path)).status == 200


def test_without_a_prompt_queue_nothing_changes():
    class Bare:
        routes = web.RouteTableDef()

    with pytest.raises(PatchRefused, match="prompt_queue"):
        install_stock_queue(Bare(), None)


async def test_a_connector_counts_only_what_the_server_runs_itself(aiohttp_client, bed):
    """Another ComfyUI asking this one's /queue (Auto's wait, a connector following its
    prompt) sees the prompts it runs itself, not the ones it sent elsewhere."""

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    app = bed.app()
    app.router.add_get("/ws", socket)
    client = await aiohttp_client(app)
    comfy = ComfyClient(str(client.make_url("")).rstrip("/"), feature_flags=None)
    try:
        await comfy.connect()
        running, pending = await comfy.queue_ids()
    finally:
        await comfy.close()
    assert running == [UUIDS["a"]]
    assert sorted(pending) == sorted([UUIDS["b"], UUIDS["c"]])
