// Node's built-in test runner: the canvas widgets' pure logic. Widget values survive every edit
// (fovea_values.js), redraws are coalesced to one per frame (fovea_canvas_view.js), and image
// events find their node inside subgraphs (fovea_graph.js). Run by tests/test_web_geometry.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as V from "../../web/fovea_values.js";
import { frameCoalescer } from "../../web/fovea_canvas_view.js";
import { nodeByExecutionId, nodePath, sourceNode, sourceNodes } from "../../web/fovea_graph.js";

const items = (text) => JSON.parse(text);
const fovea = (extra, primary = {}) => ({ x: 0.5, y: 0.5, radius: 0.35, aspect: 1, rotation: 0, extra_gazes: extra, ...primary });

test("every extra_gazes form the node accepts is read with all its fields", () => {
  const text = JSON.stringify([[0.2, 0.3, 0.1], [0.7, 0.6, 0.15, 0.5], [0.4, 0.8, 0.2, 2.5, -30],
    { x: 0.25, y: 0.75, radius: 0.12 }, { x: "0.3", y: "0.6", radius: "0.2", aspect: "1.5", rotation: "-90", tag: 1 },
    [1, 0, 1, true]]);
  const got = V.parseGazes(text).map(({ src, ...g }) => g);
  assert.deepEqual(got, [
    { x: 0.2, y: 0.3, radius: 0.1, aspect: 1, rotation: 0 },
    { x: 0.7, y: 0.6, radius: 0.15, aspect: 0.5, rotation: 0 },
    { x: 0.4, y: 0.8, radius: 0.2, aspect: 2.5, rotation: -30 },
    { x: 0.25, y: 0.75, radius: 0.12, aspect: 1, rotation: 0 },
    { x: 0.3, y: 0.6, radius: 0.2, aspect: 1.5, rotation: -90 },
    { x: 1, y: 0, radius: 1, aspect: 1, rotation: 0 },
  ]);
});

test("what the node rejects is not read (so the canvas never rewrites it)", () => {
  for (const [text, message] of [
    ["{", /must be JSON/], ['{"x": 1}', /JSON list/], ['[{"x": 0.5, "y": 0.5}]', /lacks 'radius'/],
    ["[[0.5, 0.5]]", /expected \[x, y, radius\]/], ["[[0.5, 0.5, 0.2, 1, 0, 7]]", /expected/],
    ['[[0.5, "0.5", 0.2]]', /expected/], ['[{"x": "left", "y": 0.5, "radius": 0.2}]', /finite/],
  ]) {
    assert.throws(() => V.parseGazes(text), message, text);
    const state = V.readFovea(fovea(text));
    assert.match(state.extraError, message);
    assert.equal(V.addGaze(state, 0.1, 0.1, 0.1), -1);
    V.moveGaze(state, 0, 0.25, 0.75); // the primary gaze can still be edited ...
    assert.deepEqual(V.foveaChanges(fovea(text), state), { x: 0.25, y: 0.75 }); // ... the text stays
  }
  assert.deepEqual(V.parseGazes(""), []);
  assert.deepEqual(V.parseGazes("  "), []);
});

test("a no-op writes nothing, not even a reformatted text", () => {
  const text = '[ [0.2, 0.3, 0.1],\n  {"radius": 0.12, "x": 0.25, "y": 0.75, "note": "x"} ]';
  const values = fovea(text, { x: 0.123456, aspect: 0.6, rotation: 20 });
  assert.deepEqual(V.foveaChanges(values, V.readFovea(values)), {});
  const state = V.readFovea(values);
  V.moveGaze(state, 1, 0.2, 0.3); // where it already is
  assert.deepEqual(V.foveaChanges(values, state), {});
});

test("editing one gaze keeps every other field and item exactly", () => {
  const src = [[0.2, 0.3, 0.1], [0.7, 0.6, 0.15, 0.5], [0.4, 0.8, 0.2, 2.5, -30],
    { x: "0.3", y: 0.6, radius: 0.2, aspect: 1.5, rotation: -90, note: "keep" }];
  const values = fovea(JSON.stringify(src), { x: 0.123456, aspect: 0.6, rotation: 20 });
  const state = V.readFovea(values);
  V.moveGaze(state, 3, 0.11111, 0.9);
  V.setGazeRadius(state, 4, 0.333333);
  const changes = V.foveaChanges(values, state);
  assert.deepEqual(Object.keys(changes), ["extra_gazes"]); // the primary's x stays 0.123456
  assert.deepEqual(items(changes.extra_gazes), [src[0], src[1], [0.1111, 0.9, 0.2, 2.5, -30],
    { x: "0.3", y: 0.6, radius: 0.3333, aspect: 1.5, rotation: -90, note: "keep" }]);
});

test("new gazes are circles in the list's own form; list items grow only as needed", () => {
  const asLists = V.readFovea(fovea("[[0.2, 0.3, 0.1]]"));
  V.addGaze(asLists, 0.5, 0.25, 0.2);
  assert.deepEqual(items(V.foveaChanges(fovea("[[0.2, 0.3, 0.1]]"), asLists).extra_gazes), [[0.2, 0.3, 0.1], [0.5, 0.25, 0.2]]);
  const dicts = '[{"x": 0.2, "y": 0.3, "radius": 0.1}]';
  const asDicts = V.readFovea(fovea(dicts));
  V.addGaze(asDicts, 0.5, 0.25, 0.2);
  assert.deepEqual(items(V.foveaChanges(fovea(dicts), asDicts).extra_gazes)[1], { x: 0.5, y: 0.25, radius: 0.2 });
  const first = V.readFovea(fovea(""));
  V.addGaze(first, 0.5, 0.25, 0.2);
  assert.equal(V.foveaChanges(fovea(""), first).extra_gazes, "[[0.5,0.25,0.2]]");
  // a 3-item gaze that gets a rotation gains the default aspect in between
  const grown = V.readFovea(fovea("[[0.2, 0.3, 0.1]]"));
  grown.gazes[1].rotation = 15;
  assert.deepEqual(items(V.foveaChanges(fovea("[[0.2, 0.3, 0.1]]"), grown).extra_gazes), [[0.2, 0.3, 0.1, 1, 15]]);
});

test("removing the primary gaze promotes the next one with all its fields", () => {
  const values = fovea('[{"x": 0.8, "y": 0.2, "radius": 0.1, "aspect": 0.4, "rotation": 30}, [0.1, 0.1, 0.1]]',
    { aspect: 2, rotation: -45 });
  const state = V.readFovea(values);
  assert.equal(V.removeGaze(state, 0), true);
  assert.deepEqual(V.foveaChanges(values, state),
    { x: 0.8, y: 0.2, radius: 0.1, aspect: 0.4, rotation: 30, extra_gazes: "[[0.1,0.1,0.1]]" });
  // a gaze outside the primary widgets' limits is skipped; with none that fits nothing is removed
  const limits = fovea("[[0.5, 0.5, 0.2, 30], [0.25, 0.75, 0.1, 0.5, 12.5]]");
  const fits = (g) => g.aspect <= 20;
  const skipped = V.readFovea(limits);
  assert.equal(V.removeGaze(skipped, 0, fits), true);
  assert.deepEqual(V.foveaChanges(limits, skipped),
    { x: 0.25, y: 0.75, radius: 0.1, aspect: 0.5, rotation: 12.5, extra_gazes: "[[0.5,0.5,0.2,30]]" });
  const none = V.readFovea(fovea("[[0.5, 0.5, 0.2, 30]]"));
  assert.equal(V.removeGaze(none, 0, fits), false);
  assert.equal(V.removeGaze(none, 1, fits), true); // extra gazes can always go
  const single = V.readFovea(fovea("[]"));
  assert.equal(V.removeGaze(single, 0), false); // the last one stays
  assert.equal(V.nearestGaze(V.readFovea(values).gazes, { x: 0.12, y: 0.1 }), 2);
});

test("keyframes: every form is kept, edits touch only their fields, order is by frame", () => {
  const src = [{ frame: 0, x: 0.3, y: 0.5, radius: 0.25 }, { frame: 40, x: 0.5, y: 0.2, radius: 0.3, note: "peak" },
    { frame: 80, x: 0.7, y: 0.5, radius: 0.25 }];
  const text = JSON.stringify(src).replace('"frame":40', '"frame":40.0');
  const values = { keyframes: text };
  assert.deepEqual(V.pathChanges(values, V.readPath(values)), {});
  const state = V.readPath(values);
  assert.equal(V.moveKeyframe(state, 40, 0.55, 0.25), true);
  assert.equal(V.placeKeyframe(state, 60, 0.6, 0.4, 0.2), true);
  assert.equal(V.setKeyframeRadius(state, 80, 0.3333333), true);
  assert.deepEqual(items(V.pathChanges(values, state).keyframes), [src[0],
    { frame: 40, x: 0.55, y: 0.25, radius: 0.3, note: "peak" }, { frame: 60, x: 0.6, y: 0.4, radius: 0.2 },
    { frame: 80, x: 0.7, y: 0.5, radius: 0.3333 }]);
  const lists = { keyframes: "[[0, 0.1, 0.2, 0.3], [10, 0.4, 0.5, 0.2]]" };
  const ls = V.readPath(lists);
  V.placeKeyframe(ls, 5, 0.5, 0.5, 0.25);
  V.removeKeyframe(ls, 0);
  assert.deepEqual(items(V.pathChanges(lists, ls).keyframes), [[5, 0.5, 0.5, 0.25], [10, 0.4, 0.5, 0.2]]);
  assert.equal(V.moveKeyframe(ls, 7, 0.1, 0.1), false); // no keyframe at frame 7
});

test("keyframes the node rejects are left alone", () => {
  for (const [text, message] of [
    ["[[1, 0.5", /must be JSON/], ['[{"frame": 1, "x": 0.5, "y": 0.5}]', /lacks 'radius'/],
    ['[{"frame": 1.5, "x": 0.5, "y": 0.5, "radius": 0.2}]', /integer/], ["[[0, 0.5, 0.5]]", /expected/],
    ['[{"frame": 1, "x": "0.5", "y": 0.5, "radius": 0.2}]', /must be numbers/],
  ]) {
    const state = V.readPath({ keyframes: text });
    assert.match(state.error, message, text);
    assert.equal(V.placeKeyframe(state, 3, 0.5, 0.5, 0.2), false);
    assert.deepEqual(V.pathChanges({ keyframes: text }, state), {});
  }
});

test("any number of redraw requests within a frame give one draw", () => {
  const frames = [];
  let draws = 0;
  const c = frameCoalescer(() => { draws++; }, (cb) => frames.push(cb) && frames.length, () => frames.pop());
  for (let i = 0; i < 100; i++) c.request();
  assert.equal(frames.length, 1);
  assert.equal(draws, 0);
  frames.shift()();
  assert.equal(draws, 1);
  c.request();
  c.request();
  assert.equal(frames.length, 1);
  c.cancel();
  assert.equal(frames.length, 0);
  assert.equal(c.pending, false);
  c.request();
  frames.shift()();
  assert.equal(draws, 2);
});

// A graph shaped like the frontend's: string ids, links in a Map, a subgraph's inputs as links
// from node "-10", its outputs' linkIds inside the subgraph.
function graph(nodes, links) {
  const g = { nodes: {}, links: new Map(), getNodeById: (id) => g.nodes[id] ?? null };
  for (const n of nodes) { g.nodes[n.id] = n; n.graph = g; }
  for (const [id, origin_id, origin_slot] of links) g.links.set(id, { id, origin_id, origin_slot });
  return g;
}
const node = (id, type, inputs = [], extra = {}) => ({ id, type, inputs: inputs.map(([name, link]) => ({ name, link })), ...extra });

test("nodes inside subgraphs are found by their execution id", () => {
  const inner = node("5", "Fovea", [], { view: true });
  const sub = graph([inner], []);
  const outer = node("12", "Subgraph", [], { subgraph: sub });
  const root = graph([outer, node("3", "Fovea")], []);
  assert.equal(nodeByExecutionId(root, "12:5"), inner);
  assert.equal(nodeByExecutionId(root, 3)?.id, "3");
  assert.equal(nodeByExecutionId(root, "3")?.id, "3");
  assert.deepEqual(nodePath(root, "12:5"), [outer, inner]);
  assert.equal(nodeByExecutionId(root, "12:6"), null);
  assert.equal(nodeByExecutionId(root, "3:5"), null); // node 3 is no subgraph
  assert.equal(nodeByExecutionId(root, ""), null);
  // numeric ids (older frontends) are found from their string form too
  const numeric = { getNodeById: (id) => (id === 7 ? { id: 7 } : null) };
  assert.equal(nodeByExecutionId(numeric, "7")?.id, 7);
});

test("the fovea feeding a decode is found through reroutes and subgraph boundaries", () => {
  const isFovea = (n) => n.type === "Fovea";
  // same graph, through a reroute
  const f = node("1", "Fovea");
  const r = node("2", "Reroute", [["", 1]]);
  const d = node("3", "FoveatedDecode", [["samples", null], ["fovea", 2]]);
  const g = graph([f, r, d], [[1, "1", 0], [2, "2", 0]]);
  assert.equal(sourceNode([d], isFovea), f);
  // decode inside a subgraph, fovea outside (through the subgraph's input 1)
  const di = node("4", "FoveatedDecode", [["fovea", 7]]);
  const sub = graph([di], [[7, "-10", 1]]);
  const outerFovea = node("8", "Fovea");
  const sn = node("9", "Subgraph", [["vae", null], ["fovea", 11]], { subgraph: sub });
  graph([outerFovea, sn], [[11, "8", 0]]);
  assert.equal(sourceNode([sn, di], isFovea), outerFovea);
  // fovea inside a subgraph, decode outside (through the subgraph's output 0)
  const fi = node("5", "Fovea");
  const sub2 = graph([fi], [[21, "5", 0]]);
  sub2.outputs = [{ name: "FOVEA", linkIds: [21] }];
  const sn2 = node("6", "Subgraph", [], { subgraph: sub2 });
  const dOut = node("10", "FoveatedDecode", [["fovea", 31]]);
  graph([sn2, dOut], [[31, "6", 0]]);
  assert.equal(sourceNode([dOut], isFovea), fi);
  // nothing connected, or a subgraph input with no link outside
  assert.equal(sourceNode([node("11", "FoveatedDecode", [["fovea", null]])], isFovea), null);
  assert.equal(sourceNode([di], isFovea), null);
  assert.equal(g.links.size, 2);
});

test("every canvas node feeding an Apply Foveation is found: merged foveae, reroutes, subgraphs", () => {
  const isCanvas = (n) => n.type === "Fovea" || n.type === "GazePath";
  // GazePath -> Fovea (its fovea input merges it) -> reroute -> FoveaFromMask (merges) -> [Apply]
  const gp = node("1", "GazePath", [["fovea", null]]);
  const f = node("2", "Fovea", [["preview_image", null], ["fovea", 1]]);
  const r = node("3", "Reroute", [["", 2]]);
  const m = node("4", "FoveaFromMask", [["mask", 9], ["fovea", 3]]);
  const img = node("5", "Fovea", [["fovea", null]]); // feeds the mask input's chain: not the fovea
  const mk = node("6", "SolidMask", [["", 10]]);
  const applyIn = node("7", "ApplyFoveation", [["model", null], ["fovea", 5]]);
  const sub = graph([applyIn], [[5, "-10", 1]]);
  const sn = node("8", "Subgraph", [["model", null], ["fovea", 4]], { subgraph: sub });
  graph([gp, f, r, m, img, mk, sn], [[1, "1", 0], [2, "2", 0], [3, "3", 0], [4, "4", 0], [9, "6", 0], [10, "5", 0]]);
  assert.deepEqual(sourceNodes([sn, applyIn], isCanvas), [f, gp]);
  assert.equal(sourceNode([sn, applyIn], isCanvas), f);
  // a canvas node inside a subgraph, the Apply outside it
  const fi = node("11", "Fovea", [["fovea", 12]]);
  const sub2 = graph([fi], [[21, "11", 0], [12, "-10", 0]]);
  sub2.outputs = [{ name: "FOVEA", linkIds: [21] }];
  const outer = node("13", "Fovea", [["fovea", null]]);
  const sn2 = node("14", "Subgraph", [["fovea", 22]], { subgraph: sub2 });
  const apply = node("15", "ApplyFoveation", [["model", null], ["fovea", 31]]);
  graph([outer, sn2, apply], [[31, "14", 0], [22, "13", 0]]);
  assert.deepEqual(sourceNodes([apply], isCanvas), [fi, outer]);
  // nothing connected
  assert.deepEqual(sourceNodes([node("16", "ApplyFoveation", [["fovea", null]])], isCanvas), []);
});
