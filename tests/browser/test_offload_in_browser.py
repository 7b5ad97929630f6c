"""RunPod offload from a real ComfyUI page: the user sets the API key in the panel's RunPod form,
picks "Run on: RunPod" for a workflow and queues it the normal way. The prompt shows in the
panel with its RunPod executor, its progress moves, it ends with output thumbnails served by
/view, and the key is nowhere in the page (DOM, input values, storage, the workflow, websocket
messages, HTTP answers). Stop on a running offloaded prompt cancels it remotely.

ComfyUI A is real; RunPod's control plane is the loopback fake, playing the worker itself
(simulated-worker mode) or handing the job to the real worker: the unmodified `runpod` worker
loop with this package's handler, running the prompt on a second real ComfyUI. On the newest
frontend the key is typed into the form; on the pinned one the key comes from A's environment,
so the form shows the server's 409 refusal instead."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from early_servers import Early, early_fixture
from panel_harness import (
    CANVAS,
    CLICK_STOP,
    LOAD_WORKFLOW,
    OPEN_PANEL,
    PANEL_ROWS,
    PROMPTS,
    WAIT,
    open_comfy_page,
    press_run,
    queue_with_keyboard,
    ui_workflow,
)
from PIL import Image
from runpod_fake import FakeRunpod, Outcome, WorkerProcess, fake_in_thread, start_worker

from conftest import find_comfyui, make_base_directory, newest_frontend_root
from parallel_runs_node.parallel_runs.client.process import ComfyProcess

pytestmark = pytest.mark.browser
ENDPOINT = "ep-test"
KEY = f"rp_BROWSER_{uuid.uuid4().hex}"

# Before any page script: record every websocket message the page receives (text frames, and
# binary frames decoded as Latin-1 so that an ASCII key would show up in them too).
WATCH_SOCKET = """(() => {
  const Native = window.WebSocket;
  window.__parallelWsLog = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener('message', (e) => {
        if (typeof e.data === 'string') window.__parallelWsLog.push(e.data);
        else if (e.data instanceof ArrayBuffer)
          window.__parallelWsLog.push(new TextDecoder('latin1').decode(e.data));
      });
    }
  };
})();"""

SERIALIZED_WORKFLOW = """async () => {
  const { app } = await import('/scripts/app.js');
  return JSON.stringify(app.graph.serialize());
}"""

# Everything the page keeps that a key could leak into.
PAGE_TEXTS = """async () => {
  const { app } = await import('/scripts/app.js');
  const storage = (s) => Object.keys(s).map((k) => `${k}=${s.getItem(k)}`).join('\\n');
  const workflows = (app.extensionManager?.workflow?.openWorkflows ?? [])
    .map((w) => JSON.stringify(w.activeState ?? null));
  return {
    html: document.documentElement.outerHTML,
    inputs: [...document.querySelectorAll('input, textarea')].map((i) => i.value).join('\\n'),
    localStorage: storage(localStorage),
    sessionStorage: storage(sessionStorage),
    workflow: JSON.stringify(app.graph.serialize()),
    open_workflows: workflows.join('\\n'),
    store: JSON.stringify(window.__parallelRuntime.store.all()),
    websocket: window.__parallelWsLog.join('\\n'),
  };
}"""

RUNPOD_FORM = """() => {
  const form = document.querySelector('.parallel-runs-runpod');
  return form && {
    hidden: form.hidden,
    open: form.open,
    summary: form.querySelector('summary').textContent,
    status: form.querySelector('.parallel-runs-runpod-key-status').textContent,
    message: form.querySelector('.parallel-runs-runpod-message').textContent,
    message_kind: form.querySelector('.parallel-runs-runpod-message').dataset.kind,
    key_value: form.querySelector('.parallel-runs-runpod-key').value,
    key_type: form.querySelector('.parallel-runs-runpod-key').type,
    endpoint_placeholder: document.querySelector('.parallel-runs-endpoint').placeholder,
  };
}"""


@dataclass
class OffloadServer:
    which: str
    comfy: ComfyProcess
    fake: FakeRunpod
    key_from_env: bool

    @property
    def url(self) -> str:
        return self.comfy.url


def start_comfy_a(
    base: Path, fake: FakeRunpod, front_end_root: Path | None, key: str | None, servers: str
):
    """ComfyUI A, pointed at the fake only through its environment; no key unless given;
    `servers` are the other ComfyUI servers it may run prompts on ("name=url,...")."""
    env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}
    env.update(RUNPOD_ENDPOINT_BASE_URL=fake.base_url, RUNPOD_ENDPOINT_ID=ENDPOINT)
    env["PARALLEL_RUNS_COMFYUI_SERVERS"] = servers
    if key:
        env["RUNPOD_API_KEY"] = key
    args = ("--front-end-root", str(front_end_root)) if front_end_root else ()
    server = ComfyProcess(
        comfy_dir=find_comfyui(),
        base_directory=make_base_directory(base),
        python=sys.executable,
        extra_args=args,
        env=env,
        log_path=base / "comfyui.log",
    )
    return server.start(timeout=180)


@early_fixture(params=["newest", "pinned"])
@contextlib.contextmanager
def offload_server(early: Early) -> Iterator[OffloadServer]:
    """Newest frontend: the key is set from the UI. Pinned: the key is in A's environment.
    Both start ahead of the module, in the background, one after the other."""
    which = early.param
    outcome = Outcome(kind="complete", worker_time=4.0, steps=8)
    b, c = early.session_server("comfy_server_newest"), early.session_server("comfy_server")
    # the real worker's long polls answer within 0.5 s (not 2 s): on SIGTERM it waits for them
    polls = {"take_poll": 0.5, "stop_poll": 0.5}
    with fake_in_thread(api_key=KEY, endpoints=(ENDPOINT,), simulate=outcome, **polls) as fake:
        newest = which == "newest"
        comfy = start_comfy_a(
            early.path,
            fake,
            newest_frontend_root() if newest else None,
            None if newest else KEY,
            f"b={b.url},c={c.url}",
        )
        try:
            yield OffloadServer(which, comfy, fake, key_from_env=not newest)
        finally:
            comfy.stop()


def http_json(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class Page:
    """One browser context on A, with the panel open and every HTTP answer of ours recorded."""

    def __init__(self, browser, url: str) -> None:
        self.responses: list[Any] = []
        self.errors: list[str] = []
        self.context, self.page = open_comfy_page(
            browser, url, WATCH_SOCKET, before_load=self._listen
        )
        assert self.page.evaluate(OPEN_PANEL)

    def _listen(self, page: Any) -> None:
        page.on("response", self._record)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _record(self, response: Any) -> None:
        kind = response.headers.get("content-type", "")
        if "json" in kind or "text/plain" in kind:
            self.responses.append(response)

    def answers_text(self) -> str:
        texts = []
        for response in self.responses:
            try:
                texts.append(response.text())
            except Exception:  # a body the browser no longer keeps (redirects, aborted)
                continue
        return "\n".join(texts)

    def form(self) -> dict[str, Any]:
        return self.page.evaluate(RUNPOD_FORM)

    def summary(self) -> str:
        return self.page.text_content(".parallel-runs-summary")

    def prompts(self) -> list[dict[str, Any]]:
        return self.page.evaluate(PROMPTS)

    def row(self, prompt_id: str) -> dict[str, Any] | None:
        rows = self.page.evaluate(PANEL_ROWS)
        return next((r for r in rows if r["prompt_id"] == prompt_id), None)

    def wait_status(self, prompt_id: str, status: str) -> None:
        self.page.wait_for_function(
            """([id, status]) => window.__parallelRuntime.store.get(id)?.status === status
               && document.querySelector(`.parallel-runs-row[data-prompt-id="${id}"]`)
                    ?.dataset.status === status""",
            arg=[prompt_id, status],
            timeout=WAIT,
        )

    def run_on_runpod(self, name: str, seconds: float = 1.0, workflow: Any = None) -> str:
        """Open a new workflow tab and choose RunPod for it in the panel header."""
        workflow = workflow or ui_workflow(f"note {name}", seconds)
        tab = self.page.evaluate(LOAD_WORKFLOW, [workflow, name])
        self.page.select_option(".parallel-runs-executor", "runpod")
        self.page.wait_for_function(
            "() => !document.querySelector('.parallel-runs-runpod').hidden", timeout=WAIT
        )
        return tab

    def run_on(self, executor: str, name: str, seconds: float) -> tuple[str, dict, tuple]:
        """Open a saving workflow in a new tab and pick `executor` in "Run on" (an option the
        server lists); its tab id, the workflow, and the colour its image will have."""
        workflow, color = saving_workflow(name, seconds)
        tab = self.page.evaluate(LOAD_WORKFLOW, [workflow, name])
        self.page.select_option(".parallel-runs-executor", executor)
        return tab, workflow, color

    def queue_one(
        self, workflow_id: str, queue: Callable[[Any], None] = queue_with_keyboard
    ) -> str:
        """Queue the visible workflow as a person does (`queue`: Ctrl+Enter or the Run
        button); the id of the prompt it added."""
        before = {p["prompt_id"] for p in self.prompts()}
        queue(self.page)
        self.page.wait_for_function(
            """([wf, before]) => window.__parallelRuntime.store.all()
                 .some((s) => s.workflow_id === wf && !before.includes(s.prompt_id))""",
            arg=[workflow_id, sorted(before)],
            timeout=WAIT,
        )
        (new,) = [
            p["prompt_id"]
            for p in self.prompts()
            if p["workflow_id"] == workflow_id and p["prompt_id"] not in before
        ]
        return new

    def wait_progress(self, prompt_id: str) -> float:
        """Wait until the prompt runs with a moving bar; returns the fraction seen."""
        self.page.wait_for_function(
            """(id) => { const row = document.querySelector(
                 `.parallel-runs-row[data-prompt-id="${id}"]`);
               return row?.dataset.status === 'running'
                 && Number(row.querySelector('.parallel-runs-bar').dataset.fraction) > 0; }""",
            arg=prompt_id,
            timeout=WAIT,
        )
        return self.row(prompt_id)["fraction"]

    def wait_thumbnails(self, prompt_id: str) -> list[str]:
        """Wait until the prompt's row shows its output thumbnails, loaded; their srcs."""
        self.page.wait_for_function(
            """(id) => { const imgs = [...document.querySelectorAll(
                 `.parallel-runs-row[data-prompt-id="${id}"] img.parallel-runs-thumb`)];
               return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0); }""",
            arg=prompt_id,
            timeout=WAIT,
        )
        return self.page.eval_on_selector_all(
            f'.parallel-runs-row[data-prompt-id="{prompt_id}"] img.parallel-runs-thumb',
            "(imgs) => imgs.map((i) => i.src)",
        )

    def close(self) -> None:
        self.context.close()


def set_key_in_form(page: Page, server: OffloadServer) -> None:
    """Type the key into the form the way a user would; check what the form says back."""
    form = page.form()
    assert form["key_type"] == "password"
    assert form["endpoint_placeholder"] == f"default: {ENDPOINT}"
    if server.key_from_env:
        assert f"ends in {KEY[-4:]}" in form["status"] and "RUNPOD_API_KEY" in form["status"]
        page.page.click(".parallel-runs-runpod > summary")
        page.page.fill(".parallel-runs-runpod-key", f"rp_OTHER_{uuid.uuid4().hex}")
        page.page.click(".parallel-runs-runpod-save-key")
        # the server's own 409 refusal, shown inline; the typed key is gone from the input
        page.page.wait_for_function(
            "() => document.querySelector('.parallel-runs-runpod-message').dataset.kind"
            " === 'error'",
            timeout=WAIT,
        )
        form = page.form()
        assert "RUNPOD_API_KEY" in form["message"] and "environment" in form["message"], form
        assert form["key_value"] == ""
        return
    # No key yet: the section opens by itself and says so.
    assert form["open"] and form["status"] == "No API key set", form
    page.page.fill(".parallel-runs-runpod-key", "two words")
    page.page.click(".parallel-runs-runpod-save-key")
    form = page.form()
    assert form["message_kind"] == "error" and "no spaces" in form["message"], form
    assert form["key_value"] == ""
    # typed key by key, as a user would: the frontend's shortcuts must leave the input alone
    page.page.locator(".parallel-runs-runpod-key").press_sequentially(KEY)
    page.page.press(".parallel-runs-runpod-key", "Enter")
    page.page.wait_for_function(
        "() => document.querySelector('.parallel-runs-runpod-message').dataset.kind === 'ok'",
        timeout=WAIT,
    )
    form = page.form()
    assert form["key_value"] == "", "the key must not stay in the input"
    assert form["status"] == f"API key set (ends in {KEY[-4:]}), saved on the ComfyUI server"
    assert form["summary"] == f"RunPod: key …{KEY[-4:]}, endpoint {ENDPOINT}"
    status, view = http_json(f"{server.url}/parallel/offload/config")
    assert status == 200 and view["api_key_set"] and view["api_key_source"] == "file"


def ensure_key(server: OffloadServer) -> None:
    """For tests that are not about the form: the key as the form would have saved it."""
    if not server.key_from_env:
        status, _ = http_json(f"{server.url}/parallel/offload/config", {"api_key": KEY})
        assert status == 200


def assert_no_key(page: Page, prompt_id: str) -> None:
    texts = page.page.evaluate(PAGE_TEXTS)
    texts["http_answers"] = page.answers_text()
    leaked = [where for where, text in texts.items() if KEY in text]
    assert leaked == [], f"the API key is in: {leaked}"
    # the places searched hold real content: the prompt's events, its workflow, the config
    assert prompt_id in texts["websocket"] and prompt_id in texts["store"]
    assert '"parallel_runs"' in texts["workflow"] and "api_key_set" in texts["http_answers"]


def test_offloaded_prompt_from_the_panel(offload_server, chromium, artifacts_dir):
    server, which = offload_server, offload_server.which
    page = Page(chromium, server.url)
    try:
        tab = page.run_on_runpod(f"offload-{which}")
        set_key_in_form(page, server)
        # the choice lives in the workflow's extra data (never a key)
        saved = json.loads(page.page.evaluate(SERIALIZED_WORKFLOW))
        assert saved["extra"]["parallel_runs"] == {"executor": "runpod"}

        jobs_before = len(server.fake.jobs)
        prompt_id = page.queue_one(tab)
        fraction = page.wait_progress(prompt_id)
        assert 0 < fraction < 1
        running = page.row(prompt_id)
        assert running["stop"] and running["node"], running
        assert page.summary() == "1 running, 0 queued"
        page.page.screenshot(path=str(artifacts_dir / f"offload-{which}-running.png"))
        assert len(server.fake.jobs) == jobs_before + 1, "one job reached RunPod"

        page.wait_status(prompt_id, "success")
        (state,) = [p for p in page.prompts() if p["prompt_id"] == prompt_id]
        assert state["executor"] == f"runpod:{ENDPOINT}"
        assert (
            page.page.evaluate(
                '(id) => document.querySelector(`.parallel-runs-row[data-prompt-id="${id}"]`)'
                ".dataset.executor",
                prompt_id,
            )
            == f"runpod:{ENDPOINT}"
        )
        images = [i for out in state["outputs"].values() for i in out.get("images", [])]
        assert images and all(i["subfolder"] == f"parallel-runs/{prompt_id}" for i in images)
        srcs = page.wait_thumbnails(prompt_id)
        row = page.row(prompt_id)
        assert row["thumbs"] == [i["filename"] for i in images] and row["fraction"] == 1
        assert page.summary() == "0 running, 0 queued"
        for src in srcs:
            assert "/view?" in src
            served = page.context.request.get(src)
            assert served.status == 200 and served.body().startswith(b"\x89PNG")
        job = list(server.fake.jobs.values())[-1]
        assert job.status == "COMPLETED" and job.endpoint == ENDPOINT

        page.page.screenshot(path=str(artifacts_dir / f"offload-{which}-done.png"))
        page.page.locator(".parallel-runs-panel").screenshot(
            path=str(artifacts_dir / f"offload-{which}-panel.png")
        )
        assert_no_key(page, prompt_id)
        assert page.errors == []
    finally:
        page.close()


def test_stop_cancels_an_offloaded_prompt(offload_server, chromium, artifacts_dir):
    server, which = offload_server, offload_server.which
    ensure_key(server)
    server.fake.outcomes.append(Outcome(kind="complete", worker_time=30.0, steps=30))
    page = Page(chromium, server.url)
    try:
        tab = page.run_on_runpod(f"offload-stop-{which}")
        prompt_id = page.queue_one(tab)
        page.wait_progress(prompt_id)
        job = list(server.fake.jobs.values())[-1]
        assert job.status == "IN_PROGRESS"

        page.page.evaluate(CLICK_STOP, prompt_id)
        page.wait_status(prompt_id, "interrupted")
        assert job.status == "CANCELLED", "the job was cancelled on RunPod's side"
        row = page.row(prompt_id)
        assert not row["stop"] and row["thumbs"] == []
        status, listed = http_json(f"{server.url}/parallel/offload/jobs")
        mine = [j for j in listed["jobs"] if j["prompt_id"] == prompt_id]
        assert status == 200 and mine[0]["status"] == "interrupted"
        page.page.locator(".parallel-runs-panel").screenshot(
            path=str(artifacts_dir / f"offload-{which}-stopped.png")
        )
        assert_no_key(page, prompt_id)
    finally:
        page.close()


# --------------------------------------------------------------------------- the real worker


@pytest.fixture
def real_worker(offload_server, comfy_server, tmp_path) -> Iterator[WorkerProcess]:
    """The unmodified `runpod` worker loop with this package's handler, taking A's jobs from
    the fake and running them on a second real ComfyUI (the session's); the fake stops playing
    the worker meanwhile."""
    fake = offload_server.fake
    simulate, fake.simulate = fake.simulate, None
    worker = start_worker(
        fake,
        comfy_server.url,
        tmp_path / "worker.log",
        endpoint_id=ENDPOINT,
        pod_id=f"pod-{offload_server.which}",
        extra_env={"PARALLEL_RUNS_PROGRESS_INTERVAL": "0.2"},
    )
    try:
        yield worker
    finally:
        worker.stop()
        fake.simulate = simulate


def saving_workflow(name: str, seconds: float) -> tuple[dict[str, Any], tuple[int, int, int]]:
    """`ui_workflow` ending in a SaveImage (the worker returns saved files, not previews);
    with the colour its EmptyImage fills the image with."""
    workflow = ui_workflow(f"note {name}", seconds, steps=4)
    empty, save = workflow["nodes"][0], workflow["nodes"][3]
    save.update(type="SaveImage", widgets_values=[f"rw{uuid.uuid4().hex[:8]}"])
    color = empty["widgets_values"][3]
    return workflow, ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)


def test_offloaded_prompt_runs_on_the_real_worker(offload_server, real_worker, chromium):
    """Run on: RunPod, the Run button, and the prompt goes through the real worker: the row
    moves with the worker's progress, ends in success with the image the worker's ComfyUI
    saved, shown in the panel and on the SaveImage node."""
    server, which = offload_server, offload_server.which
    ensure_key(server)
    workflow, color = saving_workflow(f"real-worker-{which}", seconds=2.0)
    page = Page(chromium, server.url)
    try:
        tab = page.run_on_runpod(f"real-worker-{which}", workflow=workflow)
        prompt_id = page.queue_one(tab, queue=press_run)
        worker_log = real_worker.log_text
        assert 0 < page.wait_progress(prompt_id) < 1, worker_log()[-3000:]
        page.wait_status(prompt_id, "success")
        srcs = page.wait_thumbnails(prompt_id)

        row = page.row(prompt_id)
        assert row["fraction"] == 1 and len(row["thumbs"]) == 1, row
        assert row["thumbs"][0].startswith(workflow["nodes"][3]["widgets_values"][0])
        canvas = page.page.evaluate(CANVAS)
        assert canvas["visible"] == tab and canvas["images"].get("4") == row["thumbs"], canvas
        (src,) = srcs
        served = page.context.request.get(src)
        assert served.status == 200
        with Image.open(io.BytesIO(served.body())) as image:  # what the worker's ComfyUI made
            assert image.format == "PNG" and image.size == (64, 64)
            assert image.convert("RGB").getpixel((5, 5)) == color

        (job,) = [j for j in server.fake.jobs.values() if j.worker_id == f"pod-{which}"]
        assert job.status == "COMPLETED" and job.progress, worker_log()[-3000:]
        assert page.errors == []
    finally:
        page.close()


def test_a_workflow_set_to_run_on_another_comfyui_server(offload_server, chromium):
    """Run on: "ComfyUI: c" (a second ComfyUI), Ctrl+Enter: the row moves with the progress
    there, ends in success with the image made there, saved here, shown in the panel and on
    the SaveImage node; the workflow keeps its choice."""
    server, which = offload_server, offload_server.which
    page = Page(chromium, server.url)
    try:
        tab, _workflow, color = page.run_on("comfyui:c", f"server-c-{which}", seconds=2.0)
        assert page.page.is_hidden(".parallel-runs-endpoint")  # RunPod's field is not shown
        health = page.page.locator('.parallel-runs-executor-health[data-executor="comfyui:c"]')
        health.wait_for(timeout=WAIT)  # the panel says where prompts can run, and how busy
        assert health.get_attribute("data-reachable") == "true"
        assert health.text_content().startswith("comfyui:c: ")
        prompt_id = page.queue_one(tab)
        assert 0 < page.wait_progress(prompt_id) < 1
        page.wait_status(prompt_id, "success")
        (src,) = page.wait_thumbnails(prompt_id)
        row = page.row(prompt_id)
        assert row["executor"] == "comfyui:c" and row["fraction"] == 1, row
        canvas = page.page.evaluate(CANVAS)
        assert canvas["visible"] == tab and canvas["images"].get("4") == row["thumbs"], canvas
        served = page.context.request.get(src)
        saved = Path(server.comfy.base_directory, "output", "parallel-runs", prompt_id)
        assert served.status == 200 and len(list(saved.glob("*.png"))) == 1
        with Image.open(io.BytesIO(served.body())) as image:  # made on c, saved on A
            assert image.size == (64, 64) and image.convert("RGB").getpixel((5, 5)) == color
        extra = page.page.evaluate(
            "() => window.__parallelRuntime.tabs.extra()?.parallel_runs ?? null"
        )
        assert extra == {"executor": "comfyui:c"}
        assert page.errors == []
    finally:
        page.close()


def test_auto_spreads_a_batch_across_this_comfyui_and_the_servers(offload_server, chromium):
    """Run on: Auto, Ctrl+Enter four times: each prompt goes where it starts soonest, so the
    four spread over this ComfyUI and the servers; all four finish, each in its own row."""
    server, which = offload_server, offload_server.which
    page = Page(chromium, server.url)
    try:
        tab, _workflow, _color = page.run_on("auto", f"auto-{which}", seconds=3.0)
        prompt_ids = [page.queue_one(tab)]  # a click on the canvas, then Ctrl+Enter
        # again and again without clicking (two quick clicks would open the node search)
        again = lambda tab_page: tab_page.keyboard.press("Control+Enter")  # noqa: E731
        prompt_ids += [page.queue_one(tab, queue=again) for _ in range(3)]
        for prompt_id in prompt_ids:
            page.wait_status(prompt_id, "success")
        executors = [page.row(prompt_id)["executor"] for prompt_id in prompt_ids]
        assert executors[0] == "local", executors  # this ComfyUI was idle: first choice
        assert len(set(executors)) >= 2 and set(executors) <= {"local", "comfyui:b", "comfyui:c"}
        for prompt_id in prompt_ids:
            assert len(page.wait_thumbnails(prompt_id)) == 1
        assert page.errors == []
    finally:
        page.close()


def test_stop_in_the_panel_stops_a_prompt_on_another_server(offload_server, comfy_server, chromium):
    """The row's Stop button, for a prompt running on ComfyUI server c: it ends interrupted
    here and leaves c's queue."""
    which = offload_server.which
    page = Page(chromium, offload_server.url)
    try:
        tab, _workflow, _color = page.run_on("comfyui:c", f"server-stop-{which}", seconds=30.0)
        prompt_id = page.queue_one(tab)
        page.wait_progress(prompt_id)
        page.page.locator(
            f'.parallel-runs-row[data-prompt-id="{prompt_id}"] .parallel-runs-stop'
        ).click()
        page.wait_status(prompt_id, "interrupted")
        assert not page.row(prompt_id)["stop"]
        _, jobs = http_json(f"{offload_server.url}/parallel/offload/jobs")
        (job,) = [j for j in jobs["jobs"] if j["prompt_id"] == prompt_id]
        assert job["status"] == "interrupted"
        deadline = time.monotonic() + 10  # c stops it at its next step
        while job["job_id"] in json.dumps(http_json(f"{comfy_server.url}/queue")[1]):
            assert time.monotonic() < deadline, "the prompt stayed in c's queue"
            time.sleep(0.1)
        assert page.errors == []
    finally:
        page.close()


def test_a_server_is_added_and_removed_from_the_panel(offload_server, comfy_server, chromium):
    """The panel's "ComfyUI servers" form: a person adds one (its auth header never shown
    back), it is offered in "Run on" at once, then removes it; the environment's servers stay
    listed and cannot be removed here."""
    page = Page(chromium, offload_server.url)
    try:
        page.page.click(".parallel-runs-servers > summary")
        page.page.fill(".parallel-runs-server-name", f"panel-{offload_server.which}")
        page.page.fill(".parallel-runs-server-url", comfy_server.url)
        page.page.fill(".parallel-runs-server-auth", "Bearer panel-secret-123")
        page.page.click(".parallel-runs-server-save")
        added = f'.parallel-runs-servers-list li[data-server="panel-{offload_server.which}"]'
        page.page.locator(added).wait_for(timeout=WAIT)
        assert "auth header set" in page.page.text_content(added)
        assert page.page.input_value(".parallel-runs-server-auth") == ""
        option = f'.parallel-runs-executor option[value="comfyui:panel-{offload_server.which}"]'
        page.page.locator(option).wait_for(state="attached", timeout=WAIT)
        assert (
            page.page.locator('.parallel-runs-servers-list li[data-server="b"] button').count() == 0
        )
        page.page.click(f"{added} .parallel-runs-server-remove")
        page.page.locator(added).wait_for(state="detached", timeout=WAIT)
        page.page.locator(option).wait_for(state="detached", timeout=WAIT)
        assert "panel-secret-123" not in page.answers_text()
        assert page.errors == []
    finally:
        page.close()
