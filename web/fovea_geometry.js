// Fovea geometry for the canvas widget: the same rules as fov_core (Python), so what the
// widget draws is what the sampler generates. Pure functions, no DOM; unit-tested against
// fixtures produced by fov_core (tests/web/).
//
// Coordinates are normalized (x 0..1 left to right, y 0..1 top to bottom); radii are
// fractions of the image half-diagonal. Tokens are 16x16 px.

export const TOKEN_PX = 16;

export const PERIPHERY = {
  "1/2 resolution": { levels: [0, 1], rings: false },
  "1/4 resolution": { levels: [0, 2], rings: false },
  "rings: 1/2 then 1/4": { levels: [0, 1, 2], rings: true },
};

// FLUX.2 [klein] 4B: the readout the widget shows (Apply Foveation logs the exact one).
export const KLEIN_4B = { hidden: 3072, mlpHidden: 9216, blocks: 25, textTokens: 512, gated: true };

export function policyFor(periphery, ringScale) {
  const p = PERIPHERY[periphery];
  if (!p) throw new Error(`unknown periphery ${periphery}`);
  return { levels: p.levels.slice(), ringScales: p.rings ? [ringScale] : [] };
}

export function gridFor(width, height) {
  return {
    H: Math.max(1, Math.round(height / TOKEN_PX)),
    W: Math.max(1, Math.round(width / TOKEN_PX)),
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

// Levels every token wants (rasterize.desired_levels for gaze regions), row-major H*W.
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

// Packed tokens per level, token ratio and FLOP-ideal speedup (fov_core.flops).
export function readout(map, H, W, dims = KLEIN_4B) {
  const counts = {};
  const onLattice = {}; // per level k: packed tokens whose position is a multiple of 2^k
  const present = new Set();
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const k = map[y * W + x];
      const b = 1 << k;
      if (y % b === 0 && x % b === 0) {
        counts[k] = (counts[k] || 0) + 1;
        present.add(k);
      }
    }
  }
  const levels = [...present].sort((p, q) => p - q);
  let tokens = 0;
  for (const k of levels) tokens += counts[k];
  for (const k of levels) {
    let n = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const lv = map[y * W + x];
        const b = 1 << lv;
        if (y % b === 0 && x % b === 0 && y % (1 << k) === 0 && x % (1 << k) === 0) n++;
      }
    }
    onLattice[k] = n;
  }
  const full = H * W;
  const lin = 4 * dims.hidden * dims.hidden + (dims.gated ? 3 : 2) * dims.hidden * dims.mlpHidden;
  const text = dims.textTokens;
  const nativeSeq = text + full;
  const native = 2 * dims.blocks * (nativeSeq * lin + 2 * dims.hidden * nativeSeq * nativeSeq);
  const seq = text + tokens;
  let pairs = 0;
  levels.forEach((k, i) => {
    if (i === 0) pairs += (text + counts[k]) * seq;
    else pairs += counts[k] * (text + onLattice[k]);
  });
  const fov = 2 * dims.blocks * (seq * lin + 2 * dims.hidden * pairs);
  return { tokens, full, ratio: tokens / full, perLevel: counts, idealSpeedup: native / fov };
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
// 2.1 / 2.2 use 4; other families pass their own stride.
export const WAN_FRAME_STRIDE = 4;

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
