"""Gaze paths, saliency, split decode/blend and the FLOP model."""
import ast
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fov_core import (
    DiTDims, Fovea, Gaze, GazeKeyframe, GazePath, LatentPacking, LevelPolicy, SplitDecoder, TokenGrid, TokenLayout,
    format_readout, gaze_from_saliency, rasterize, readout, spectral_residual_saliency, step_flops,
)
from fov_core.gaze_path import pchip_eval, pchip_slopes

pytestmark = pytest.mark.pure
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- gaze paths
def test_pchip_matches_scipy_reference_values():
    # values from scipy.interpolate.PchipInterpolator (scipy 1.x) for these knots
    xs, ys = [0, 10, 25, 40, 80], [0.2, 0.8, 0.5, 0.55, 0.1]
    q = [0, 3, 7.5, 10, 12, 20, 24, 30, 39, 41, 60, 79, 80]
    ref = [0.2, 0.46484, 0.749375, 0.8, 0.785422222222, 0.577777777778, 0.503822222222,
           0.512962962963, 0.549362962963, 0.549703053977, 0.43428030303, 0.121606605114, 0.1]
    d = pchip_slopes(xs, ys)
    for x, r in zip(q, ref):
        assert abs(pchip_eval(xs, ys, d, x) - r) < 1e-9
    xs, ys = [0, 5, 9], [0.3, 0.3, 0.9]
    d = pchip_slopes(xs, ys)
    assert [round(pchip_eval(xs, ys, d, x), 9) for x in (1, 4, 6, 8)] == [0.3, 0.3, 0.353125, 0.684375]


def test_path_passes_through_keyframes_and_never_overshoots():
    kfs = (GazeKeyframe(0, 0.1, 0.2, 0.1), GazeKeyframe(20, 0.9, 0.25, 0.4), GazeKeyframe(40, 0.5, 0.8, 0.05))
    path = GazePath(kfs, 81)
    for kf in kfs:
        assert path.sample(kf.frame) == pytest.approx((kf.x, kf.y, kf.radius))
    for f in range(0, 41):
        x, y, r = path.sample(f)
        assert 0.1 <= x <= 0.9 and 0.2 <= y <= 0.8 and 0.05 <= r <= 0.4
    assert path.sample(80) == pytest.approx((0.5, 0.8, 0.05))  # held after the last keyframe
    single = GazePath((GazeKeyframe(5, 0.3, 0.3, 0.2),), 9)
    assert single.sample(0) == single.sample(8) == (0.3, 0.3, 0.2)


def test_path_fovea_follows_the_path_per_latent_frame():
    grid = TokenGrid(5, 16, 16, frame_stride=4)  # 17 video frames
    path = GazePath((GazeKeyframe(0, 0.1, 0.5, 0.1), GazeKeyframe(16, 0.9, 0.5, 0.1)), 17)
    lm = rasterize(Fovea((), LevelPolicy.half(), path=path), grid)
    centers = [float((lm[t] == 0).nonzero()[:, 1].float().mean()) for t in range(5)]
    assert all(b > a for a, b in zip(centers, centers[1:]))
    # a latent frame holds the union of the circles of the video frames it covers
    f1 = rasterize(Fovea((path.gaze_at(1),), LevelPolicy.half()), TokenGrid(1, 16, 16))[0] == 0
    f4 = rasterize(Fovea((path.gaze_at(4),), LevelPolicy.half()), TokenGrid(1, 16, 16))[0] == 0
    assert ((lm[1] == 0) >= (f1 | f4)).all()


# ----------------------------------------------------------------- saliency
def test_paper_rule_finds_a_blob():
    H, W = 90, 160
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    blob = torch.exp(-((xx - 0.7 * W) ** 2 + (yy - 0.3 * H) ** 2) / (2 * 12.0**2))
    g = gaze_from_saliency(blob)
    assert abs(g.x - 0.7) < 0.02 and abs(g.y - 0.3) < 0.03
    assert 0.2 <= g.radius <= 0.5
    # clipping to [r_min, r_max]
    assert gaze_from_saliency(blob, r_min=0.01, r_max=0.5).radius < 0.2
    wide = torch.ones(H, W)
    assert gaze_from_saliency(wide).radius == 0.5


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(10, 10), "empty"),
        (torch.full((10, 10), float("nan")), "NaN"),
        (-torch.ones(10, 10), "negative"),
        (torch.ones(2, 10, 10), r"\(H, W\)"),
    ],
)
def test_bad_saliency_maps(bad, match):
    with pytest.raises(ValueError, match=match):
        gaze_from_saliency(bad)


def test_spectral_residual_finds_the_odd_object():
    img = torch.full((128, 192, 3), 0.5)
    img[70:86, 140:156] = torch.tensor([1.0, 0.1, 0.1])
    sal = spectral_residual_saliency(img)
    assert sal.shape == (128, 192) and float(sal.max()) == pytest.approx(1.0)
    g = gaze_from_saliency(sal)
    assert abs(g.x - 148 / 192) < 0.08 and abs(g.y - 78 / 128) < 0.1


# ----------------------------------------------------------------- decode & blend
def _fake_decode(latent, patch, token_px):
    """A stand-in VAE: latent (B, C, h, w) -> image (B, h*f, w*f, 3), f = token_px / patch."""
    f = token_px // patch
    img = latent[:, :3].repeat_interleave(f, -2).repeat_interleave(f, -1)
    return img.movedim(1, -1).clamp(0, 1)


TWO_GAZES = (Gaze(0.2, 0.2, 0.12), Gaze(0.8, 0.8, 0.12))  # far apart: one equal-size crop each


@pytest.mark.parametrize("policy, gazes, grid", [
    (LevelPolicy.half(), (Gaze(0.4, 0.5, 0.2),), TokenGrid(1, 16, 24)),
    (LevelPolicy.quarter(), (Gaze(0.4, 0.5, 0.2),), TokenGrid(1, 16, 24)),
    (LevelPolicy.rings(2.0), (Gaze(0.4, 0.5, 0.2),), TokenGrid(1, 16, 24)),
    (LevelPolicy.half(), TWO_GAZES, TokenGrid(1, 32, 48)),
], ids=["half", "quarter", "rings", "two_crops"])
def test_split_decode_blends_with_the_seam_inside_the_fovea(policy, gazes, grid):
    layout = TokenLayout(rasterize(Fovea(gazes, policy), grid))
    p, tp = 2, 16
    dec = SplitDecoder(layout, p, tp, feather=0.05)
    canvas = LatentPacking(layout, p).canonicalize(torch.rand(1, 4, grid.height * p, grid.width * p))
    parts = [_fake_decode(part.latent(canvas, p), p, tp) for part in dec.parts]
    # the fine part is decoded on crops only (one per fovea when they are far apart)
    assert dec.parts[-1].boxes is not None and dec.decoded_pixels() < 1.0
    assert len(dec.parts[-1].boxes) == len(gazes)
    out = dec.compose(parts)
    assert out.shape == (1, grid.height * tp, grid.width * tp, 3)
    full = _fake_decode(canvas, p, tp)  # what one native decode of the canvas gives
    w0 = dec.weights(0)[0]
    assert float(w0.min()) == 0.0 and float(w0.max()) == pytest.approx(1.0)
    lm_px = layout.level_map[0].repeat_interleave(tp, 0).repeat_interleave(tp, 1)
    assert (w0[lm_px > 0] == 0).all()  # never uses the fine decode outside its region
    deep = w0 == 1
    assert deep.any()
    torch.testing.assert_close(out[0][deep], full[0][deep])


def test_feather_zero_is_a_hard_switch():
    layout = TokenLayout(rasterize(Fovea((Gaze(0.5, 0.5, 0.3),)), TokenGrid(1, 8, 8)))
    dec = SplitDecoder(layout, 1, 16, feather=0.0)
    w = dec.weights(0)[0]
    lm_px = layout.level_map[0].repeat_interleave(16, 0).repeat_interleave(16, 1)
    assert torch.equal(w, (lm_px == 0).float())


# ----------------------------------------------------------------- FLOPs
KLEIN_4B = DiTDims(hidden=3072, mlp_hidden=9216, blocks=25, text_tokens=512, gated_mlp=True)


def test_flops_native_equals_all_full_layout_and_grow_with_tokens():
    grid = TokenGrid(1, 64, 64)
    full = TokenLayout(torch.zeros(1, 64, 64, dtype=torch.long))
    assert step_flops(KLEIN_4B, full) == step_flops(KLEIN_4B, None, 4096)
    small = TokenLayout(rasterize(Fovea((Gaze(0.5, 0.5, 0.2),), LevelPolicy.quarter()), grid))
    big = TokenLayout(rasterize(Fovea((Gaze(0.5, 0.5, 0.5),), LevelPolicy.quarter()), grid))
    r_small, r_big = readout(small, KLEIN_4B), readout(big, KLEIN_4B)
    assert r_small["token_ratio"] < r_big["token_ratio"] < 1
    assert r_small["ideal_speedup"] > r_big["ideal_speedup"] > 1
    # hand count for the native step: 25 blocks x (linear + attention), 2 FLOPs per MAC
    n = 4096 + 512
    lin = 4 * 3072**2 + 3 * 3072 * 9216
    assert step_flops(KLEIN_4B, None, 4096) == 2.0 * 25 * (n * lin + 2 * 3072 * n * n)
    assert "tokens" in format_readout(r_small) and "x" in format_readout(r_small)


# ----------------------------------------------------------------- layering
def test_fov_core_never_imports_comfyui():
    banned = {"comfy", "comfy_api", "comfy_extras", "nodes", "folder_paths", "server", "execution"}
    for path in (ROOT / "fov_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for n in names:
                assert n.split(".")[0] not in banned, f"{path.name} imports {n}"
    code = "import sys, fov_core; bad = [m for m in sys.modules if m.split('.')[0] in %r]; print(bad); sys.exit(bool(bad))" % (banned,)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
