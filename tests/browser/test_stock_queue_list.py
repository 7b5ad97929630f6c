"""The frontend's own queue list shows offloaded prompts, names where they run, follows "Show
prompts from", and its cancel stops them; on the pinned (1.32, Queue sidebar and job queue
popup) and the newest frontend (1.58, job list). A person's steps: load workflows into tabs,
Ctrl+Enter, pick the executor in the panel, open the stock list, hover a job, click its
Cancel, right-click a card and pick Delete, change the setting in the Settings dialog.

ComfyUI A is the session server of that frontend; the other session server is named "other"
in A's settings (as a script would), so a prompt can run on another ComfyUI. A second browser
context is another client of A, whose prompt waits behind ours."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from panel_harness import (
    LOAD_WORKFLOW,
    OPEN_PANEL,
    WAIT,
    choose_setting,
    open_comfy_page,
    queue_with_keyboard,
    tidy,
    ui_workflow,
)

from conftest import PairedServer

pytestmark = pytest.mark.browser
LONG = 120.0  # seconds A's and B's prompts would run: the test stops both long before
SETTING = "ParallelRuns.Show.From"
LABEL = "Show prompts from (panel"
THIS_TAB, EVERY_CLIENT = "This browser tab", "Every client of this server"
PROMPT_IDS = "() => window.__parallelRuntime.store.all().map((s) => s.prompt_id)"
BADGE = ".parallel-runs-stock-executor"
DETAIL = ".parallel-runs-stock-executor-detail"
PANEL_BUTTON = re.compile(r"^Parallel Runs")  # the panel's sidebar button

# The frontend's own fetch and parse of its queue (1.58: zod over GET /jobs; it throws when an
# entry does not pass, and shows no job at all): [id, status, executor kept] per job.
OWN_PARSE = """async () => {
  const { api } = await import('/scripts/api.js');
  const queue = await api.getQueue({ throwOnError: true });
  const rows = (list, status) => list.map((job) => job.id !== undefined
    ? [job.id, job.status, job.parallel_runs?.executor ?? null]
    : [job.prompt[1], status, job.prompt[3]?.parallel_runs?.executor ?? null]);
  return [...rows(queue.Running, 'in_progress'), ...rows(queue.Pending, 'pending')];
}"""
# The details popover has faded in: every ancestor of its "Executor" line fully opaque.
SETTLED = """() => {
  const detail = [...document.querySelectorAll('.parallel-runs-stock-executor-detail')].at(-1);
  let opacity = 1;
  for (let el = detail; el; el = el.parentElement) opacity *= Number(getComputedStyle(el).opacity);
  return !!detail && opacity > 0.99;
}"""
OWN_HISTORY = """async () => {
  const { api } = await import('/scripts/api.js');
  const history = await api.getHistory(64);
  return (Array.isArray(history) ? history : history.History ?? [])
    .map((job) => [job.id ?? job.prompt?.[1], job.status ?? null]);
}"""


class Person:
    """One browser context on A with the panel open; page errors and the frontends' own
    complaints about their job list are collected."""

    def __init__(self, browser: Any, url: str) -> None:
        self.url = url
        self.errors: list[str] = []
        self.context, self.page = open_comfy_page(browser, url, before_load=self._watch)
        assert self.page.evaluate(OPEN_PANEL)

    def _watch(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda m: (
                self.errors.append(m.text)
                if m.type == "error" and re.search(r"Jobs API|fetch (queue|history)", m.text)
                else None
            ),
        )

    def queue(self, name: str, executor: str = "local", seconds: float = LONG) -> str:
        """Set-up: a workflow in a new tab, its executor picked in the panel; then what a
        person does: Ctrl+Enter. The id of the prompt it added, once accepted."""
        known = self.page.evaluate(PROMPT_IDS)
        workflow = ui_workflow(f"{name} {uuid.uuid4().hex[:6]}", seconds, 60)
        tab = self.page.evaluate(LOAD_WORKFLOW, [workflow, name])
        self.page.select_option(".parallel-runs-executor", executor)
        queue_with_keyboard(self.page)
        self.page.wait_for_function(
            """([wf, known]) => window.__parallelRuntime.store.all().some((s) =>
                 s.workflow_id === wf && !known.includes(s.prompt_id)
                 && (s.executor !== 'local' || s.number !== null))""",
            arg=[tab, known],
            timeout=WAIT,
        )
        (new,) = set(self.page.evaluate(PROMPT_IDS)) - set(known)
        return new

    def wait_status(self, prompt_id: str, status: str) -> None:
        """Until the page's record of the prompt has `status` (the panel may be behind the
        Queue sidebar meanwhile: see `panel_says`)."""
        self.page.wait_for_function(
            "([id, status]) => window.__parallelRuntime.store.get(id)?.status === status",
            arg=[prompt_id, status],
            timeout=WAIT,
        )

    def panel_says(self, statuses: dict[str, str]) -> None:
        """Open the Parallel Runs panel (its sidebar button) unless it is on screen, and wait
        until its rows of these prompts read these statuses."""
        if not self.page.locator(".parallel-runs-panel").is_visible():
            self.page.get_by_role("button", name=PANEL_BUTTON).click()
        self.page.wait_for_function(
            """(want) => Object.entries(want).every(([id, status]) => document.querySelector(
                 `.parallel-runs-row[data-prompt-id="${id}"]`)?.dataset.status === status)""",
            arg=statuses,
            timeout=WAIT,
        )

    def close(self) -> None:
        self.context.close()


# --- the newest frontend's job list ------------------------------------------------------------


def open_job_list(page: Any) -> None:
    """Unless the job list is on screen: click the actionbar's "N active" button, and if that
    shows the running summary, its "View all jobs"."""
    rows = page.locator("[data-job-id]")
    if rows.count() > 0 and rows.first.is_visible():
        return
    page.locator('[data-testid="queue-overlay-toggle"]').click()
    page.wait_for_function(
        """() => document.querySelector('[data-job-id]')
          || [...document.querySelectorAll('button')].some((b) =>
               b.textContent.trim() === 'View all jobs' && b.checkVisibility())""",
        timeout=WAIT,
    )
    if rows.count() == 0:
        page.get_by_role("button", name="View all jobs").click()
    rows.first.wait_for(timeout=WAIT)


def job_rows(page: Any, ids: set[str]) -> None:
    """Until the job list shows exactly these of `ids`... among its running and waiting jobs."""
    page.wait_for_function(
        """(ids) => {
          const shown = [...document.querySelectorAll('[data-job-id]')]
            .filter((row) => /Running|In queue|Total:/.test(row.textContent))
            .map((row) => row.dataset.jobId).sort();
          return JSON.stringify(shown) === JSON.stringify(ids);
        }""",
        arg=sorted(ids),
        timeout=WAIT,
    )


def newest_list(person: Person, a: str, b: str, theirs: str, shot: Path) -> None:
    page = person.page
    open_job_list(page)
    job_rows(page, {a, b})  # this tab's two: not the other client's waiting one
    badge = page.locator(f'[data-job-id="{b}"] {BADGE}')
    badge.wait_for(timeout=WAIT)
    assert badge.inner_text() == "on comfyui:other"
    assert page.locator(f'[data-job-id="{a}"] {BADGE}').count() == 0  # local: as stock
    page.locator(f'[data-job-id="{b}"]').hover()  # the details say where it runs
    detail = page.locator(DETAIL)
    detail.last.wait_for(timeout=WAIT)
    assert detail.last.inner_text() == "comfyui:other"
    page.wait_for_function(SETTLED, timeout=WAIT)
    page.screenshot(path=str(shot))

    choose_setting(page, LABEL, EVERY_CLIENT)
    open_job_list(page)
    job_rows(page, {a, b, theirs})
    choose_setting(page, LABEL, THIS_TAB)
    open_job_list(page)
    job_rows(page, {a, b})

    page.locator(f'[data-job-id="{b}"]').hover()  # the stock list's own Cancel
    page.locator(f'[data-job-id="{b}"]').get_by_role("button", name="Cancel").click()
    person.panel_says({b: "interrupted", a: "running"})  # only B
    job_rows(page, {a})
    page.locator(f'[data-job-id="{a}"]').hover()  # and on a prompt of this ComfyUI
    page.locator(f'[data-job-id="{a}"]').get_by_role("button", name="Cancel").click()
    person.panel_says({a: "interrupted"})


# --- the pinned frontend's Queue sidebar and job queue popup -------------------------------------


def sidebar_cards(page: Any, expected: list[str]) -> None:
    """Until the Queue sidebar's waiting and running cards read `expected` (in order)."""
    page.wait_for_function(
        """(want) => JSON.stringify([...document.querySelectorAll('.task-item')]
             .map((card) => card.querySelector('.status-tag-group')?.textContent.trim())
             .filter((s) => s === 'Pending' || s === 'Running')) === JSON.stringify(want)""",
        arg=expected,
        timeout=WAIT,
    )


def hover_job(page: Any, prompt_id: str) -> Any:
    """Open the job queue popup (its button in the actionbar) unless it is open, and hover
    each job until its details name `prompt_id`; that job's row (its details stay open)."""
    titles = page.locator("div.truncate.opacity-90[title]")
    if titles.count() == 0 or not titles.first.is_visible():
        page.locator("button.queue-history-toggle").click()
    titles.first.wait_for(timeout=WAIT)
    for index in range(titles.count()):
        title = titles.nth(index)
        title.hover()
        shown = page.get_by_text(prompt_id, exact=True)
        try:
            shown.wait_for(timeout=3000)
        except Exception:  # the details of another job: hover the next one
            continue
        return title.locator("xpath=ancestor::div[@class='relative'][1]")
    raise AssertionError(f"no job in the popup has the id {prompt_id}")


def pinned_list(person: Person, a: str, b: str, theirs: str, shot: Path) -> None:
    page = person.page
    page.get_by_role("button", name=re.compile(r"^Queue \(q\)")).click()  # the Queue sidebar
    sidebar_cards(page, ["Running", "Running"])  # A and B; not the other client's waiting one
    row = hover_job(page, b)  # in the job queue popup
    detail = page.locator(DETAIL)
    detail.last.wait_for(timeout=WAIT)
    assert detail.last.inner_text() == "comfyui:other"
    page.wait_for_function(SETTLED, timeout=WAIT)
    page.screenshot(path=str(shot))

    choose_setting(page, LABEL, EVERY_CLIENT)
    sidebar_cards(page, ["Pending", "Running", "Running"])
    choose_setting(page, LABEL, THIS_TAB)
    sidebar_cards(page, ["Running", "Running"])

    row = hover_job(page, b)
    row.get_by_role("button", name="Cancel").click()  # the popup's own Cancel
    person.panel_says({b: "interrupted", a: "running"})  # only B
    page.get_by_role("button", name=re.compile(r"^Queue \(q\)")).click()  # back to the sidebar
    sidebar_cards(page, ["Running"])
    card = page.locator(".task-item", has_text="Running")  # A's, the one left: Delete
    card.click(button="right")
    page.get_by_role("menuitem", name="Delete").click()
    person.panel_says({a: "interrupted"})


def test_the_stock_list_shows_names_and_cancels_an_offloaded_prompt(
    paired_server: PairedServer, chromium: Any, artifacts_dir: Path
) -> None:
    """Tab A's prompt runs here, tab B's on the other ComfyUI, another client's waits here.
    The stock list shows A and B (B named "on comfyui:other"), every client's with the
    setting switched; its Cancel stops B there while A runs on, then A."""
    person = Person(chromium, paired_server.url)
    other = Person(chromium, paired_server.url)
    prompts: list[str] = []
    try:
        a = person.queue("list-A")
        prompts.append(a)
        person.wait_status(a, "running")
        b = person.queue("list-B", "comfyui:other")
        prompts.append(b)
        person.wait_status(b, "running")
        theirs = other.queue("list-C", seconds=1.0)  # waits behind A
        prompts.append(theirs)
        other.wait_status(theirs, "queued")

        parsed = person.page.evaluate(OWN_PARSE)  # the frontend's own fetch and parse
        assert sorted(parsed) == sorted(
            [[a, "in_progress", None], [b, "in_progress", "comfyui:other"]]
        )
        shot = artifacts_dir / f"queue-list-{paired_server.which}.png"
        if paired_server.which == "newest":
            newest_list(person, a, b, theirs, shot)
            history = dict(person.page.evaluate(OWN_HISTORY))
            assert history.get(b) == "cancelled"
        else:
            pinned_list(person, a, b, theirs, shot)
        assert person.errors == []
        assert other.errors == []
    finally:
        tidy(paired_server.url, prompts, {SETTING: "tab"})
        person.close()
        other.close()
