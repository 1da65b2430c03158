// Canvas widget of the Gaze Path node: a frame scrubber; a click adds (or moves) the keyframe
// at the current frame, keyframes are dragged, right-click removes one, the wheel sets the
// radius of the keyframe at the current frame; the interpolated path (PCHIP, as in fov_core) is
// drawn.
//
// What is drawn is what is generated: a video model generates latent frames, each of which
// covers FRAME_STRIDE video frames (Wan's VAE: latent frame 0 = video frame 0, latent frame t =
// video frames 4t-3 .. 4t). The tokens are shaded with the levels of the latent frame the
// scrubbed video frame belongs to, the finest level the gaze wants over all its video frames
// (fov_core.rasterize), and the readout gives that latent frame's tokens and the whole video's.
//
// The state is the node's widget values (keyframes, num_frames); an edit rewrites keyframes
// only when it changed and keeps every field of every keyframe it did not touch
// (fovea_values.js).
import { app } from "../../scripts/app.js";
import * as G from "./fovea_geometry.js";
import * as V from "./fovea_values.js";
import { ACCENT, View, policyOf, setValues, value, values, watch } from "./fovea_canvas_view.js";

const FRAME_STRIDE = G.WAN_FRAME_STRIDE; // video frames per latent frame (Wan 2.1 / 2.2)
const MAX_TOTAL_FRAMES = 1024; // latent frames up to which the readout totals the whole video

// Level maps of the path's latent frames, computed when first drawn and kept until the path,
// the frame count, the size or the periphery change.
function levelCache() {
  let key = null;
  let maps = [];
  return (list, n, policy, grid) => {
    const k = JSON.stringify([list.map((f) => [f.frame, f.x, f.y, f.radius]), n, policy, grid]);
    if (k !== key) { key = k; maps = []; }
    return (t) => (maps[t] ??= G.pathLevelMap(list, t, n, policy, grid.H, grid.W, FRAME_STRIDE));
  };
}

function percent(a, b) { return `${(100 * a / b).toFixed(1)}%`; }

export function attachPath(node) {
  let frame = 0;
  let dragKey = null;
  const read = () => V.readPath(values(node, ["keyframes"]));
  const commit = (state) => setValues(node, V.pathChanges(values(node, ["keyframes"]), state), app.canvas);
  const frames = () => Math.max(1, value(node, "num_frames", 81));

  const bar = document.createElement("div");
  bar.style.cssText = "display:flex;gap:6px;align-items:center;font:12px monospace;color:#ddd;";
  const scrub = document.createElement("input");
  scrub.type = "range";
  scrub.min = "0";
  scrub.step = "1";
  scrub.style.cssText = "flex:1 1 auto;";
  scrub.dataset.foveaScrubber = "1";
  const label = document.createElement("span");
  bar.append(scrub, label);

  const levelsOf = levelCache();
  const view = new View(node, () => {
    const n = frames();
    scrub.max = String(n - 1);
    frame = Math.min(frame, n - 1);
    scrub.value = String(frame);
    const state = read();
    const list = V.sortedKeyframes(state.keyframes);
    const isKey = list.some((k) => k.frame === frame);
    const T = G.latentFrameCount(n, FRAME_STRIDE);
    const t = G.latentFrameOf(frame, FRAME_STRIDE);
    const [first, last] = G.videoFramesOf(t, FRAME_STRIDE, n);
    label.textContent = `frame ${frame}/${n - 1}${isKey ? " ◆" : ""} · latent ${t}/${T - 1}`;
    const { ctx, L } = view.begin();
    if (state.error) {
      view.text.textContent = `keyframes cannot be shown (the canvas leaves them as they are): ${state.error}`;
      return;
    }
    if (!list.length) {
      view.text.textContent = "click to add a keyframe at this frame";
      return;
    }
    const grid = G.gridFor(L.wPx, L.hPx);
    const mapOf = levelsOf(list, n, policyOf(node), grid);
    view.levels(ctx, L, mapOf(t), grid);
    const full = grid.H * grid.W;
    const tokens = G.readout(mapOf(t), grid.H, grid.W).tokens;
    const frameSpan = first === last ? `video frame ${first}` : `video frames ${first}-${last}`;
    const parts = [`latent frame ${t} (${frameSpan}): ${tokens}/${full} tokens (${percent(tokens, full)})`];
    if (T <= MAX_TOTAL_FRAMES) {
      let total = 0;
      for (let u = 0; u < T; u++) total += G.readout(mapOf(u), grid.H, grid.W).tokens;
      parts.push(`video: ${total}/${full * T} tokens (${percent(total, full * T)})`);
    }
    const made = G.videoFramesFor(n, FRAME_STRIDE);
    if (made !== n) {
      parts.push(`Wan makes 1 + ${FRAME_STRIDE}k frames (a path of ${n} frames fits no latent): set num_frames `
        + `and the latent's length to ${made} or ${made + FRAME_STRIDE}`);
    }
    view.text.textContent = parts.join(" · ");
    // the interpolated path over all frames
    ctx.strokeStyle = "rgba(255, 207, 90, 0.7)";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let f = 0; f < n; f++) {
      const [px, py] = G.pathAt(list, f);
      const cx = L.x0 + px * L.rw;
      const cy = L.y0 + py * L.rh;
      if (f === 0) ctx.moveTo(cx, cy); else ctx.lineTo(cx, cy);
    }
    ctx.stroke();
    for (const k of list) {
      ctx.fillStyle = k.frame === frame ? ACCENT : "#8ab4ff";
      ctx.beginPath();
      ctx.arc(L.x0 + k.x * L.rw, L.y0 + k.y * L.rh, 4, 0, 2 * Math.PI);
      ctx.fill();
      ctx.fillText(String(k.frame), L.x0 + k.x * L.rw + 6, L.y0 + k.y * L.rh - 6);
    }
    // the gaze at every video frame of this latent frame (their union is shaded), this frame's last
    const gazeAt = (f) => { const [x, y, radius] = G.pathAt(list, f); return { x, y, radius }; };
    for (let f = first; f <= last; f++) if (f !== frame) view.gaze(ctx, L, gazeAt(f), false);
    view.gaze(ctx, L, gazeAt(frame), true);
  }, 36);
  view.root.insertBefore(bar, view.text);
  for (const ev of ["pointerdown", "pointermove", "pointerup", "input"]) {
    view.on(scrub, ev, (e) => e.stopPropagation());
  }

  // The keyframe drawn within 10 px of p, else null.
  const keyNear = (p, list) => {
    const L = view.layout();
    let best = null;
    let bestD = 10;
    for (const k of list) {
      const d = Math.hypot((k.x - p.x) * L.rw, (k.y - p.y) * L.rh);
      if (d < bestD) { bestD = d; best = k; }
    }
    return best;
  };

  view.on(scrub, "input", () => {
    frame = Number(scrub.value);
    view.redraw();
  });
  view.on(view.canvas, "pointerdown", (e) => {
    const p = view.toNorm(e);
    const state = read();
    const near = keyNear(p, state.keyframes);
    if (e.button === 2) {
      if (near && V.removeKeyframe(state, near.frame)) commit(state);
      return;
    }
    if (e.button !== 0 || state.error) return;
    if (!near) {
      const list = V.sortedKeyframes(state.keyframes);
      const radius = list.length ? G.pathAt(list, frame)[2] : 0.2;
      V.placeKeyframe(state, frame, G.clamp(p.x, 0, 1), G.clamp(p.y, 0, 1), radius);
      commit(state);
    }
    dragKey = near ? near.frame : frame;
    view.capture(e);
  });
  view.on(view.canvas, "pointermove", (e) => {
    if (dragKey === null) return;
    const p = view.toNorm(e);
    const state = read();
    if (V.moveKeyframe(state, dragKey, G.clamp(p.x, 0, 1), G.clamp(p.y, 0, 1))) {
      commit(state); // the values follow every move; the drawing follows once per frame
    }
  });
  const stop = () => { dragKey = null; };
  view.on(view.canvas, "pointerup", stop);
  view.on(view.canvas, "pointercancel", stop);
  view.on(view.canvas, "wheel", (e) => {
    e.preventDefault();
    const state = read();
    const k = V.keyframeAt(state, frame);
    if (k && V.setKeyframeRadius(state, frame, G.clamp(k.radius * (e.deltaY > 0 ? 0.95 : 1.05), 0.005, 2))) {
      commit(state);
    }
  }, { passive: false });

  watch(node, ["keyframes", "num_frames", "width", "height", "periphery", "ring_scale"], () => view.redraw());
  view.redraw();
  return view;
}
