// The canvas widgets' state <-> the nodes' widget values, losing nothing. Pure functions, no DOM.
//
// Fovea: x, y, radius, aspect, rotation (the primary gaze) and extra_gazes, a JSON list whose
// items are [x, y, radius], [x, y, radius, aspect], [x, y, radius, aspect, rotation] or
// {"x", "y", "radius", optional "aspect", "rotation", any other keys}. Gaze Path: keyframes, a
// JSON list of {"frame", "x", "y", "radius", any other keys} or [frame, x, y, radius].
// (The forms nodes/fovea_nodes.py parse_gazes / parse_keyframes accept; the checks here mirror
// theirs.)
//
// Every gaze or keyframe read from the text keeps the item it came from. Writing back changes
// only the fields the canvas edited (rounded to 4 digits) and keeps the item's other fields, its
// form (list or object) and its other keys exactly. A widget whose value did not change is not
// written, and a text the widget cannot read is never rewritten by the canvas.
import { round } from "./fovea_geometry.js";

export const GAZE_FIELDS = ["x", "y", "radius", "aspect", "rotation"];
const GAZE_LIST_DEFAULTS = [undefined, undefined, undefined, 1.0, 0.0]; // aspect, rotation
export const PRIMARY_DEFAULTS = { x: 0.5, y: 0.5, radius: 0.35, aspect: 1.0, rotation: 0.0 };
export const KEYFRAME_FIELDS = ["frame", "x", "y", "radius"];

function jsonList(text, name, example) {
  const src = text == null ? "" : String(text);
  let items;
  try {
    items = JSON.parse(src.trim() ? src : "[]");
  } catch (err) {
    throw new Error(`${name} must be JSON, e.g. ${example}; could not parse it: ${err.message}`);
  }
  if (!Array.isArray(items)) throw new Error(`${name} must be a JSON list, e.g. ${example}`);
  return items;
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

// What Python's float() makes of a JSON value (the node converts object fields with it).
function pyFloat(v) {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "string" && v.trim() !== "") return Number(v.trim());
  return NaN;
}

function finite(entry, fields, where) {
  for (const f of fields) {
    if (!Number.isFinite(entry[f])) throw new Error(`${where}: ${f} must be a finite number`);
  }
  return entry;
}

// ------------------------------------------------------------------ gazes (extra_gazes)
function readGaze(item, i) {
  const where = `extra_gazes[${i}]`;
  if (isObject(item)) {
    for (const k of ["x", "y", "radius"]) {
      if (!has(item, k)) throw new Error(`${where} lacks '${k}'; give x, y and radius`);
    }
    return finite({
      x: pyFloat(item.x), y: pyFloat(item.y), radius: pyFloat(item.radius),
      aspect: has(item, "aspect") ? pyFloat(item.aspect) : 1.0,
      rotation: has(item, "rotation") ? pyFloat(item.rotation) : 0.0,
    }, GAZE_FIELDS, where);
  }
  if (Array.isArray(item) && item.length >= 3 && item.length <= 5
      && item.every((v) => typeof v === "number" || typeof v === "boolean")) {
    const [x, y, radius, aspect = 1.0, rotation = 0.0] = item.map(pyFloat);
    return finite({ x, y, radius, aspect, rotation }, GAZE_FIELDS, where);
  }
  throw new Error(`${where} = ${JSON.stringify(item)}: expected [x, y, radius] (optionally aspect, rotation)`);
}

// extra_gazes text -> [{x, y, radius, aspect, rotation, src}] (src: the JSON item it came from).
export function parseGazes(text) {
  return jsonList(text, "extra_gazes", "[[0.3, 0.4, 0.2]]").map((item, i) => ({ ...readGaze(item, i), src: item }));
}

// The JSON item for an entry: its source item with the edited fields replaced, or a new item.
function itemFor(entry, fields, read, listDefaults, fresh) {
  if (entry.src === undefined) return fresh(entry);
  const before = read(entry.src);
  const out = Array.isArray(entry.src) ? entry.src.slice() : { ...entry.src };
  fields.forEach((f, i) => {
    if (entry[f] === before[f]) return; // untouched: exactly as it was
    if (Array.isArray(out)) {
      while (out.length < i) out.push(listDefaults[out.length]);
      out[i] = round(entry[f]);
    } else {
      out[f] = round(entry[f]);
    }
  });
  return out;
}

// New items take the form of the list's other items (lists unless they are objects) and name
// aspect and rotation only when they are not the defaults.
function newGazeItem(g, asObject) {
  const fields = ["x", "y", "radius"];
  if (g.rotation !== 0.0) fields.push("aspect", "rotation");
  else if (g.aspect !== 1.0) fields.push("aspect");
  return asObject ? Object.fromEntries(fields.map((f) => [f, round(g[f])])) : fields.map((f) => round(g[f]));
}

export function formatGazes(gazes) {
  const asObject = isObject(gazes.findLast((g) => g.src !== undefined)?.src);
  return JSON.stringify(gazes.map((g) => itemFor(g, GAZE_FIELDS, (src) => readGaze(src, 0), GAZE_LIST_DEFAULTS,
    (e) => newGazeItem(e, asObject))));
}

// ------------------------------------------------------------------ the Fovea node
// Widget values {x, y, radius, aspect, rotation, extra_gazes} -> the canvas state: gazes[0] is
// the primary gaze, then extra_gazes. extraError: why extra_gazes could not be read (then the
// canvas edits only the primary gaze and leaves the text as it is).
export function readFovea(values) {
  const primary = {};
  for (const f of GAZE_FIELDS) primary[f] = values[f] ?? PRIMARY_DEFAULTS[f];
  let extra = [];
  let extraError = null;
  try {
    extra = parseGazes(values.extra_gazes);
  } catch (err) {
    extraError = err.message;
  }
  return { gazes: [primary, ...extra], extraError };
}

// The widget values that differ between `values` and `state`: {name: new value}.
export function foveaChanges(values, state) {
  const changes = {};
  const before = readFovea(values);
  const p = state.gazes[0];
  for (const f of GAZE_FIELDS) {
    if (p[f] !== before.gazes[0][f]) changes[f] = round(p[f]);
  }
  if (!state.extraError && !before.extraError) {
    const text = formatGazes(state.gazes.slice(1));
    if (text !== formatGazes(before.gazes.slice(1))) changes.extra_gazes = text;
  }
  return changes;
}

export function moveGaze(state, i, x, y) {
  state.gazes[i].x = x;
  state.gazes[i].y = y;
}

export function setGazeRadius(state, i, radius) {
  state.gazes[i].radius = radius;
}

// Adds a circle; its index, or -1 when extra_gazes cannot be read (nothing is added).
export function addGaze(state, x, y, radius) {
  if (state.extraError) return -1;
  state.gazes.push({ x, y, radius, aspect: 1.0, rotation: 0.0 });
  return state.gazes.length - 1;
}

// Removes a gaze (one always stays). Removing the primary one makes the first extra gaze that
// canBePrimary(gaze) allows (one within the primary widgets' limits) the primary, with all its
// fields (x, y, radius, aspect, rotation); without one nothing is removed. False if nothing was.
export function removeGaze(state, i, canBePrimary = () => true) {
  if (state.gazes.length < 2) return false;
  if (i === 0) {
    const next = state.gazes.findIndex((g, j) => j > 0 && canBePrimary(g));
    if (next < 0) return false;
    state.gazes.splice(1, 0, ...state.gazes.splice(next, 1));
  }
  state.gazes.splice(i, 1);
  return true;
}

export function nearestGaze(gazes, p) {
  let best = 0;
  let bestD = Infinity;
  gazes.forEach((g, i) => {
    const d = Math.hypot(g.x - p.x, g.y - p.y);
    if (d < bestD) { bestD = d; best = i; }
  });
  return best;
}

// ------------------------------------------------------------------ keyframes (Gaze Path)
function readKeyframe(item, i) {
  const where = `keyframes[${i}]`;
  let frame;
  let x;
  let y;
  let radius;
  if (isObject(item)) {
    for (const k of KEYFRAME_FIELDS) {
      if (!has(item, k)) throw new Error(`${where} lacks '${k}'; give frame, x, y and radius`);
    }
    ({ frame, x, y, radius } = item);
  } else if (Array.isArray(item) && item.length === 4) {
    [frame, x, y, radius] = item;
  } else {
    throw new Error(`${where} = ${JSON.stringify(item)}: expected {frame, x, y, radius}`);
  }
  if (typeof frame !== "number" || !Number.isInteger(frame)) {
    throw new Error(`${where}: the frame index must be an integer, got ${JSON.stringify(frame)}`);
  }
  if (![x, y, radius].every((v) => typeof v === "number" && Number.isFinite(v))) {
    throw new Error(`${where}: x, y and radius must be numbers`);
  }
  return { frame, x, y, radius };
}

export function parseKeyframes(text) {
  const example = '[{"frame": 0, "x": 0.5, "y": 0.5, "radius": 0.2}]';
  return jsonList(text, "keyframes", example).map((item, i) => ({ ...readKeyframe(item, i), src: item }));
}

// In frame order (stable: keyframes of one frame keep their order).
export function sortedKeyframes(keyframes) {
  return keyframes.slice().sort((p, q) => p.frame - q.frame);
}

export function formatKeyframes(keyframes) {
  const asList = Array.isArray(keyframes.find((k) => k.src !== undefined)?.src);
  const fresh = (k) => (asList ? [k.frame, round(k.x), round(k.y), round(k.radius)]
    : { frame: k.frame, x: round(k.x), y: round(k.y), radius: round(k.radius) });
  return JSON.stringify(sortedKeyframes(keyframes).map((k) => itemFor(k, KEYFRAME_FIELDS, (src) => readKeyframe(src, 0),
    [], fresh)));
}

// Widget values {keyframes} -> {keyframes: [...], error}; with an error the canvas edits nothing.
export function readPath(values) {
  try {
    return { keyframes: parseKeyframes(values.keyframes), error: null };
  } catch (err) {
    return { keyframes: [], error: err.message };
  }
}

export function pathChanges(values, state) {
  const before = readPath(values);
  if (state.error || before.error) return {};
  const text = formatKeyframes(state.keyframes);
  return text === formatKeyframes(before.keyframes) ? {} : { keyframes: text };
}

export function keyframeAt(state, frame) {
  return state.keyframes.find((k) => k.frame === frame) ?? null;
}

// Moves the keyframe at `frame`, or adds one there with `radius`. False when nothing changed.
export function placeKeyframe(state, frame, x, y, radius) {
  if (state.error) return false;
  const k = keyframeAt(state, frame);
  if (k) {
    k.x = x;
    k.y = y;
  } else {
    state.keyframes.push({ frame, x, y, radius });
  }
  return true;
}

export function moveKeyframe(state, frame, x, y) {
  const k = state.error ? null : keyframeAt(state, frame);
  if (!k) return false;
  k.x = x;
  k.y = y;
  return true;
}

export function setKeyframeRadius(state, frame, radius) {
  const k = state.error ? null : keyframeAt(state, frame);
  if (!k) return false;
  k.radius = radius;
  return true;
}

export function removeKeyframe(state, frame) {
  const k = state.error ? null : keyframeAt(state, frame);
  if (!k) return false;
  state.keyframes.splice(state.keyframes.indexOf(k), 1);
  return true;
}
