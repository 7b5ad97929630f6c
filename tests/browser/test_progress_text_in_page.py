"""The stock frontends' own decoders receive our frames: two browser contexts (two clients)
queue overlapping prompts with the same node ids; each page's `progress_text` events carry
only its own text, and on the newest frontend its own prompt id."""

from __future__ import annotations

import uuid

import pytest
from graphs import slow_note_graph

pytestmark = pytest.mark.browser

# Runs in the page: subscribe to the frontend's decoded progress_text events.
LISTEN = """async () => {
  const { api } = await import('/scripts/api.js');
  window.__parallelTest = [];
  api.addEventListener('progress_text', (e) => window.__parallelTest.push(e.detail));
  return true;
}"""
# Wait until the socket is up (and, where supported, flags negotiated); report the layout.
READY = """async () => {
  const { api } = await import('/scripts/api.js');
  const id = api.clientId ?? api.initialClientId;
  if (!id || !api.socket || api.socket.readyState !== 1) return null;
  const scoped = typeof api.serverSupportsFeature === 'function'
    && api.serverSupportsFeature('supports_progress_text_metadata');
  return { id, scoped };
}"""
QUEUE = """async (prompt) => {
  const { api } = await import('/scripts/api.js');
  const body = JSON.stringify({ prompt, client_id: api.clientId ?? api.initialClientId });
  const response = await api.fetchApi('/prompt', { method: 'POST', body });
  return (await response.json()).prompt_id;
}"""


@pytest.mark.parametrize("which", ["pinned", "newest"])
def test_each_tab_sees_only_its_own_progress_text(request, chromium, artifacts_dir, which):
    server = request.getfixturevalue("comfy_server" if which == "pinned" else "comfy_server_newest")
    tag = uuid.uuid4().hex[:6]
    contexts = [chromium.new_context(viewport={"width": 1200, "height": 800}) for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    try:
        for page in pages:  # both pages load at once (each context has its own renderer)
            page.goto(server.url, wait_until="commit")
        for page in pages:
            page.wait_for_function(
                "() => document.documentElement.dataset.parallelRuns", timeout=60_000
            )
            page.evaluate(LISTEN)
            page.wait_for_function(READY, timeout=30_000)
        layouts = [page.evaluate(READY) for page in pages]
        notes = [f"tab {i} {tag}" for i in range(2)]
        prompt_ids = [
            page.evaluate(
                QUEUE,
                slow_note_graph(
                    note,
                    seconds=1.0 if i == 0 else 0.2,
                    steps=2,
                    width=48,
                    height=16,
                    output="preview",
                ),
            )
            for i, (page, note) in enumerate(zip(pages, notes, strict=True))
        ]
        for page, note in zip(pages, notes, strict=True):
            page.wait_for_function(
                "(note) => window.__parallelTest.some((d) => d.text === note)",
                arg=note,
                timeout=60_000,
            )
        pages[0].wait_for_timeout(300)  # let any stray frame arrive before we judge
        received = [page.evaluate("() => window.__parallelTest") for page in pages]
        pages[0].screenshot(path=str(artifacts_dir / f"progress-text-{which}.png"))
    finally:
        for context in contexts:
            context.close()

    # Both frontends see the server's flag; only the newest also advertises it and decodes
    # the scoped layout. The pinned one must still decode its legacy frames correctly.
    assert [layout["scoped"] for layout in layouts] == [True, True]
    for mine, theirs, events, prompt_id in zip(
        notes, reversed(notes), received, prompt_ids, strict=True
    ):
        texts = [e["text"] for e in events]
        assert mine in texts
        assert theirs not in texts
        assert {e["nodeId"] for e in events} == {"2", "3"}
        if which == "newest":
            assert {e.get("prompt_id") for e in events} == {prompt_id}
        else:
            assert all("prompt_id" not in e for e in events)
