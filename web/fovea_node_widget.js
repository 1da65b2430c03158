// Canvas widget of the Fovea node: click sets the center of the nearest fovea, drag (or the
// wheel) sets its radius, shift-click adds a fovea, right-click removes one. The levels (full,
// 1/2, 1/4) are drawn token by token with the same rules as the sampler, with the live token
// ratio and the FLOP-ideal speedup, for the model of the Apply Foveation the node feeds once that
// has run (its token size and FLOP model), else for FLUX.2 [klein] 4B.
//
// The state is the node's widget values (x, y, radius, aspect, rotation, extra_gazes); an edit
// writes only the values it changed and keeps every field of every gaze it did not touch
// (fovea_values.js).
import { app } from "../../scripts/app.js";
import * as G from "./fovea_geometry.js";
import * as V from "./fovea_values.js";
import { View, policyOf, readoutText, setValues, values, watch, withinLimits } from "./fovea_canvas_view.js";

const STATE_WIDGETS = ["x", "y", "radius", "aspect", "rotation", "extra_gazes"];
const DRAWN_WIDGETS = [...STATE_WIDGETS, "width", "height", "periphery", "ring_scale"];

export function attachFovea(node) {
  let active = 0; // index into the gazes: 0 = primary (x, y, radius, ...), then extra_gazes
  let dragging = false;
  const read = () => {
    const state = V.readFovea(values(node, STATE_WIDGETS));
    active = Math.min(active, state.gazes.length - 1); // extra_gazes may have been typed shorter
    return state;
  };
  const commit = (state) => setValues(node, V.foveaChanges(values(node, STATE_WIDGETS), state), app.canvas);

  const view = new View(node, () => {
    const { ctx, L } = view.begin();
    const grid = view.grid(L);
    const state = read();
    const problem = state.extraError ? `extra_gazes is not shown (the canvas leaves it as it is): ${state.extraError}` : "";
    try {
      const map = G.levelMap(state.gazes, policyOf(node), grid.H, grid.W);
      view.levels(ctx, L, map, grid);
      const merged = node.inputs?.find((i) => i.name === "fovea")?.link != null;
      view.text.textContent = [readoutText(map, grid, merged ? " + connected fovea" : "", view.model), problem].filter(Boolean)
        .join(" · ");
    } catch (err) {
      view.text.textContent = String(err.message || err);
    }
    state.gazes.forEach((g, i) => view.gaze(ctx, L, g, i === active));
  });

  view.on(view.canvas, "pointerdown", (e) => {
    const p = view.toNorm(e);
    const state = read();
    if (e.button === 2) { // remove the nearest fovea (the last one stays)
      const fits = (g) => V.GAZE_FIELDS.every((f) => withinLimits(node, f, g[f]));
      if (V.removeGaze(state, V.nearestGaze(state.gazes, p), fits)) {
        active = 0;
        commit(state);
      }
      return;
    }
    if (e.button !== 0) return;
    p.x = G.clamp(p.x, 0, 1);
    p.y = G.clamp(p.y, 0, 1);
    if (e.shiftKey) {
      const i = V.addGaze(state, p.x, p.y, Math.min(state.gazes[active].radius, 0.2));
      if (i < 0) return; // extra_gazes cannot be read: the readout says why
      active = i;
    } else {
      active = V.nearestGaze(state.gazes, p);
      V.moveGaze(state, active, p.x, p.y);
    }
    commit(state);
    dragging = true;
    view.capture(e);
  });
  view.on(view.canvas, "pointermove", (e) => {
    if (!dragging) return;
    const L = view.layout();
    const p = view.toNorm(e);
    const state = read();
    const r = G.radiusTo(state.gazes[active], p.x, p.y, L.wPx, L.hPx);
    if (r > 0.005) {
      V.setGazeRadius(state, active, G.clamp(r, 0.005, 2));
      commit(state); // the values follow every move; the drawing follows once per frame
    }
  });
  const stop = () => { dragging = false; };
  view.on(view.canvas, "pointerup", stop);
  view.on(view.canvas, "pointercancel", stop);
  view.on(view.canvas, "wheel", (e) => {
    e.preventDefault();
    const state = read();
    V.setGazeRadius(state, active, G.clamp(state.gazes[active].radius * (e.deltaY > 0 ? 0.95 : 1.05), 0.005, 2));
    commit(state);
  }, { passive: false });

  watch(node, DRAWN_WIDGETS, () => view.redraw());
  node.__foveaHasPreviewInput = () => node.inputs?.find((i) => i.name === "preview_image")?.link != null;
  view.redraw();
  return view;
}
