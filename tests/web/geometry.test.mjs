// Node's built-in test runner: the widget geometry must equal fov_core's on every case
// that tests/test_web_geometry.py exported (FOVEA_FIXTURES = path of the JSON file).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as G from "../../web/fovea_geometry.js";

const fixtures = JSON.parse(readFileSync(process.env.FOVEA_FIXTURES, "utf8"));

test("level maps, token counts and FLOP-ideal speedups match fov_core", () => {
  assert.ok(fixtures.foveae.length > 10);
  for (const c of fixtures.foveae) {
    const policy = G.policyFor(c.periphery, c.ring_scale);
    const grid = G.gridFor(c.width, c.height);
    assert.deepEqual([grid.H, grid.W], c.grid, JSON.stringify(c));
    const map = G.levelMap(c.gazes, policy, grid.H, grid.W);
    assert.deepEqual(Array.from(map), c.levels, `level map differs for ${JSON.stringify(c.gazes)}`);
    const r = G.readout(map, grid.H, grid.W);
    assert.equal(r.tokens, c.tokens);
    assert.ok(Math.abs(r.idealSpeedup - c.ideal_speedup) < 1e-9, `${r.idealSpeedup} vs ${c.ideal_speedup}`);
  }
});

test("gaze path interpolation matches fov_core (PCHIP)", () => {
  for (const p of fixtures.paths) {
    for (const [frame, expected] of p.samples) {
      const got = G.pathAt(p.keyframes, frame);
      got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-12, `${frame}: ${got} vs ${expected}`));
    }
  }
});

test("unknown peripheries are refused", () => {
  assert.throws(() => G.policyFor("1/3", 2));
});

test("radiusTo is the inverse of the drawn radius", () => {
  const g = { x: 0.5, y: 0.5, radius: 0.3 };
  const halfDiag = 0.5 * Math.sqrt(1024 * 1024 + 768 * 768);
  const r = G.radiusTo(g, 0.5 + (0.3 * halfDiag) / 1024, 0.5, 1024, 768);
  assert.ok(Math.abs(r - 0.3) < 1e-12);
});

test("per-latent-frame level maps of gaze paths match fov_core (union over each latent frame's video frames)", () => {
  assert.ok(fixtures.video.length >= 10);
  for (const c of fixtures.video) {
    const what = `${c.width}x${c.height} ${c.periphery} ${c.num_frames} frames / ${c.frame_stride} ${JSON.stringify(c.keyframes)}`;
    const policy = G.policyFor(c.periphery, c.ring_scale);
    const { H, W } = G.gridFor(c.width, c.height);
    assert.deepEqual([G.latentFrameCount(c.num_frames, c.frame_stride), H, W], c.grid, what);
    assert.equal(G.videoFramesFor(c.num_frames, c.frame_stride), c.num_frames, what);
    const maps = G.pathLevelMaps(c.keyframes, c.num_frames, policy, H, W, c.frame_stride);
    assert.equal(maps.length, c.levels.length, what);
    let total = 0;
    maps.forEach((map, t) => {
      assert.deepEqual(G.videoFramesOf(t, c.frame_stride, c.num_frames), c.video_frames_of[t], `${what} t=${t}`);
      for (let f = c.video_frames_of[t][0]; f <= c.video_frames_of[t][1]; f++) {
        assert.equal(G.latentFrameOf(f, c.frame_stride), t, `${what}: video frame ${f}`);
      }
      assert.deepEqual(Array.from(map), c.levels[t], `${what}: level map of latent frame ${t} differs`);
      const tokens = G.readout(map, H, W).tokens;
      assert.equal(tokens, c.tokens[t], `${what}: tokens of latent frame ${t}`);
      total += tokens;
    });
    assert.equal(total, c.total_tokens, what);
  }
});

test("a frame count a video model cannot make rounds down to one it makes", () => {
  assert.equal(G.videoFramesFor(80), 77);
  assert.equal(G.videoFramesFor(81), 81);
  assert.equal(G.videoFramesFor(10, 8), 9);
  assert.equal(G.latentFrameCount(80), 21); // the last latent frame covers 77 .. 79
  assert.deepEqual(G.videoFramesOf(20, 4, 80), [77, 79]);
});
