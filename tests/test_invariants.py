"""DESIGN.md invariants on the tiny reference DiTs (fp32, tight tolerances).

1. all-level-0 == native full-resolution forward
2. all-level-k == native forward on the 1/2^k latent, replicated back
3. phase-aligned attention == dense per-query reference
4. sequence order, batch composition and caching change nothing
"""
import pytest
import torch

from assertions import assert_close, upsample

from fov_core import (
    Fovea, Gaze, GazeKeyframe, GazePath, LatentPacking, LayoutCache, LevelPolicy, MaskRegion, TokenGrid,
    TokenLayout, level_view, rasterize,
)
from reference_dit import JointDiT, VideoDiT

pytestmark = pytest.mark.pure
ATOL = 2e-5


def _close(a, b, atol=ATOL):
    assert_close(a, b, atol)


def _canvas(layout, patch, batch=1, channels=4, seed=0):
    pk = LatentPacking(layout, patch)
    T, Hl, Wl = pk.latent_shape
    shape = (batch, channels, T, Hl, Wl) if T > 1 else (batch, channels, Hl, Wl)
    return pk.noise(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def joint():
    torch.manual_seed(0)
    return JointDiT(patch=2).eval()


@pytest.fixture(scope="module")
def joint_p1():
    return JointDiT(patch=1, channels=8, seed=3).eval()


@pytest.fixture(scope="module")
def video():
    return VideoDiT(patch=2, seed=1).eval()


TXT = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("hw", [(8, 12), (7, 9)])
def test_all_full_resolution_equals_native(joint, batch, hw):
    layout = TokenLayout(torch.zeros(1, *hw, dtype=torch.long))
    lat = torch.randn(batch, 4, hw[0] * 2, hw[1] * 2)
    refs = torch.randn(batch, 4, 4, 6)
    with torch.no_grad():
        _close(joint.foveated(lat, TXT[:batch], layout), joint.native(lat, TXT[:batch]), 1e-6)
        _close(joint.foveated(lat, TXT[:batch], layout, refs=refs), joint.native(lat, TXT[:batch], refs=refs), 1e-6)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("model_name", ["joint", "joint_p1"])
def test_all_low_resolution_equals_native_low_resolution(request, model_name, k):
    model = request.getfixturevalue(model_name)
    layout = TokenLayout(torch.full((1, 8, 12), k, dtype=torch.long))
    canvas = _canvas(layout, model.patch, batch=2, channels=model.channels)
    refs = torch.randn(2, model.channels, 2 * model.patch, 3 * model.patch)
    with torch.no_grad():
        for r in (None, refs):
            fov = model.foveated(canvas, TXT, layout, refs=r)
            low = model.native(level_view(canvas, k), TXT, refs=r)
            _close(fov, upsample(low, k))


@pytest.mark.parametrize("k", [1, 2])
def test_video_all_low_equals_native_low(video, k):
    layout = TokenLayout(torch.full((3, 8, 8), k, dtype=torch.long))
    canvas = _canvas(layout, 2)
    with torch.no_grad():
        _close(video.foveated(canvas, TXT[:1], layout), upsample(video.native(level_view(canvas, k), TXT[:1]), k))
        full = TokenLayout(torch.zeros(3, 8, 8, dtype=torch.long))
        _close(video.foveated(canvas, TXT[:1], full), video.native(canvas, TXT[:1]), 1e-6)


FOVEAE = {
    "half": (Fovea((Gaze(0.4, 0.45, 0.25),), LevelPolicy.half()), TokenGrid(1, 8, 12)),
    "quarter": (Fovea((Gaze(0.6, 0.5, 0.2),), LevelPolicy.quarter()), TokenGrid(1, 12, 16)),
    "rings": (Fovea((Gaze(0.5, 0.5, 0.15),), LevelPolicy.rings(2.0)), TokenGrid(1, 16, 16)),
    "rings_odd_grid": (Fovea((Gaze(0.3, 0.6, 0.2), Gaze(0.8, 0.2, 0.1)), LevelPolicy.rings(1.6)), TokenGrid(1, 11, 13)),
    "levels_0_1_3": (Fovea((Gaze(0.5, 0.5, 0.1),), LevelPolicy((0, 1, 3), (2.0,))), TokenGrid(1, 16, 16)),
}


@pytest.mark.parametrize("name", sorted(FOVEAE))
@pytest.mark.parametrize("batch", [1, 2])
def test_fast_path_equals_dense_reference(joint, name, batch):
    fovea, grid = FOVEAE[name]
    layout = TokenLayout(rasterize(fovea, grid))
    assert len(layout.levels) >= 2
    canvas = _canvas(layout, 2, batch=batch)
    refs = torch.randn(batch, 4, 4, 4)
    with torch.no_grad():
        for r in (None, refs):
            _close(joint.foveated(canvas, TXT[:batch], layout, refs=r),
                   joint.foveated(canvas, TXT[:batch], layout, refs=r, reference=True))


@pytest.mark.parametrize("policy", [LevelPolicy.half(), LevelPolicy.rings(2.0)])
def test_video_fast_path_equals_dense_reference(video, policy):
    grid = TokenGrid(3, 12, 12, frame_stride=4)
    path = GazePath((GazeKeyframe(0, 0.2, 0.3, 0.15), GazeKeyframe(6, 0.7, 0.6, 0.25)), grid.video_frames)
    layout = TokenLayout(rasterize(Fovea((), policy, path=path), grid))
    assert not torch.equal(layout.level_map[0], layout.level_map[2])  # the fovea moves
    canvas = _canvas(layout, 2, batch=2)
    with torch.no_grad():
        _close(video.foveated(canvas, TXT, layout), video.foveated(canvas, TXT, layout, reference=True))


def test_batch_composition_changes_nothing(joint):
    fovea, grid = FOVEAE["rings"]
    layout = TokenLayout(rasterize(fovea, grid))
    canvas = _canvas(layout, 2, batch=2)
    with torch.no_grad():
        together = joint.foveated(canvas, TXT, layout)
        apart = torch.cat([joint.foveated(canvas[i : i + 1], TXT[i : i + 1], layout) for i in range(2)])
    _close(together, apart)  # fp32 BLAS blocking differs with batch size


def test_sequence_order_changes_nothing(joint):
    """Shuffle the packed tokens within each (lattice class, level) segment, which keeps every
    view a prefix and every level's runs: the unpacked result is the same."""
    fovea, grid = FOVEAE["rings_odd_grid"]
    layout = TokenLayout(rasterize(fovea, grid))
    shuffled = TokenLayout(layout.level_map)
    g = torch.Generator().manual_seed(1)
    seg = layout.lattice_class * 16 + layout.level
    bounds = [0] + (seg[1:] != seg[:-1]).nonzero().squeeze(1).add(1).tolist() + [layout.n_tokens]
    perm = torch.cat([s + torch.randperm(e - s, generator=g) for s, e in zip(bounds[:-1], bounds[1:])])
    assert not torch.equal(perm, torch.arange(layout.n_tokens))
    for name in ("t", "y", "x", "level", "lattice_class", "flat_index"):
        setattr(shuffled, name, getattr(layout, name)[perm])
    canvas = _canvas(layout, 2)
    with torch.no_grad():
        # key order changes fp32 summation order only
        _close(joint.foveated(canvas, TXT[:1], layout), joint.foveated(canvas, TXT[:1], shuffled))


def test_cached_layout_gives_identical_results(joint):
    fovea, grid = FOVEAE["quarter"]
    cache = LayoutCache()
    a = cache.get(fovea, grid)
    b = cache.get(Fovea(fovea.regions, fovea.policy), grid)
    assert a is b
    canvas = _canvas(a, 2)
    with torch.no_grad():
        assert torch.equal(joint.foveated(canvas, TXT[:1], a), joint.foveated(canvas, TXT[:1], TokenLayout(rasterize(fovea, grid))))


def test_output_is_a_canvas(joint):
    fovea, grid = FOVEAE["rings"]
    layout = TokenLayout(rasterize(fovea, grid))
    with torch.no_grad():
        out = joint.foveated(_canvas(layout, 2), TXT[:1], layout)
    assert LatentPacking(layout, 2).is_canonical(out)


def test_only_representatives_are_read(joint):
    """Perturbing non-representative pixels (e.g. fresh SDE noise) changes nothing."""
    fovea, grid = FOVEAE["half"]
    layout = TokenLayout(rasterize(fovea, grid))
    pk = LatentPacking(layout, 2)
    canvas = _canvas(layout, 2)
    noisy = canvas + torch.randn_like(canvas)  # every pixel perturbed ...
    rep = pk.element_index
    noisy.view(1, 4, -1)[:, :, rep] = canvas.view(1, 4, -1)[:, :, rep]  # ... but the representatives
    assert not torch.equal(noisy, canvas)
    with torch.no_grad():
        _close(joint.foveated(noisy, TXT[:1], layout), joint.foveated(canvas, TXT[:1], layout), 0.0)


def test_mask_fovea_runs_through_the_model(joint):
    m = torch.zeros(64, 64)
    m[10:30, 30:60] = 1
    layout = TokenLayout(rasterize(Fovea((MaskRegion(m),), LevelPolicy.quarter()), TokenGrid(1, 12, 16)))
    canvas = _canvas(layout, 2)
    with torch.no_grad():
        _close(joint.foveated(canvas, TXT[:1], layout), joint.foveated(canvas, TXT[:1], layout, reference=True))
