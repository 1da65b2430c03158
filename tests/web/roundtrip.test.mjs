// Node's built-in test runner: widget values written by Python go through the canvas widgets'
// edit path (read -> edits -> changed values) of web/fovea_values.js. FOVEA_VALUE_CASES is the
// JSON list of cases tests/widget_value_cases.py wrote ({node, values, edits}); the new values
// go to FOVEA_VALUE_RESULTS, where Python parses them with the nodes' own code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import * as V from "../../web/fovea_values.js";

const cases = JSON.parse(readFileSync(process.env.FOVEA_VALUE_CASES, "utf8"));

// Each edit as the canvas makes it; returns the gaze / keyframe it changed (null if none).
const EDITS = {
  Fovea: {
    move: (s, i, x, y) => { V.moveGaze(s, i, x, y); return s.gazes[i]; },
    radius: (s, i, r) => { V.setGazeRadius(s, i, r); return s.gazes[i]; },
    add: (s, x, y, r) => { assert.ok(V.addGaze(s, x, y, r) > 0); return null; },
    remove: (s, i) => { assert.ok(V.removeGaze(s, i)); return null; },
  },
  GazePath: {
    place: (s, f, x, y, r) => { const k = V.keyframeAt(s, f); assert.ok(V.placeKeyframe(s, f, x, y, r)); return k; },
    move: (s, f, x, y) => { assert.ok(V.moveKeyframe(s, f, x, y)); return V.keyframeAt(s, f); },
    radius: (s, f, r) => { assert.ok(V.setKeyframeRadius(s, f, r)); return V.keyframeAt(s, f); },
    remove: (s, f) => { assert.ok(V.removeKeyframe(s, f)); return null; },
  },
};

function run(c) {
  const fovea = c.node === "Fovea";
  const state = fovea ? V.readFovea(c.values) : V.readPath(c.values);
  assert.equal(fovea ? state.extraError : state.error, null, JSON.stringify(c.values));
  const touched = new Set();
  for (const [op, ...args] of c.edits) touched.add(EDITS[c.node][op](state, ...args));
  const changes = fovea ? V.foveaChanges(c.values, state) : V.pathChanges(c.values, state);
  const values = { ...c.values, ...changes };
  if (!c.edits.length) assert.deepEqual(changes, {}, "a no-op changed values");
  // every item the edits did not touch is written back exactly as Python wrote it
  const entries = fovea ? state.gazes.slice(1) : V.sortedKeyframes(state.keyframes);
  const textName = fovea ? "extra_gazes" : "keyframes";
  const written = JSON.parse(values[textName] || "[]");
  assert.equal(written.length, entries.length);
  entries.forEach((e, j) => {
    if (e.src !== undefined && !touched.has(e)) assert.deepEqual(written[j], e.src, `${textName}[${j}]`);
  });
  if (fovea && !c.edits.some(([op, i]) => (op !== "move" && op !== "radius") || i > 0)) {
    assert.ok(!(textName in changes), "extra_gazes was rewritten though no extra gaze changed");
  }
  return { values, changes };
}

test("Python's widget values survive the canvas edits", () => {
  assert.ok(cases.length >= 10);
  const results = cases.map((c, i) => {
    try {
      return run(c);
    } catch (err) {
      err.message = `case ${i} ${JSON.stringify(c)}: ${err.message}`;
      throw err;
    }
  });
  writeFileSync(process.env.FOVEA_VALUE_RESULTS, JSON.stringify(results));
});
