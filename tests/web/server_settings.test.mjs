import { test } from "node:test";
import assert from "node:assert/strict";

import { checkServer, serverText } from "../../web/views/server_settings.js";

test("a server is checked before it is sent, the auth header only when typed", () => {
  assert.deepEqual(checkServer(" gpu2 ", " http://127.0.0.1:8189 ", "  "), {
    ok: true,
    body: { name: "gpu2", url: "http://127.0.0.1:8189" },
  });
  assert.deepEqual(checkServer("studio", "https://10.0.0.5:8188", "Bearer x").body.auth, "Bearer x");
  assert.equal(checkServer("../x", "http://h:1").ok, false);
  assert.equal(checkServer("x", "ftp://h").ok, false);
  assert.equal(checkServer("x", "http://h:1/?q=1").ok, false);
  assert.match(checkServer("x", "").message, /http:\/\//);
});

test("a server's line names it, its address, and never its header", () => {
  const text = serverText({ name: "gpu2", url: "http://127.0.0.1:8189", source: "panel", auth_set: true });
  assert.equal(text, "gpu2: http://127.0.0.1:8189, auth header set");
  assert.equal(
    serverText({ name: "b", url: "http://b:1", source: "env", auth_set: false }),
    "b: http://b:1 (from the environment)",
  );
});
