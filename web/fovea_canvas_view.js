// The canvas view both node widgets share: a DOM widget with a canvas and a readout line,
// letterboxed to the image's aspect ratio, drawing the token levels and the gazes. Redraws are
// coalesced to one per animation frame, and everything the view registers (its ResizeObserver,
// its element listeners, a pending frame) is released when the node is removed.
// Only public frontend APIs: node.addDOMWidget, the node's onRemoved callback, widget callbacks.
import * as G from "./fovea_geometry.js";

const LEVEL_SHADE = { 0: null, 1: "rgba(8, 10, 18, 0.45)", 2: "rgba(8, 10, 18, 0.68)", 3: "rgba(8, 10, 18, 0.82)" };
export const ACCENT = "#ffcf5a";
const MIN_HEIGHT = 300;

// ------------------------------------------------------------------ the node's widget values
export function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

export function value(node, name, fallback) {
  const w = widget(node, name);
  return w === undefined || w.value === undefined ? fallback : w.value;
}

export function values(node, names) {
  const out = {};
  for (const name of names) out[name] = value(node, name, undefined);
  return out;
}

// Writes {name: value} into the node's widgets as an edit: each widget's callback runs (ours
// redraws), and the widget keeps exactly the value written (a number widget's callback rounds
// typed input to its step, e.g. a gaze's radius 0.1697 to 0.17; the canvas writes values that
// are already rounded and within the widget's limits).
export function setValues(node, changes, graphCanvas) {
  const names = Object.keys(changes);
  for (const name of names) {
    const w = widget(node, name);
    if (!w) continue;
    w.value = changes[name];
    w.callback?.(w.value, graphCanvas, node);
    w.value = changes[name];
  }
  if (names.length) {
    node.setDirtyCanvas?.(true, true);
    node.graph?.setDirtyCanvas?.(true, true);
  }
}

// Whether v lies within the limits of the node's widget `name` (true if it has none).
export function withinLimits(node, name, v) {
  const o = widget(node, name)?.options ?? {};
  return !(typeof o.min === "number" && v < o.min) && !(typeof o.max === "number" && v > o.max);
}

// Calls onChange whenever one of these widgets changes (from the canvas or typed in).
export function watch(node, names, onChange) {
  for (const name of names) {
    const w = widget(node, name);
    if (!w || w.__foveaWatched) continue;
    const cb = w.callback;
    w.callback = function (...args) {
      const r = cb?.apply(this, args);
      onChange();
      return r;
    };
    w.__foveaWatched = true;
  }
}

export function policyOf(node) {
  return G.policyFor(value(node, "periphery", "1/2 resolution"), value(node, "ring_scale", 2.0));
}

// The model a line is computed for: "Wan 2.2 5B, 32 px tokens" once an Apply Foveation fed by the
// node has run, else the widget's default, saying so.
export function modelLabel(model) {
  const what = `${model.family}, ${model.token_px} px tokens`;
  return model.assumed ? `${what}; assumed until Apply Foveation runs` : what;
}

// "FLOP-ideal 2.10x" for a readout computed with the model's dims ("" when the model has none).
export function flopText(r) {
  return r.idealSpeedup === undefined ? "" : ` · FLOP-ideal ${r.idealSpeedup.toFixed(2)}x`;
}

export function readoutText(map, grid, extra = "", model = G.DEFAULT_IMAGE_MODEL) {
  const r = G.readout(map, grid.H, grid.W, model.dims);
  return `${r.tokens}/${r.full} tokens (${(100 * r.ratio).toFixed(1)}%)${extra}${flopText(r)} (${modelLabel(model)})`;
}

// ------------------------------------------------------------------ one draw per frame
// request() asks for fn() at the next animation frame; any number of requests before it comes
// give one call. cancel() drops a pending call.
export function frameCoalescer(fn, raf = (cb) => requestAnimationFrame(cb), caf = (id) => cancelAnimationFrame(id)) {
  let pending = null;
  return {
    request() {
      if (pending !== null) return;
      pending = raf(() => {
        pending = null;
        fn();
      });
    },
    cancel() {
      if (pending !== null) caf(pending);
      pending = null;
    },
    get pending() { return pending !== null; },
  };
}

// ------------------------------------------------------------------ shared canvas view
export class View {
  // model: what the view counts and draws tokens for until setModel (G.DEFAULT_IMAGE_MODEL, ...).
  constructor(node, draw, extraHeight = 0, model = G.DEFAULT_IMAGE_MODEL) {
    this.node = node;
    this.model = model;
    this.draws = 0; // frames drawn (tests read it)
    this.disposed = false;
    this.image = null;
    this.listeners = new AbortController();
    this.frame = frameCoalescer(() => {
      if (this.disposed) return;
      this.draws++;
      draw();
    });
    this.root = document.createElement("div");
    this.root.className = "foveated-widget";
    this.root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;box-sizing:border-box;";
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "width:100%;flex:1 1 auto;min-height:160px;cursor:crosshair;border-radius:4px;touch-action:none;outline:none;";
    this.canvas.dataset.foveaCanvas = "1";
    this.canvas.tabIndex = -1; // focused on pointerdown, so that the wheel comes here ...
    this.root.dataset.captureWheel = "true"; // ... and not to the graph (Vue node renderer)
    this.text = document.createElement("div");
    this.text.className = "foveated-readout";
    this.text.style.cssText = "font:11px monospace;color:#ddd;white-space:normal;line-height:1.3;";
    this.root.append(this.canvas, this.text);
    this.widget = node.addDOMWidget("fovea_canvas", "FOVEA_CANVAS", this.root, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => MIN_HEIGHT + extraHeight,
    });
    for (const ev of ["pointerdown", "pointermove", "pointerup", "wheel", "contextmenu"]) {
      this.on(this.canvas, ev, (e) => e.stopPropagation());
    }
    this.on(this.canvas, "contextmenu", (e) => e.preventDefault());
    this.on(this.canvas, "pointerdown", () => this.canvas.focus({ preventScroll: true }));
    this.observer = new ResizeObserver(() => this.redraw());
    this.observer.observe(this.canvas);
    const view = this;
    const onRemoved = node.onRemoved;
    node.onRemoved = function (...args) {
      view.dispose();
      return onRemoved?.apply(this, args);
    };
    node.__foveaView = this;
  }

  // addEventListener, released when the node is removed.
  on(target, type, fn, options = {}) {
    target.addEventListener(type, fn, { ...options, signal: this.listeners.signal });
  }

  redraw() {
    if (!this.disposed) this.frame.request();
  }

  // The model of an Apply Foveation this node feeds, as its "executed" event sent it: its token
  // size and FLOP model from now on.
  setModel(model) {
    if (this.disposed) return;
    this.model = model;
    this.redraw();
  }

  // The token grid of the image this view draws, in the model's token size.
  grid(L) {
    return G.gridFor(L.wPx, L.hPx, this.model.token_px);
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.frame.cancel();
    this.observer.disconnect();
    this.listeners.abort();
    if (this.image) this.image.onload = null;
  }

  // Pointer capture keeps a drag going outside the canvas; a pointer the browser does not track
  // (e.g. a synthetic event) cannot be captured, which is fine.
  capture(e) {
    try {
      this.canvas.setPointerCapture?.(e.pointerId);
    } catch {
      // not an active pointer
    }
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

  // Context with the layout's transform, background drawn.
  begin() {
    const ctx = this.canvas.getContext("2d");
    const L = this.layout();
    ctx.setTransform(L.dpr, 0, 0, L.dpr, 0, 0);
    this.background(ctx, L);
    return { ctx, L };
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
      const step = (4 * this.model.token_px * L.rw) / L.wPx;
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
    if (this.disposed) return;
    const img = new Image();
    img.onload = () => this.redraw();
    img.src = url;
    this.image = img;
  }
}

export function line(ctx, x0, y0, x1, y1) {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}
