"""Fovea descriptions: what they mean on a grid, and clear errors for bad input."""
import math
import time

import pytest
import torch

from bench.measure import PeakMemory
from fov_core import (
    AcuityGaze, Box, Fovea, Gaze, GazeKeyframe, GazePath, LayoutCache, LevelPolicy, MaskRegion, TokenGrid,
    assign_levels, rasterize, resolution_preview,
)
from fov_core.regions import FrameCoords

pytestmark = pytest.mark.pure


def test_circle_is_round_on_screen_for_wide_images():
    # 16x32 tokens (2:1); radius in half-diagonal units must give equal extent in x and y
    grid = TokenGrid(1, 32, 64)
    lm = rasterize(Fovea((Gaze(0.5, 0.5, 0.2),)), grid)[0]
    rows = (lm == 0).any(dim=1).nonzero()
    cols = (lm == 0).any(dim=0).nonzero()
    h = int(rows[-1] - rows[0] + 1)
    w = int(cols[-1] - cols[0] + 1)
    assert abs(h - w) <= 2  # block rounding only
    expected = 2 * 0.2 * 0.5 * math.hypot(32, 64)
    assert abs(w - expected) <= 3


def test_ellipse_aspect_and_rotation():
    grid = TokenGrid(1, 64, 64)
    wide = rasterize(Fovea((Gaze(0.5, 0.5, 0.3, aspect=0.4),)), grid)[0] == 0
    tall = rasterize(Fovea((Gaze(0.5, 0.5, 0.3, aspect=0.4, rotation=90),)), grid)[0] == 0
    assert wide.any(dim=0).sum() > 2 * wide.any(dim=1).sum()
    assert torch.equal(tall, wide.T)


def test_several_foveae_are_a_union():
    grid = TokenGrid(1, 32, 32)
    a, b = Gaze(0.25, 0.25, 0.1), Gaze(0.75, 0.7, 0.1)
    both = rasterize(Fovea((a, b)), grid)[0] == 0
    only_a = rasterize(Fovea((a,)), grid)[0] == 0
    only_b = rasterize(Fovea((b,)), grid)[0] == 0
    assert torch.equal(both, only_a | only_b)


def test_box_covers_its_tokens():
    grid = TokenGrid(1, 16, 16)
    lm = rasterize(Fovea((Box(0.25, 0.5, 0.5, 0.75),)), grid)[0]
    assert (lm[8:12, 4:8] == 0).all()
    assert (lm[:8] == 1).all() and (lm[12:] == 1).all()


def test_mask_of_any_size_is_max_pooled():
    grid = TokenGrid(1, 8, 8)
    m = torch.zeros(100, 100)
    m[51, 13] = 1.0  # a single pixel still claims its token (and its 2x2 block)
    lm = rasterize(Fovea((MaskRegion(m),)), grid)[0]
    assert (lm == 0).sum() == 4
    assert lm[4, 1] == 0
    small = torch.zeros(2, 2)
    small[0, 1] = 1
    lm2 = rasterize(Fovea((MaskRegion(small),)), grid)[0]
    assert (lm2[:4, 4:] == 0).all() and (lm2 == 0).sum() == 16


def test_single_token_fovea_is_kept():
    grid = TokenGrid(1, 16, 16)
    lm = rasterize(Fovea((Gaze(0.53, 0.47, 0.001),)), grid)[0]
    assert lm[7, 8] == 0


def test_rings_from_policy_scales():
    grid = TokenGrid(1, 64, 64)
    f = Fovea((Gaze(0.5, 0.5, 0.15),), LevelPolicy.rings(2.5))
    lm = rasterize(f, grid)[0]
    assert set(torch.unique(lm).tolist()) == {0, 1, 2}
    # radial order: full inside 1/2 inside 1/4
    row = lm[32]
    center = 32
    assert row[center] == 0 and row[0] == 2
    d0 = (row == 0).nonzero().squeeze(1)
    d1 = (row == 1).nonzero().squeeze(1)
    assert d1.min() < d0.min() and d1.max() > d0.max()


def test_mask_rings_extend_around_the_mask():
    grid = TokenGrid(1, 32, 32)
    m = torch.zeros(32, 32)
    m[12:20, 12:20] = 1
    lm = rasterize(Fovea((MaskRegion(m),), LevelPolicy.rings(2.0)), grid)[0]
    assert (lm[12:20, 12:20] == 0).all()
    assert (lm[10:22, 10:22] <= 1).all()
    assert lm[0, 0] == 2


def test_acuity_rings_follow_viewing_geometry():
    grid = TokenGrid(1, 64, 64)  # 1024 px
    near = AcuityGaze(0.5, 0.5, display_width_cm=60, distance_cm=40)
    far = AcuityGaze(0.5, 0.5, display_width_cm=60, distance_cm=120)
    pol = LevelPolicy((0, 1, 2), (2.0,))
    full_near = (rasterize(Fovea((near,), pol), grid) == 0).sum()
    full_far = (rasterize(Fovea((far,), pol), grid) == 0).sum()
    # from further away each pixel subtends less: the periphery can be coarser sooner
    assert full_far < full_near
    # eccentricity at the gaze is 0 and grows monotonically along a row
    e = near.eccentricity_deg(FrameCoords.build(grid, 0))[32]
    assert e[32] < 1.0 and torch.all(e[33:].diff() > 0)


def test_video_fovea_on_image_model_is_an_error():
    path = GazePath((GazeKeyframe(0, 0.5, 0.5, 0.2),), 9)
    with pytest.raises(ValueError, match="single image"):
        rasterize(Fovea((), path=path), TokenGrid(1, 16, 16))


def test_path_frame_count_must_match():
    path = GazePath((GazeKeyframe(0, 0.5, 0.5, 0.2),), 17)
    with pytest.raises(ValueError, match="set the path's frame count to 9"):
        rasterize(Fovea((), path=path), TokenGrid(3, 16, 16, frame_stride=4))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Gaze(0.5, 0.5, 0.0), "radius must be > 0"),
        (lambda: Gaze(0.5, 0.5, -0.1), "radius must be > 0"),
        (lambda: Gaze(3.0, 0.5, 0.2), "far outside the image"),
        (lambda: Gaze(0.5, -2.0, 0.2), "far outside the image"),
        (lambda: Gaze(float("nan"), 0.5, 0.2), "finite"),
        (lambda: Gaze(0.5, 0.5, float("nan")), "finite"),
        (lambda: Gaze(0.5, 0.5, 0.2, aspect=0), "aspect must be > 0"),
        (lambda: Box(0.5, 0.5, 0.4, 0.9), "x1 > x0"),
        (lambda: Box(1.2, 0.1, 1.5, 0.2), "outside"),
        (lambda: MaskRegion(torch.zeros(8, 8)), "mask is empty"),
        (lambda: MaskRegion(torch.full((8, 8), float("nan"))), "NaN"),
        (lambda: MaskRegion(torch.tensor([[0.0, float("inf")]])), "NaN or infinite"),
        (lambda: MaskRegion(torch.full((8, 8), 0.4)), "no value reaches the threshold 0.5 .*largest value is 0.4"),
        (lambda: MaskRegion(torch.ones(8, 8), float("nan")), "mask threshold must be a finite number"),
        (lambda: MaskRegion(torch.zeros(2, 3, 4, 5)), "shape"),
        (lambda: AcuityGaze(0.5, 0.5, distance_cm=0), "distance_cm must be > 0"),
        (lambda: LevelPolicy((1, 2)), "start at 0"),
        (lambda: LevelPolicy((0, 2, 1)), "increase"),
        (lambda: LevelPolicy((0, 1, 2)), "ring scale"),
        (lambda: LevelPolicy((0, 1, 2), (0.5,)), "> 1"),
        (lambda: LevelPolicy((0, 5)), "coarsest level"),
        (lambda: Fovea(()), "at least one region"),
        (lambda: Fovea((Gaze(0.5, 0.5, 0.2),), feather=-1), "feather"),
        (lambda: GazePath((), 10), "at least one keyframe"),
        (lambda: GazePath((GazeKeyframe(12, 0.5, 0.5, 0.2),), 10), "out of range"),
        (lambda: GazePath((GazeKeyframe(-1, 0.5, 0.5, 0.2),), 10), "out of range"),
        (lambda: GazePath((GazeKeyframe(5, 0.5, 0.5, 0.2), GazeKeyframe(2, 0.5, 0.5, 0.2)), 10), "increasing"),
        (lambda: GazePath((GazeKeyframe(2, 0.5, 0.5, 0.2), GazeKeyframe(2, 0.6, 0.5, 0.2)), 10), "increasing"),
        (lambda: GazeKeyframe(1, 0.5, 0.5, 0.0), "radius must be > 0"),
        (lambda: GazeKeyframe(1.5, 0.5, 0.5, 0.1), "integer"),
        (lambda: TokenGrid(1, 0, 8), "positive integer"),
    ],
)
def test_bad_input_raises_a_clear_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_grid_smaller_than_a_coarse_block():
    with pytest.raises(ValueError, match="smaller than one 1/4 periphery block"):
        rasterize(Fovea((Gaze(0.5, 0.5, 0.2),), LevelPolicy.quarter()), TokenGrid(1, 3, 16))


def test_fovea_outside_the_image_is_an_error():
    with pytest.raises(ValueError, match="does not reach into the image"):
        rasterize(Fovea((Gaze(1.4, 1.4, 0.05),)), TokenGrid(1, 16, 16))


def test_mask_frame_count_mismatch():
    m = torch.ones(5, 8, 8)
    with pytest.raises(ValueError, match=r"the mask has 5 frames but the video has 9 frames \(3 latent frames\); "
                                         r"give 1 mask .*, 9 \(one per video frame\) or 3 \(one per latent frame\)"):
        rasterize(Fovea((MaskRegion(m),)), TokenGrid(3, 8, 8, frame_stride=4))


@pytest.mark.parametrize("policy", [LevelPolicy.half(), LevelPolicy.rings(2.0)], ids=["half", "rings"])
def test_a_frame_with_an_empty_mask_is_all_periphery(policy):
    m = torch.zeros(3, 32, 32)
    m[0, :8, :8] = 1
    m[2, 20:, 20:] = 1
    lm = rasterize(Fovea((MaskRegion(m),), policy), TokenGrid(3, 16, 16))
    assert (lm[1] == policy.periphery).all()
    assert (lm[0, :4, :4] == 0).all() and (lm[2, 10:, 10:] == 0).all()


def test_video_mask_per_video_frame_takes_the_union_per_latent_frame():
    grid = TokenGrid(3, 8, 8, frame_stride=4)  # 9 video frames
    m = torch.zeros(9, 8, 8)
    m[0, 0, 0] = 1  # frame 0 -> latent 0
    m[3, 7, 7] = 1  # frame 3 -> latent 1 (frames 1..4)
    m[8, 0, 7] = 1  # frame 8 -> latent 2 (frames 5..8)
    lm = rasterize(Fovea((MaskRegion(m),)), grid)
    assert lm[0, 0, 0] == 0 and lm[1, 0, 0] == 1
    assert lm[1, 7, 7] == 0 and lm[0, 7, 7] == 1
    assert lm[2, 0, 7] == 0


def test_fovea_key_is_content_based():
    a = Fovea((Gaze(0.5, 0.5, 0.2),))
    b = Fovea((Gaze(0.5, 0.5, 0.2),))
    c = Fovea((Gaze(0.5, 0.5, 0.21),))
    assert a.key() == b.key() != c.key()
    m = torch.zeros(4, 4)
    m[1, 1] = 1
    m2 = m.clone()
    m2[2, 2] = 1
    assert Fovea((MaskRegion(m),)).key() == Fovea((MaskRegion(m.clone()),)).key() != Fovea((MaskRegion(m2),)).key()


def cdist_rho(mask: torch.Tensor, threshold: float, grid: TokenGrid) -> torch.Tensor:
    """The former mask eccentricity, written out as the reference: threshold the pixels,
    max-pool them to the token grid, then the distance from every token center to the
    nearest fovea token center by torch.cdist over all token pairs."""
    inside = (mask >= threshold).float().amax(dim=0, keepdim=True)
    inside = torch.nn.functional.adaptive_max_pool2d(inside[None], (grid.height, grid.width))[0, 0] > 0.5
    fc = FrameCoords.build(grid, 0)
    pts_in = torch.stack([fc.xs[inside], fc.ys[inside]], dim=-1)
    pts = torch.stack([fc.xs.reshape(-1), fc.ys.reshape(-1)], dim=-1)
    dist = torch.cdist(pts, pts_in).amin(dim=1).reshape(inside.shape)
    r_eq = math.sqrt(float(inside.sum()) * grid.token_px**2 / math.pi)
    return torch.where(inside, 0.0, 1.0 + dist / r_eq)


def _random(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _one_pixel(h, w, y, x):
    m = torch.zeros(1, h, w)
    m[0, y, x] = 1.0
    return m


@pytest.mark.parametrize(
    "mask, threshold, grid",
    [
        (torch.arange(64.0).reshape(1, 64, 1).expand(1, 64, 64) % 40 >= 20, 0.5, TokenGrid(1, 16, 16)),  # bands
        (_random((1, 100, 140), 0), 0.9995, TokenGrid(1, 13, 17, token_px=8)),  # scattered pixels
        (_one_pixel(300, 200, 150, 7), 0.5, TokenGrid(1, 30, 20)),  # one pixel, mask not a multiple of the grid
        (_random((1, 97, 61), 3), 0.99, TokenGrid(1, 40, 24, token_px=2)),  # mask coarser than the grid
        (_random((1, 512, 512), 1), 0.99998, TokenGrid(1, 64, 64)),
    ],
    ids=["bands", "scattered", "one_pixel", "coarse_mask", "few_blobs"],
)
def test_mask_ring_distances_equal_all_pairs_token_center_distances(mask, threshold, grid):
    """The O(tokens) distance transform gives what cdist over every token pair gave."""
    mask = mask.float()
    region = MaskRegion(mask, threshold)
    ref = cdist_rho(mask, threshold, grid)
    assert 0 < int((ref == 0).sum()) < grid.tokens // 2
    torch.testing.assert_close(region.rho(FrameCoords.build(grid, 0)), ref, rtol=1e-9, atol=1e-9)
    policy = LevelPolicy.rings(1.7)
    expected = assign_levels(policy.level_for_rho(ref)[None], policy.levels)
    assert torch.equal(rasterize(Fovea((region,), policy), grid), expected)


def test_a_4096_mask_fovea_stays_small_in_memory():
    """A (4096, 4096) MASK, a quarter of it fovea with rings, to its preview (what Fovea from
    Mask outputs) and the TokenLayout of the 256x256-token grid: under 100 MiB beyond the mask
    (the 64 MiB preview included). All-pairs ring distances (torch.cdist) needed 8 GiB here."""

    def path(mask):
        fovea = Fovea((MaskRegion(mask),), LevelPolicy.rings(2.0))
        preview = resolution_preview(fovea, mask.shape[-1], mask.shape[-2], 1, 16)
        return preview, LayoutCache().get(fovea, TokenGrid(1, mask.shape[-2] // 16, mask.shape[-1] // 16))

    small = torch.zeros(1, 256, 256)
    small[:, 64:192, 64:192] = 1
    path(small)  # first calls (imports, kernels) outside the measurement
    mask = torch.zeros(1, 4096, 4096)
    mask[:, 1024:3072, 1024:3072] = 1
    with PeakMemory("cpu") as mem:
        start = time.perf_counter()
        preview, layout = path(mask)
        elapsed = time.perf_counter() - start
    assert mem.ok, "cannot reset the peak resident set (/proc/self/clear_refs)"
    print(f"4096^2 mask -> preview + layout: {elapsed:.3f} s, peak {mem.peak / 2**20:.0f} MiB beyond the mask")
    assert mem.peak < 100 * 2**20, f"{mem.peak / 2**20:.0f} MiB"
    assert preview.shape == (1, 4096, 4096) and float(preview[0, 2048, 2048]) == 1.0
    lm = layout.level_map[0]
    assert (lm[64:192, 64:192] == 0).all() and set(torch.unique(lm).tolist()) == {0, 1, 2}
