// Canvas widgets for the Fovea and Gaze Path nodes.
//
// Fovea: click sets the center of the nearest fovea, drag (or the wheel) sets its radius,
// shift-click adds a fovea, right-click removes one. The levels (full, 1/2, 1/4) are drawn
// token by token with the same rules as the sampler, with the live token ratio and the
// FLOP-ideal speedup.
// Gaze Path: a frame scrubber; a click adds (or moves) the keyframe at the current frame,
// keyframes are dragged, right-click removes one, the wheel sets its radius; the
// interpolated path (PCHIP, as in fov_core) is drawn.
//
// The state lives in the nodes' ordinary widget values (x, y, radius, extra_gazes;
// keyframes, num_frames), so saved workflows and the API format carry it. Built only on
// the public extension API (app.registerExtension, node.addDOMWidget, api events).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import * as G from "./fovea_geometry.js";

const LEVEL_SHADE = { 0: null, 1: "rgba(8, 10, 18, 0.45)", 2: "rgba(8, 10, 18, 0.68)", 3: "rgba(8, 10, 18, 0.82)" };
const ACCENT = "#ffcf5a";
const MIN_HEIGHT = 300;

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

function value(node, name, fallback) {
  const w = widget(node, name);
  return w === undefined || w.value === undefined ? fallback : w.value;
}

function setValue(node, name, v) {
  const w = widget(node, name);
  if (!w) return;
  w.value = v;
  w.callback?.(v, app.canvas, node);
  node.setDirtyCanvas?.(true, true);
  node.graph?.setDirtyCanvas?.(true, true);
}

// Redraw whenever one of these widgets changes (from the canvas or typed in).
function watch(node, names, redraw) {
  for (const name of names) {
    const w = widget(node, name);
    if (!w || w.__foveaWatched) continue;
    const cb = w.callback;
    w.callback = function (...args) {
      const r = cb?.apply(this, args);
      redraw();
      return r;
    };
    w.__foveaWatched = true;
  }
}

// ------------------------------------------------------------------ shared canvas view
class View {
  constructor(node, extraHeight = 0) {
    this.node = node;
    this.root = document.createElement("div");
    this.root.className = "foveated-widget";
    this.root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;box-sizing:border-box;";
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "width:100%;flex:1 1 auto;min-height:160px;cursor:crosshair;border-radius:4px;touch-action:none;";
    this.canvas.dataset.foveaCanvas = "1";
    this.text = document.createElement("div");
    this.text.className = "foveated-readout";
    this.text.style.cssText = "font:11px monospace;color:#ddd;white-space:normal;line-height:1.3;";
    this.root.append(this.canvas, this.text);
    this.image = null;
    this.widget = node.addDOMWidget("fovea_canvas", "FOVEA_CANVAS", this.root, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => MIN_HEIGHT + extraHeight,
    });
    for (const ev of ["pointerdown", "pointermove", "pointerup", "wheel", "contextmenu"]) {
      this.canvas.addEventListener(ev, (e) => e.stopPropagation());
    }
    this.canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    new ResizeObserver(() => this.redraw?.()).observe(this.canvas);
  }

  // Image rectangle inside the canvas, letterboxed to the image aspect ratio.
  layout() {
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.max(1, this.canvas.clientWidth);
    const ch = Math.max(1, this.canvas.clientHeight);
    if (this.canvas.width !== Math.round(cw * dpr) || this.canvas.height !== Math.round(ch * dpr)) {
      this.canvas.width = Math.round(cw * dpr);
      this.canvas.height = Math.round(ch * dpr);
    }
    const w = value(this.node, "width", 1024);
    const h = value(this.node, "height", 1024);
    const s = Math.min(cw / w, ch / h);
    const rw = w * s;
    const rh = h * s;
    return { dpr, x0: (cw - rw) / 2, y0: (ch - rh) / 2, rw, rh, wPx: w, hPx: h };
  }

  toNorm(e) {
    const L = this.layout();
    const r = this.canvas.getBoundingClientRect();
    const sx = this.canvas.clientWidth / (r.width || 1); // canvas may be CSS-scaled by the graph zoom
    const sy = this.canvas.clientHeight / (r.height || 1);
    return { x: ((e.clientX - r.left) * sx - L.x0) / L.rw, y: ((e.clientY - r.top) * sy - L.y0) / L.rh };
  }

  background(ctx, L) {
    ctx.fillStyle = "#202124";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.image?.complete && this.image.naturalWidth) {
      ctx.drawImage(this.image, L.x0, L.y0, L.rw, L.rh);
    } else {
      ctx.fillStyle = "#6a6e78";
      ctx.fillRect(L.x0, L.y0, L.rw, L.rh);
      ctx.strokeStyle = "rgba(255,255,255,0.12)";
      ctx.lineWidth = 1;
      const step = (4 * G.TOKEN_PX * L.rw) / L.wPx;
      for (let x = L.x0; x <= L.x0 + L.rw + 0.5; x += step) line(ctx, x, L.y0, x, L.y0 + L.rh);
      for (let y = L.y0; y <= L.y0 + L.rh + 0.5; y += step) line(ctx, L.x0, y, L.x0 + L.rw, y);
    }
  }

  levels(ctx, L, map, grid) {
    const cw = L.rw / grid.W;
    const chh = L.rh / grid.H;
    for (let y = 0; y < grid.H; y++) {
      for (let x = 0; x < grid.W; x++) {
        const shade = LEVEL_SHADE[map[y * grid.W + x]];
        if (!shade) continue;
        ctx.fillStyle = shade;
        ctx.fillRect(L.x0 + x * cw, L.y0 + y * chh, cw + 0.5, chh + 0.5);
      }
    }
    // ring outlines: boundaries between levels, block by block as the sampler sees them
    ctx.strokeStyle = "rgba(255, 207, 90, 0.75)";
    ctx.lineWidth = 1.5;
    for (let y = 0; y < grid.H; y++) {
      for (let x = 0; x < grid.W; x++) {
        const v = map[y * grid.W + x];
        if (x + 1 < grid.W && map[y * grid.W + x + 1] !== v) {
          line(ctx, L.x0 + (x + 1) * cw, L.y0 + y * chh, L.x0 + (x + 1) * cw, L.y0 + (y + 1) * chh);
        }
        if (y + 1 < grid.H && map[(y + 1) * grid.W + x] !== v) {
          line(ctx, L.x0 + x * cw, L.y0 + (y + 1) * chh, L.x0 + (x + 1) * cw, L.y0 + (y + 1) * chh);
        }
      }
    }
  }

  gaze(ctx, L, g, active) {
    const halfDiag = 0.5 * Math.sqrt(L.wPx * L.wPx + L.hPx * L.hPx);
    const s = L.rw / L.wPx;
    const cx = L.x0 + g.x * L.rw;
    const cy = L.y0 + g.y * L.rh;
    ctx.strokeStyle = ACCENT;
    ctx.lineWidth = active ? 2 : 1.25;
    ctx.beginPath();
    ctx.ellipse(cx, cy, g.radius * halfDiag * s, g.radius * (g.aspect ?? 1) * halfDiag * s,
      ((g.rotation ?? 0) * Math.PI) / 180, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.fillStyle = ACCENT;
    ctx.beginPath();
    ctx.arc(cx, cy, active ? 4 : 3, 0, 2 * Math.PI);
    ctx.fill();
  }

  setImage(url) {
    const img = new Image();
    img.onload = () => this.redraw?.();
    img.src = url;
    this.image = img;
  }
}

function line(ctx, x0, y0, x1, y1) {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

function readoutText(map, grid, extra = "") {
  const r = G.readout(map, grid.H, grid.W);
  return `${r.tokens}/${r.full} tokens (${(100 * r.ratio).toFixed(1)}%)${extra} · FLOP-ideal ${r.idealSpeedup.toFixed(2)}x (klein 4B)`;
}

function policyOf(node) {
  return G.policyFor(value(node, "periphery", "1/2 resolution"), value(node, "ring_scale", 2.0));
}

// ------------------------------------------------------------------ Fovea node
function attachFovea(node) {
  const view = new View(node);
  let active = 0; // index into gazes(): 0 = primary (x, y, radius), then extra_gazes
  let dragging = false;

  const gazes = () => {
    const primary = {
      x: value(node, "x", 0.5), y: value(node, "y", 0.5), radius: value(node, "radius", 0.3),
      aspect: value(node, "aspect", 1), rotation: value(node, "rotation", 0),
    };
    let extra = [];
    try { extra = G.parseGazes(value(node, "extra_gazes", "[]")); } catch { extra = []; }
    return [primary, ...extra];
  };

  const store = (list) => {
    const [p, ...extra] = list;
    setValue(node, "x", G.round(p.x));
    setValue(node, "y", G.round(p.y));
    setValue(node, "radius", G.round(p.radius));
    setValue(node, "extra_gazes", G.formatGazes(extra));
  };

  view.redraw = () => {
    const ctx = view.canvas.getContext("2d");
    const L = view.layout();
    ctx.setTransform(L.dpr, 0, 0, L.dpr, 0, 0);
    view.background(ctx, L);
    const grid = G.gridFor(L.wPx, L.hPx);
    const list = gazes();
    let map;
    try {
      map = G.levelMap(list, policyOf(node), grid.H, grid.W);
      view.levels(ctx, L, map, grid);
      const merged = node.inputs?.find((i) => i.name === "fovea")?.link != null;
      view.text.textContent = readoutText(map, grid, merged ? " + connected fovea" : "");
    } catch (err) {
      view.text.textContent = String(err.message || err);
    }
    list.forEach((g, i) => view.gaze(ctx, L, g, i === active));
  };

  const nearest = (p, list) => {
    let best = 0;
    let bestD = Infinity;
    list.forEach((g, i) => {
      const d = Math.hypot(g.x - p.x, g.y - p.y);
      if (d < bestD) { bestD = d; best = i; }
    });
    return best;
  };

  view.canvas.addEventListener("pointerdown", (e) => {
    const p = view.toNorm(e);
    const list = gazes();
    if (e.button === 2) { // remove the nearest fovea (the last one stays)
      if (list.length > 1) {
        list.splice(nearest(p, list), 1);
        active = 0;
        store(list);
      }
      return;
    }
    if (e.button !== 0) return;
    p.x = G.clamp(p.x, 0, 1);
    p.y = G.clamp(p.y, 0, 1);
    if (e.shiftKey) {
      list.push({ x: p.x, y: p.y, radius: Math.min(list[active].radius, 0.2), aspect: 1, rotation: 0 });
      active = list.length - 1;
    } else {
      active = nearest(p, list);
      list[active].x = p.x;
      list[active].y = p.y;
    }
    store(list);
    dragging = true;
    view.canvas.setPointerCapture?.(e.pointerId);
  });
  view.canvas.addEventListener("pointermove", (e) => {
    if (!dragging) return;
    const L = view.layout();
    const p = view.toNorm(e);
    const list = gazes();
    const r = G.radiusTo(list[active], p.x, p.y, L.wPx, L.hPx);
    if (r > 0.005) {
      list[active].radius = G.clamp(r, 0.005, 2);
      store(list);
    }
  });
  const stop = () => { dragging = false; };
  view.canvas.addEventListener("pointerup", stop);
  view.canvas.addEventListener("pointercancel", stop);
  view.canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const list = gazes();
    list[active].radius = G.clamp(list[active].radius * (e.deltaY > 0 ? 0.95 : 1.05), 0.005, 2);
    store(list);
  }, { passive: false });

  watch(node, ["x", "y", "radius", "aspect", "rotation", "extra_gazes", "width", "height", "periphery", "ring_scale"],
    () => view.redraw());
  register(node, view);
  return view;
}

function register(node, view) {
  node.__foveaView = view;
  node.__foveaHasPreviewInput = () => node.inputs?.find((i) => i.name === "preview_image")?.link != null;
  requestAnimationFrame(() => view.redraw());
}

// ------------------------------------------------------------------ Gaze Path node
function attachPath(node) {
  const view = new View(node, 36);
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
  view.root.insertBefore(bar, view.text);
  for (const ev of ["pointerdown", "pointermove", "pointerup", "input"]) {
    scrub.addEventListener(ev, (e) => e.stopPropagation());
  }
  let frame = 0;
  let dragKey = null;

  const keyframes = () => {
    try { return G.parseKeyframes(value(node, "keyframes", "[]")); } catch { return []; }
  };
  const store = (list) => setValue(node, "keyframes", G.formatKeyframes(list));
  const frames = () => Math.max(1, value(node, "num_frames", 81));

  view.redraw = () => {
    const n = frames();
    scrub.max = String(n - 1);
    frame = Math.min(frame, n - 1);
    scrub.value = String(frame);
    const list = keyframes();
    const isKey = list.some((k) => k.frame === frame);
    label.textContent = `frame ${frame}/${n - 1}${isKey ? " ◆" : ""}`;
    const ctx = view.canvas.getContext("2d");
    const L = view.layout();
    ctx.setTransform(L.dpr, 0, 0, L.dpr, 0, 0);
    view.background(ctx, L);
    if (!list.length) {
      view.text.textContent = "click to add a keyframe at this frame";
      return;
    }
    const [x, y, radius] = G.pathAt(list, frame);
    const grid = G.gridFor(L.wPx, L.hPx);
    const map = G.levelMap([{ x, y, radius }], policyOf(node), grid.H, grid.W);
    view.levels(ctx, L, map, grid);
    view.text.textContent = readoutText(map, grid, ` at frame ${frame}`);
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
    view.gaze(ctx, L, { x, y, radius }, true);
  };

  const keyNear = (p, list) => {
    const L = view.layout();
    let best = null;
    let bestD = 10; // px
    for (const k of list) {
      const d = Math.hypot((k.x - p.x) * L.rw, (k.y - p.y) * L.rh);
      if (d < bestD) { bestD = d; best = k; }
    }
    return best;
  };

  scrub.addEventListener("input", () => {
    frame = Number(scrub.value);
    view.redraw();
  });
  view.canvas.addEventListener("pointerdown", (e) => {
    const p = view.toNorm(e);
    const list = keyframes();
    const near = keyNear(p, list);
    if (e.button === 2) {
      if (near) store(list.filter((k) => k !== near));
      return;
    }
    if (e.button !== 0) return;
    p.x = G.clamp(p.x, 0, 1);
    p.y = G.clamp(p.y, 0, 1);
    if (near) {
      dragKey = near.frame;
    } else {
      const here = list.find((k) => k.frame === frame);
      if (here) { here.x = p.x; here.y = p.y; } else {
        const r = list.length ? G.pathAt(list, frame)[2] : 0.2;
        list.push({ frame, x: p.x, y: p.y, radius: r });
      }
      store(list);
      dragKey = frame;
    }
    view.canvas.setPointerCapture?.(e.pointerId);
  });
  view.canvas.addEventListener("pointermove", (e) => {
    if (dragKey === null) return;
    const p = view.toNorm(e);
    const list = keyframes();
    const k = list.find((kf) => kf.frame === dragKey);
    if (!k) return;
    k.x = G.clamp(p.x, 0, 1);
    k.y = G.clamp(p.y, 0, 1);
    store(list);
  });
  const stop = () => { dragKey = null; };
  view.canvas.addEventListener("pointerup", stop);
  view.canvas.addEventListener("pointercancel", stop);
  view.canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const list = keyframes();
    const k = list.find((kf) => kf.frame === frame);
    if (!k) return;
    k.radius = G.clamp(k.radius * (e.deltaY > 0 ? 0.95 : 1.05), 0.005, 2);
    store(list);
  }, { passive: false });

  watch(node, ["keyframes", "num_frames", "width", "height", "periphery", "ring_scale"], () => view.redraw());
  register(node, view);
  return view;
}

// ------------------------------------------------------------------ images to show
function imageUrl(img) {
  const params = new URLSearchParams({ filename: img.filename, type: img.type || "temp", subfolder: img.subfolder || "" });
  return api.apiURL(`/view?${params}`);
}

// The Fovea / Gaze Path node that feeds `node`'s "fovea" input, following reroutes.
function foveaSource(node) {
  const graph = node.graph ?? app.graph;
  const input = node.inputs?.find((i) => i.name === "fovea");
  let link = input?.link != null ? graph.links?.[input.link] ?? graph.links?.get?.(input.link) : null;
  let guard = 0;
  while (link && guard++ < 32) {
    const origin = graph.getNodeById(link.origin_id);
    if (!origin) return null;
    if (origin.__foveaView) return origin;
    const through = origin.inputs?.[0]?.link;
    link = through != null ? graph.links?.[through] ?? graph.links?.get?.(through) : null;
  }
  return null;
}

app.registerExtension({
  name: "foveated.diffusion.canvas",
  nodeCreated(node) {
    const cls = node.comfyClass ?? node.constructor?.comfyClass ?? node.type;
    if (cls === "Fovea") attachFovea(node);
    else if (cls === "GazePath") attachPath(node);
  },
  setup() {
    api.addEventListener("executed", ({ detail }) => {
      const images = detail?.output?.images;
      if (!images?.length) return;
      const node = app.graph?.getNodeById(Number(detail.display_node ?? detail.node) || detail.node);
      if (!node) return;
      if (node.__foveaView) { // the node's own preview image
        node.__foveaView.setImage(imageUrl(images[0]));
        return;
      }
      const cls = node.comfyClass ?? node.type;
      if (cls === "FoveatedDecode") { // the last image decoded with this fovea
        const src = foveaSource(node);
        if (src && !src.__foveaHasPreviewInput?.()) src.__foveaView.setImage(imageUrl(images[0]));
      }
    });
  },
});
