// Unit tests for web/state/values.js: one spelling of ids, times and outputs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { eventMillis, idOf, mergeOutput, sameJson, toMillis } from "../../web/state/values.js";

test("toMillis reads ms, Python seconds, numeric strings and ISO dates", () => {
  assert.equal(toMillis(1_700_000_000_123), 1_700_000_000_123);
  assert.equal(toMillis(1_700_000_000.5), 1_700_000_000_500);
  assert.equal(toMillis("1700000000"), 1_700_000_000_000);
  assert.equal(toMillis("2024-01-01T00:00:00Z"), Date.parse("2024-01-01T00:00:00Z"));
  for (const nothing of [null, undefined, "", "yesterday", Number.NaN, Infinity, {}]) {
    assert.equal(toMillis(nothing), null, String(nothing));
  }
});

test("eventMillis keeps finite numbers only", () => {
  assert.equal(eventMillis(1_234), 1_234);
  assert.equal(eventMillis("1234"), null);
  assert.equal(eventMillis(Number.NaN), null);
  assert.equal(eventMillis(undefined), null);
});

test("idOf turns numbers into string ids and keeps missing ids missing", () => {
  assert.equal(idOf(5), "5");
  assert.equal(idOf("5"), "5");
  assert.equal(idOf(0), "0");
  assert.equal(idOf(""), "");
  assert.equal(idOf(null), null);
  assert.equal(idOf(undefined), null);
});

test("sameJson compares by content and survives values JSON cannot write", () => {
  assert.equal(sameJson({ a: [1, 2] }, { a: [1, 2] }), true);
  assert.equal(sameJson({ a: [1, 2] }, { a: [2, 1] }), false);
  const cyclic = {};
  cyclic.self = cyclic;
  assert.equal(sameJson(cyclic, cyclic), true, "same object");
  assert.equal(sameJson(cyclic, { self: {} }), false, "throws inside, answers false");
});

test("mergeOutput appends lists, replaces the rest, and starts from nothing", () => {
  const before = { images: [{ filename: "a.png" }], text: ["x"], keep: 1 };
  const merged = mergeOutput(before, { images: [{ filename: "b.png" }], text: "y" });
  const images = [{ filename: "a.png" }, { filename: "b.png" }];
  assert.deepEqual(merged, { images, text: "y", keep: 1 });
  assert.deepEqual(before.images, [{ filename: "a.png" }], "the previous output is not mutated");
  const next = { images: [] };
  assert.equal(mergeOutput(undefined, next), next);
  assert.equal(mergeOutput(before, null), null);
});
