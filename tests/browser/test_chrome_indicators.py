"""The browser tab's title and favicon and the frontend's top bar (active count, queue badge,
progress overlay) describe the same prompts as the panel, on the pinned and the newest
frontend. A person's steps: load two workflows into tabs, run one here and one on another
ComfyUI (chosen in the panel) with Ctrl+Enter, click the tabs, change "Show prompts from" in
the settings dialog, press the panel's Stop all; and read the title, favicon and top bar.

ComfyUI A is the session server of that frontend; the other session server is named "other"
in A's settings (as a script would), so a prompt can run on another ComfyUI. A prompt of
"another client" is posted to A's /prompt by the test (set-up): it waits behind tab A's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from graphs import slow_note_graph
from http_json import get_json, post_json
from panel_harness import (
    LOAD_WORKFLOW,
    OPEN_PANEL,
    PANEL_ROWS,
    WAIT,
    choose_setting,
    open_comfy_page,
    queue_with_keyboard,
    switch_tab,
    ui_workflow,
    wait_row,
)

pytestmark = pytest.mark.browser
LONG = 80.0  # seconds tab A's prompt would run (B's five times as long); Stop all ends them
PROMPT_IDS = "() => window.__parallelRuntime.store.all().map((s) => s.prompt_id)"
OURS = re.compile(r"^\[(\d+) running (?:\+(\d+) queued )?(\d+)%\] (.*)$")
PERCENT_BRACKETS = re.compile(r"\[[^\]]*%\]")

# What a person sees of the tab: its title and its icon (the href the browser shows).
TAB = """() => ({
  title: document.title,
  icon: document.querySelector('link[rel*="icon"]')?.getAttribute('href') ?? null,
})"""

# The top bar as it reads on screen: 1.58's "N active" button and its dot, 1.32's queue
# button badge, and the progress overlay's "Total", "running" and "queued" (null when hidden).
TOP_BAR = """() => {
  const shown = (el) => !!el && el.checkVisibility({ visibilityProperty: true });
  const toggle = document.querySelector('[data-testid="queue-overlay-toggle"]');
  const badge = document.querySelector('button.queue-history-toggle');
  const overlay = document.querySelector('[data-testid="queue-progress-overlay"]')
    ?? document.querySelector('.actionbar-container + div > div');
  const text = shown(overlay) ? overlay.innerText : '';
  const number = (re) => { const m = re.exec(text); return m ? Number(m[1]) : null; };
  const dot = toggle && [...toggle.querySelectorAll('span')].some((s) => shown(s)
    && !s.textContent.trim() && s.getBoundingClientRect().width > 0
    && s.getBoundingClientRect().width <= 12);
  return {
    active: toggle ? Number(/(\\d+)\\s*active/.exec(toggle.innerText)?.[1] ?? NaN) : null,
    dot: toggle ? dot : null,
    badge: badge ? badge.innerText.trim() : null,
    total: number(/Total:\\s*(\\d+)\\s*%/),
    running: number(/(\\d+)\\s*running/),
    queued: number(/(\\d+)\\s*queued/),
  };
}"""

# The hovered overlay's running / queued row has faded in.
TOP_BAR_SETTLED = """() => {
  const row = [...document.querySelectorAll('[class*="transition-opacity"]')]
    .find((el) => /\\d+\\s*running/.test(el.textContent));
  return !!row && getComputedStyle(row).opacity === '1';
}"""

# The actionbar and the progress overlay under it, with a margin: a screenshot's clip.
TOP_BAR_BOX = """() => {
  const parts = [
    document.querySelector('.actionbar-container') ?? document.querySelector('.actionbar'),
    document.querySelector('[data-testid="queue-progress-overlay"]')
      ?? document.querySelector('.actionbar-container + div > div'),
  ].map((el) => el.getBoundingClientRect());
  const x = Math.max(0, Math.min(...parts.map((r) => r.left)) - 8);
  const y = Math.max(0, Math.min(...parts.map((r) => r.top)) - 8);
  const right = Math.max(...parts.map((r) => r.right)) + 8;
  const bottom = Math.max(...parts.map((r) => r.bottom)) + 8;
  return { x, y, width: Math.min(right, window.innerWidth) - x, height: bottom - y };
}"""

# The colour of the favicon's pixel where ours draws its "some wait" dot.
WAITING_PIXEL = """async (href) => {
  const img = new Image();
  img.src = href;
  await img.decode();
  const canvas = Object.assign(document.createElement('canvas'), { width: 32, height: 32 });
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0, 32, 32);
  return [...ctx.getImageData(26, 6, 1, 1).data];
}"""


class Person:
    """One browser context on A with the panel open, and what it reads off the screen."""

    def __init__(self, browser: Any, url: str) -> None:
        self.errors: list[str] = []
        self.context, self.page = open_comfy_page(
            browser, url, before_load=lambda p: p.on("pageerror", self._error)
        )
        assert self.page.evaluate(OPEN_PANEL)

    def _error(self, error: Any) -> None:
        self.errors.append(str(error))

    def open_tab(self, name: str, seconds: float, executor: str = "local") -> str:
        """Set-up: a workflow in a new tab, run on `executor` (chosen in the panel header)."""
        workflow = ui_workflow(f"note {name}", seconds, 80)
        tab = self.page.evaluate(LOAD_WORKFLOW, [workflow, name])
        if executor != "local":
            self.page.select_option(".parallel-runs-executor", executor)
        return tab

    def queue(self, tab: str) -> str:
        """Ctrl+Enter on the tab on screen; the id of the prompt it added, once running."""
        known = self.page.evaluate(PROMPT_IDS)
        queue_with_keyboard(self.page)
        self.page.wait_for_function(
            """([wf, known]) => window.__parallelRuntime.store.all().some((s) =>
                 s.workflow_id === wf && !known.includes(s.prompt_id))""",
            arg=[tab, known],
            timeout=WAIT,
        )
        (new,) = set(self.page.evaluate(PROMPT_IDS)) - set(known)
        self.wait_row(new, "running", above=0)
        return new

    def wait_row(self, prompt_id: str, status: str, above: float | None = None) -> None:
        wait_row(self.page, prompt_id, status, above)

    def wait_apart(self, ahead: str, behind: str) -> None:
        """Until the panel shows `ahead`'s progress 5 points past `behind`'s."""
        self.page.wait_for_function(
            """([a, b]) => {
                 const bar = (id) => document.querySelector(
                   `.parallel-runs-row[data-prompt-id="${id}"] .parallel-runs-bar`);
                 const f = (id) => Number(bar(id).dataset.fraction);
                 return f(a) - f(b) > 0.05;
               }""",
            arg=[ahead, behind],
            timeout=WAIT,
        )

    def rows(self) -> dict[str, dict[str, Any]]:
        return {row["prompt_id"]: row for row in self.page.evaluate(PANEL_ROWS)}

    def tab(self) -> dict[str, Any]:
        return self.page.evaluate(TAB)

    def top_bar(self) -> dict[str, Any]:
        return self.page.evaluate(TOP_BAR)

    def wait_title(self, pattern: str) -> str:
        self.page.wait_for_function(
            "(p) => new RegExp(p).test(document.title)", arg=pattern, timeout=WAIT
        )
        return self.tab()["title"]

    def wait_top_bar_agrees(self, prompt_id: str, **counts: int) -> dict[str, Any]:
        """Until the top bar's Total is the panel row's percent (one point of rounding) and its
        counts are `counts`; the top bar then."""
        self.page.wait_for_function(
            f"""([id, counts]) => {{
                 const bar = ({TOP_BAR})();
                 const row = document.querySelector(`.parallel-runs-row[data-prompt-id="${{id}}"]`);
                 const bar_ = row.querySelector('.parallel-runs-bar');
                 const percent = 100 * Number(bar_.dataset.fraction);
                 return bar.total !== null && Math.abs(bar.total - percent) <= 1
                   && Object.entries(counts).every(([key, value]) => bar[key] === value);
               }}""",
            arg=[prompt_id, counts],
            timeout=WAIT,
        )
        return self.top_bar()

    def screenshot_top_bar(self, path: Path) -> None:
        """Hover the progress overlay (its running / queued row fades in), then a picture of
        the actionbar and the overlay."""
        self.page.get_by_text(re.compile(r"^\s*Total:")).first.hover()
        self.page.wait_for_function(TOP_BAR_SETTLED, timeout=WAIT)
        box = self.page.evaluate(TOP_BAR_BOX)
        self.page.screenshot(path=str(path), clip=box)

    def show_prompts_from(self, choice: str) -> None:
        """The "Show prompts from" setting, changed in the Settings dialog."""
        choose_setting(self.page, "Show prompts from", choice)

    def waiting_dot(self) -> bool:
        """Whether the favicon shows ours' amber "some wait" dot."""
        red, green, blue, _ = self.page.evaluate(WAITING_PIXEL, self.tab()["icon"])
        return red > 200 and 100 < green < 190 and blue < 80

    def close(self) -> None:
        self.context.close()


def one_indicator(title: str) -> re.Match[str]:
    """The title carries exactly one bracketed percentage, and it is ours."""
    assert len(PERCENT_BRACKETS.findall(title)) == 1, title
    ours = OURS.match(title)
    assert ours, title
    return ours


def render_tabs(page: Any, url: str, states: list[tuple[str, dict[str, Any]]], path: Path) -> None:
    """A picture of the browser tab strip (headless Chromium draws none): each state's icon
    and title as a tab."""

    def icon(href: str) -> str:
        return href if href.startswith("data:") else url + href

    tabs = "".join(
        f'<div class="tab"><img src="{icon(state["icon"])}"><span>{state["title"]}</span>'
        f"<i>{label}</i></div>"
        for label, state in states
    )
    page.set_content(
        """<style>body{margin:0;background:#dee1e6;font:13px sans-serif;padding:8px}
        .tab{display:flex;align-items:center;gap:8px;background:#fff;border-radius:8px 8px 0 0;
        padding:8px 12px;width:420px;margin-bottom:6px}.tab img{width:16px;height:16px}
        .tab span{flex:1;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
        .tab i{color:#777;font-size:11px}</style>"""
        + tabs
    )
    page.wait_for_function("() => [...document.images].every((i) => i.complete)")
    height = 16 + 45 * len(states)
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 460, "height": height})


def test_title_favicon_and_top_bar_follow_the_panel(paired_server, chromium, artifacts_dir):
    """Tab A runs a prompt here, tab B one on the other ComfyUI: the title has one indicator,
    ours, for both; the favicon is ours; the top bar tells the tab on screen's prompt, for B
    and then for A. "Every client" adds another client's waiting prompt to the title, the
    favicon and the panel at once, "This browser tab" takes it out. After Stop all the title
    and the favicon are the frontend's own again."""
    person = Person(chromium, paired_server.url)
    page = person.page
    try:
        stock = person.tab()
        assert not OURS.match(stock["title"]) and not stock["icon"].startswith("data:")

        tab_a = person.open_tab("chrome-A", LONG)
        a = person.queue(tab_a)
        tab_b = person.open_tab("chrome-B", 5 * LONG, "comfyui:other")
        b = person.queue(tab_b)
        assert person.rows()[b]["executor"] == "comfyui:other"

        # the title: one indicator, ours, for both prompts, with the workflow on screen
        title = person.wait_title(r"^\[2 running \d+%\] \*chrome-B - ComfyUI$")
        one_indicator(title)
        page.wait_for_function(
            """() => {
                 const m = /^\\[2 running (\\d+)%\\]/.exec(document.title);
                 const bars = [...document.querySelectorAll('.parallel-runs-bar')];
                 const sum = bars.reduce((t, b) => t + Number(b.dataset.fraction), 0);
                 const mean = sum / bars.length;
                 return m && bars.length === 2 && Math.abs(Number(m[1]) - 100 * mean) <= 1;
               }""",
            timeout=WAIT,
        )
        running = person.tab()
        assert running["icon"].startswith("data:image/png") and running["icon"] != stock["icon"]

        # the top bar tells tab B's prompt (on screen), not the frontend's own 0
        bar = person.wait_top_bar_agrees(b, running=1, queued=0)
        if paired_server.which == "newest":
            assert bar["active"] == 1 and bar["dot"] is True
        else:
            assert bar["badge"] == ""  # B has nothing waiting
        person.screenshot_top_bar(artifacts_dir / f"top-bar-{paired_server.which}.png")

        # tab A on screen (its prompt by then well ahead of B's): the top bar follows
        person.wait_apart(a, b)
        switch_tab(page, "chrome-A", tab_a)
        person.wait_top_bar_agrees(a, running=1, queued=0)
        one_indicator(person.wait_title(r"^\[2 running \d+%\] \*chrome-A - ComfyUI$"))

        # another client's prompt waits behind A's: shown only with "Every client"
        other = post_json(
            f"{paired_server.url}/prompt",
            {"prompt": slow_note_graph("other client", seconds=1.0), "client_id": "someone-else"},
        )["prompt_id"]
        assert other in [
            item[1] for item in get_json(f"{paired_server.url}/queue")["queue_pending"]
        ]
        assert not person.waiting_dot()
        person.show_prompts_from("Every client of this server")
        title = person.wait_title(r"^\[2 running \+1 queued \d+%\] \*chrome-A - ComfyUI$")
        one_indicator(title)
        page.wait_for_function(
            f"() => !!document.querySelector('.parallel-runs-row[data-prompt-id=\"{other}\"]')",
            timeout=WAIT,
        )
        assert person.waiting_dot()
        origin = page.locator(f'.parallel-runs-row[data-prompt-id="{other}"] .parallel-runs-origin')
        assert origin.inner_text() == "another client"
        every = person.tab()
        assert person.top_bar()["running"] == 1  # tab A's: the other client's has no tab here

        person.show_prompts_from("This browser tab")
        one_indicator(person.wait_title(r"^\[2 running \d+%\] \*chrome-A - ComfyUI$"))
        assert not person.waiting_dot()
        assert other not in person.rows()
        post_json(f"{paired_server.url}/queue", {"delete": [other]})  # clean-up

        # Stop all: the title and the favicon are the frontend's own again
        page.get_by_role("button", name="Stop all").click()
        for prompt_id in (a, b):
            person.wait_row(prompt_id, "interrupted")
        person.wait_title(r"^\*chrome-A - ComfyUI$")
        page.wait_for_function(
            "(icon) => document.querySelector('link[rel*=icon]')?.getAttribute('href') === icon",
            arg=stock["icon"],
            timeout=WAIT,
        )
        idle = person.top_bar()
        assert idle["total"] is None  # no progress overlay for a tab running nothing
        if paired_server.which == "newest":
            assert idle["active"] == 0 and idle["dot"] is False
        assert person.errors == []

        render_tabs(
            page,
            paired_server.url,
            [("2 running", running), ("every client", every), ("idle", person.tab())],
            artifacts_dir / f"title-and-favicon-{paired_server.which}.png",
        )
    finally:
        person.close()
