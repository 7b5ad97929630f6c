// The pure parts of the RunPod settings form: what it says about the key (never more than the
// server's view), what it sends, and how it words the server's refusals. The DOM side is
// covered by tests/browser/test_offload_in_browser.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { endpointPlaceholder } from "../../web/views/executor_choice.js";
import {
  checkEndpoint,
  checkKey,
  keyStatusText,
  refusalText,
  summaryText,
} from "../../web/views/offload_settings.js";

const view = (over = {}) => ({
  endpoint_id: "ep-1",
  base_url_is_default: true,
  api_key_set: true,
  api_key_last4: "wxyz",
  api_key_source: "file",
  allowed: true,
  allowed_detail: "ComfyUI listens on loopback only",
  ...over,
});

test("keyStatusText says whether a key is set, its last four and where it comes from", () => {
  assert.equal(keyStatusText(view()), "API key set (ends in wxyz), saved on the ComfyUI server");
  assert.equal(
    keyStatusText(view({ api_key_source: "env" })),
    "API key set (ends in wxyz), from RUNPOD_API_KEY in ComfyUI's environment",
  );
  // short keys: the server withholds the last four, and so do we
  assert.equal(
    keyStatusText(view({ api_key_last4: null })),
    "API key set, saved on the ComfyUI server",
  );
  const none = view({ api_key_set: false, api_key_last4: null, api_key_source: null });
  assert.equal(keyStatusText(none), "No API key set");
  assert.equal(keyStatusText(null), "RunPod settings unavailable");
});

test("summaryText fits key and default endpoint on one line", () => {
  assert.equal(summaryText(view()), "RunPod: key …wxyz, endpoint ep-1");
  assert.equal(
    summaryText(view({ api_key_set: false, api_key_last4: null, endpoint_id: null })),
    "RunPod: no key, no default endpoint",
  );
  assert.equal(summaryText(view({ api_key_last4: null })), "RunPod: key …set, endpoint ep-1");
});

test("checkKey trims, and refuses empty or non-printable keys before anything is sent", () => {
  assert.deepEqual(checkKey("  rp_ABC123  "), { ok: true, value: "rp_ABC123" });
  assert.equal(checkKey("").ok, false);
  assert.equal(checkKey("   ").ok, false);
  assert.equal(checkKey(undefined).ok, false);
  assert.equal(checkKey("two words").ok, false);
  assert.equal(checkKey("é-key").ok, false);
  assert.equal(checkKey("k".repeat(513)).ok, false);
  assert.equal(checkKey("k".repeat(512)).ok, true);
});

test("checkEndpoint takes RunPod's id shape, and empty clears the default", () => {
  assert.deepEqual(checkEndpoint(" abc-123_x "), { ok: true, value: "abc-123_x" });
  assert.deepEqual(checkEndpoint(""), { ok: true, value: "" });
  assert.equal(checkEndpoint("-leading").ok, false);
  assert.equal(checkEndpoint("has space").ok, false);
  assert.equal(checkEndpoint("../x").ok, false);
  assert.equal(checkEndpoint("a".repeat(65)).ok, false);
});

test("refusalText shows the server's message, else a plain HTTP status", () => {
  const message = "the key comes from RUNPOD_API_KEY";
  const body = { error: { type: "key_from_env", message, field: "api_key" } };
  assert.equal(refusalText(409, body), message);
  assert.equal(refusalText(409, {}), "The server refused the change (HTTP 409)");
  assert.equal(refusalText(400, { error: {} }), "The server rejected the value (HTTP 400)");
  assert.equal(refusalText(502, null), "The request failed (HTTP 502)");
});

test("endpointPlaceholder names the server's default endpoint", () => {
  assert.equal(endpointPlaceholder("ep-1"), "default: ep-1");
  assert.equal(endpointPlaceholder(null), "endpoint id (none set)");
});
