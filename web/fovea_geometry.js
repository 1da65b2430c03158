// Fovea geometry for the canvas widget: the same rules as fov_core (Python), so what the
// widget draws is what the sampler generates. Pure functions, no DOM; unit-tested against
// fixtures produced by fov_core (tests/web/).
//
// Coordinates are normalized (x 0..1 left to right, y 0..1 top to bottom); radii are
// fractions of the image half-diagonal. A token is the model's token size in px (model.token_px):
// 16 for most families, 32 for Wan 2.2 5B. The level rules work on the token grid alone.

export const TOKEN_PX = 16;

export const PERIPHERY = {
  "1/2 resolution": { levels: [0, 1], rings: false },
  "1/4 resolution": { levels: [0, 2], rings: false },
  "rings: 1/2 then 1/4": { levels: [0, 1, 2], rings: true },
};

// fov_core.flops.DiTDims, field by field (tests/test_web_geometry.py checks the list against Python):
// the payload Apply Foveation sends carries exactly these keys.
export const DIMS_FIELDS = ["hidden", "mlp_hidden", "blocks", "text_tokens", "gated_mlp", "context_tokens",
  "extra_tokens"];

// What the widgets assume until an Apply Foveation they feed has run and sent its model (the
// same shape as nodes/adapters/base.py FamilyAdapter.widget_model; `assumed` marks a default).
// Fovea: FLUX.2 [klein] 4B with a 512-token prompt. Gaze Path: Wan 2.1 1.3B (512 context tokens).
export const KLEIN_4B = { hidden: 3072, mlp_hidden: 9216, blocks: 25, text_tokens: 512, gated_mlp: true,
  context_tokens: 0, extra_tokens: 0 };
export const WAN21_1_3B = { hidden: 1536, mlp_hidden: 8960, blocks: 30, text_tokens: 0, gated_mlp: false,
  context_tokens: 512, extra_tokens: 0 };
export const WAN_FRAME_STRIDE = 4; // video frames per latent frame of Wan 2.1 / 2.2 (and HunyuanVideo)
export const DEFAULT_IMAGE_MODEL = { family: "FLUX.2 [klein] 4B", token_px: TOKEN_PX, frame_stride: 1, dims: KLEIN_4B,
  assumed: true };
export const DEFAULT_VIDEO_MODEL = { family: "Wan 2.1 1.3B", token_px: TOKEN_PX, frame_stride: WAN_FRAME_STRIDE,
  dims: WAN21_1_3B, assumed: true };

// The key of Apply Foveation's ui that carries its model (nodes/apply_node.py WIDGET_MODEL_KEY;
// tests/test_comfy_widget_model.py checks they agree).
export const MODEL_KEY = "fovea_model";

// A model payload as Apply Foveation sent it (its ui "fovea_model" entry), checked; null if it is
// not one (then the widget keeps what it had).
export function modelFrom(payload) {
  if (!payload || typeof payload !== "object") return null;
  const { family, token_px: tokenPx, frame_stride: stride, dims } = payload;
  const whole = (v) => Number.isInteger(v) && v >= 1;
  if (typeof family !== "string" || !whole(tokenPx) || !whole(stride)) return null;
  if (dims !== null && (typeof dims !== "object" || !DIMS_FIELDS.every((f) => f in dims))) return null;
  return { family, token_px: tokenPx, frame_stride: stride, dims, assumed: false };
}

export function policyFor(periphery, ringScale) {
  const p = PERIPHERY[periphery];
  if (!p) throw new Error(`unknown periphery ${periphery}`);
  return { levels: p.levels.slice(), ringScales: p.rings ? [ringScale] : [] };
}

export function gridFor(width, height, tokenPx = TOKEN_PX) {
  return {
    H: Math.max(1, Math.round(height / tokenPx)),
    W: Math.max(1, Math.round(width / tokenPx)),
  };
}

// fov_core.LevelPolicy.level_for_rho: the first level whose bound (1, then ring scales)
// contains rho, else the periphery.
export function levelForRho(rho, policy) {
  const bounds = [1.0, ...policy.ringScales];
  for (let i = 0; i < policy.levels.length - 1; i++) {
    if (rho <= bounds[i]) return policy.levels[i];
  }
  return policy.levels[policy.levels.length - 1];
}

// fov_core.Gaze.rho at one token center (px coordinates).
export function gazeRho(g, px, py, wPx, hPx) {
  const halfDiag = 0.5 * Math.sqrt(hPx * hPx + wPx * wPx);
  const a = g.radius * halfDiag;
  const b = a * (g.aspect ?? 1.0);
  const dx = px - g.x * wPx;
  const dy = py - g.y * hPx;
  const th = (g.rotation ?? 0.0) * (Math.PI / 180);
  const c = Math.cos(th);
  const s = Math.sin(th);
  const u = dx * c + dy * s;
  const v = -dx * s + dy * c;
  const ua = u / a;
  const vb = v / b;
  return Math.sqrt(ua * ua + vb * vb);
}

// Levels every token wants (rasterize.desired_levels for gaze regions), row-major H*W. (rho is
// a ratio of lengths: the token size in px does not change it, so TOKEN_PX serves every model.)
export function desiredLevels(gazes, policy, H, W) {
  const periphery = policy.levels[policy.levels.length - 1];
  const out = new Int32Array(H * W).fill(periphery);
  const wPx = W * TOKEN_PX;
  const hPx = H * TOKEN_PX;
  for (const g of gazes) {
    for (let y = 0; y < H; y++) {
      const py = (y + 0.5) * TOKEN_PX;
      for (let x = 0; x < W; x++) {
        const lv = levelForRho(gazeRho(g, (x + 0.5) * TOKEN_PX, py, wPx, hPx), policy);
        if (lv < out[y * W + x]) out[y * W + x] = lv;
      }
    }
    if (g.x >= 0 && g.x <= 1 && g.y >= 0 && g.y <= 1) { // a fovea smaller than a token keeps its token
      out[Math.min(Math.floor(g.y * H), H - 1) * W + Math.min(Math.floor(g.x * W), W - 1)] = 0;
    }
  }
  return out;
}

// rasterize.assign_levels: coarse to fine, a 2^k block is level k only if every token in
// it wants level k or coarser and the block fits inside the grid.
export function assignLevels(desired, levels, H, W) {
  const out = new Int32Array(H * W);
  const assigned = new Uint8Array(H * W);
  const sorted = levels.slice().sort((p, q) => q - p);
  for (const k of sorted) {
    if (k === 0) break;
    const b = 1 << k;
    const hc = Math.floor(H / b) * b;
    const wc = Math.floor(W / b) * b;
    for (let by = 0; by < hc; by += b) {
      for (let bx = 0; bx < wc; bx += b) {
        let ok = true;
        for (let y = by; y < by + b && ok; y++) {
          for (let x = bx; x < bx + b; x++) {
            if (desired[y * W + x] < k) { ok = false; break; }
          }
        }
        if (!ok) continue;
        for (let y = by; y < by + b; y++) {
          for (let x = bx; x < bx + b; x++) {
            const i = y * W + x;
            if (!assigned[i]) { out[i] = k; assigned[i] = 1; }
          }
        }
      }
    }
  }
  return out;
}

export function levelMap(gazes, policy, H, W) {
  return assignLevels(desiredLevels(gazes, policy, H, W), policy.levels, H, W);
}

// fov_core.flops.DiTDims.linear_macs_per_token.
export function linearMacsPerToken(dims) {
  const h = dims.hidden;
  let lin = 4 * h * h + (dims.gated_mlp ? 3 : 2) * h * dims.mlp_hidden;
  if (dims.context_tokens) lin += 2 * h * h;
  return lin;
}

// fov_core.flops.step_flops of a native run over fullTokens image tokens.
export function nativeFlops(dims, fullTokens) {
  const h = dims.hidden;
  const seq = dims.text_tokens + fullTokens + dims.extra_tokens;
  let macs = seq * linearMacsPerToken(dims) + 2 * h * seq * seq;
  if (dims.context_tokens) macs += 2 * h * fullTokens * dims.context_tokens + 2 * h * h * dims.context_tokens;
  return 2 * macs * dims.blocks;
}

// fov_core.flops.step_flops of a foveated run: `counts[k]` packed tokens of level k and
// `onLattice[k]` packed tokens whose position is a multiple of 2^k, over all frames. The
// sequence is [text | image | extra] (SequencePlan): text and extra tokens query with the base
// level and every level's queries see the text, the extra tokens and the image tokens of their
// lattice (the base level sees all).
export function foveatedFlops(dims, counts, onLattice) {
  const h = dims.hidden;
  const levels = Object.keys(counts).map(Number).sort((p, q) => p - q);
  let tokens = 0;
  for (const k of levels) tokens += counts[k];
  const text = dims.text_tokens;
  const extra = dims.extra_tokens;
  const seq = text + tokens + extra;
  let pairs = 0;
  levels.forEach((k, i) => {
    if (i === 0) pairs += (text + counts[k] + extra) * seq;
    else pairs += counts[k] * (text + onLattice[k] + extra);
  });
  let macs = seq * linearMacsPerToken(dims) + 2 * h * pairs;
  if (dims.context_tokens) macs += 2 * h * tokens * dims.context_tokens + 2 * h * h * dims.context_tokens;
  return 2 * macs * dims.blocks;
}

// Packed tokens per level, token ratio and FLOP-ideal speedup (fov_core.flops.readout) of one
// level map (H*W) or of the maps of every latent frame of a video (an array of them, one layout).
// dims null: tokens only.
export function readout(maps, H, W, dims = KLEIN_4B) {
  const frames = Array.isArray(maps) && typeof maps[0] !== "number" ? maps : [maps];
  const counts = {};
  const onLattice = {}; // per level k: packed tokens whose position is a multiple of 2^k
  for (const map of frames) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const k = map[y * W + x];
        const b = 1 << k;
        if (y % b === 0 && x % b === 0) counts[k] = (counts[k] || 0) + 1;
      }
    }
  }
  const levels = Object.keys(counts).map(Number).sort((p, q) => p - q);
  let tokens = 0;
  for (const k of levels) tokens += counts[k];
  for (const k of levels) {
    let n = 0;
    for (const map of frames) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const b = 1 << map[y * W + x];
          if (y % b === 0 && x % b === 0 && y % (1 << k) === 0 && x % (1 << k) === 0) n++;
        }
      }
    }
    onLattice[k] = n;
  }
  const full = H * W * frames.length;
  const out = { tokens, full, ratio: tokens / full, perLevel: counts };
  if (dims) out.idealSpeedup = nativeFlops(dims, full) / foveatedFlops(dims, counts, onLattice);
  return out;
}

// ------------------------------------------------------------------ gaze paths (PCHIP)
function sign(v) { return (v > 0) - (v < 0); }

export function pchipSlopes(xs, ys) {
  const n = xs.length;
  if (n === 1) return [0];
  const h = [];
  const delta = [];
  for (let i = 0; i < n - 1; i++) {
    h.push(xs[i + 1] - xs[i]);
    delta.push((ys[i + 1] - ys[i]) / h[i]);
  }
  if (n === 2) return [delta[0], delta[0]];
  const d = new Array(n).fill(0);
  for (let k = 1; k < n - 1; k++) {
    if (sign(delta[k - 1]) * sign(delta[k]) <= 0) d[k] = 0;
    else {
      const w1 = 2 * h[k] + h[k - 1];
      const w2 = h[k] + 2 * h[k - 1];
      d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k]);
    }
  }
  const edge = (h0, h1, m0, m1) => {
    const e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1);
    if (sign(e) !== sign(m0)) return 0;
    if (sign(m0) !== sign(m1) && Math.abs(e) > Math.abs(3 * m0)) return 3 * m0;
    return e;
  };
  d[0] = edge(h[0], h[1], delta[0], delta[1]);
  d[n - 1] = edge(h[n - 2], h[n - 3], delta[n - 2], delta[n - 3]);
  return d;
}

export function pchipEval(xs, ys, d, x) {
  const n = xs.length;
  if (x <= xs[0]) return ys[0];
  if (x >= xs[n - 1]) return ys[n - 1];
  let k = 0;
  while (xs[k + 1] < x) k++;
  const h = xs[k + 1] - xs[k];
  const t = (x - xs[k]) / h;
  const h00 = 2 * t ** 3 - 3 * t ** 2 + 1;
  const h10 = t ** 3 - 2 * t ** 2 + t;
  const h01 = -2 * t ** 3 + 3 * t ** 2;
  const h11 = t ** 3 - t ** 2;
  return h00 * ys[k] + h10 * h * d[k] + h01 * ys[k + 1] + h11 * h * d[k + 1];
}

// fov_core.GazePath.sample: (x, y, radius) at a video frame.
export function pathAt(keyframes, frame) {
  const xs = keyframes.map((k) => k.frame);
  return ["x", "y", "radius"].map((attr) => {
    const ys = keyframes.map((k) => k[attr]);
    return pchipEval(xs, ys, pchipSlopes(xs, ys), frame);
  });
}

// ------------------------------------------------------------------ video (latent frames)
// fov_core.TokenGrid with frame_stride: a video model's VAE makes latent frame 0 of video frame 0
// alone and every later latent frame t of `stride` video frames, (t-1)*stride+1 .. t*stride. Wan
// 2.1 / 2.2 (and HunyuanVideo) use 4 (WAN_FRAME_STRIDE); other families pass their own stride.

// Latent frames a video of numFrames frames needs (the last one may cover fewer video frames
// than `stride` when numFrames is not 1 + a multiple of it; a video model never makes such a
// video, see videoFramesFor).
export function latentFrameCount(numFrames, stride = WAN_FRAME_STRIDE) {
  return 1 + Math.ceil(Math.max(0, numFrames - 1) / stride);
}

// The latent frame a video frame belongs to.
export function latentFrameOf(frame, stride = WAN_FRAME_STRIDE) {
  return Math.ceil(frame / stride);
}

// fov_core.TokenGrid.video_frames_of, limited to the numFrames the path has: [first, last].
export function videoFramesOf(t, stride = WAN_FRAME_STRIDE, numFrames = Infinity) {
  if (t === 0) return [0, 0];
  return [(t - 1) * stride + 1, Math.min(t * stride, numFrames - 1)];
}

// The video frame count a video model makes for a requested one: 1 + stride * k (k rounded
// down, as EmptyHunyuanLatentVideo and WanImageToVideo do).
export function videoFramesFor(numFrames, stride = WAN_FRAME_STRIDE) {
  return 1 + Math.floor(Math.max(0, numFrames - 1) / stride) * stride;
}

// rasterize.rasterize for a gaze path on latent frame t: every token wants the finest level that
// the path's gaze wants at any video frame the latent frame covers, then the block rules.
export function pathLevelMap(keyframes, t, numFrames, policy, H, W, stride = WAN_FRAME_STRIDE) {
  const [first, last] = videoFramesOf(t, stride, numFrames);
  const gazes = [];
  for (let f = first; f <= last; f++) {
    const [x, y, radius] = pathAt(keyframes, f);
    gazes.push({ x, y, radius });
  }
  return assignLevels(desiredLevels(gazes, policy, H, W), policy.levels, H, W);
}

// Level maps of every latent frame of the path (rasterize's (T, H, W) map, one array per frame).
export function pathLevelMaps(keyframes, numFrames, policy, H, W, stride = WAN_FRAME_STRIDE) {
  const maps = [];
  for (let t = 0; t < latentFrameCount(numFrames, stride); t++) {
    maps.push(pathLevelMap(keyframes, t, numFrames, policy, H, W, stride));
  }
  return maps;
}

// ------------------------------------------------------------------ small helpers
// (The nodes' widget values are read and written by fovea_values.js.)
export function round(v, digits = 4) {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

// Radius (fraction of the half-diagonal) of a point at normalized (x, y) from a gaze.
export function radiusTo(g, x, y, wPx, hPx) {
  const halfDiag = 0.5 * Math.sqrt(hPx * hPx + wPx * wPx);
  return Math.hypot((x - g.x) * wPx, (y - g.y) * hPx) / halfDiag;
}

export function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }
