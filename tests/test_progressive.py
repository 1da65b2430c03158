"""Progressive resolution on the canvas (fov_core.progressive), pure tier: stage layouts,
and the switch between stages (spectral expansion where tokens get finer, forward noising
where they keep their level)."""
import pytest
import torch

from fov_core import (Fovea, Gaze, LatentPacking, LevelPolicy, TokenGrid, TokenLayout, forward_noise, level_view,
                      rasterize, spectral_expand, stage_level, stage_level_maps, switch_canvas)

pytestmark = pytest.mark.pure


def test_stage_levels_are_powers_of_two():
    assert [stage_level(s) for s in (1, 0.5, 0.25)] == [0, 1, 2]
    for bad in (0.3, 0.75, 1.5):
        with pytest.raises(ValueError, match="powers of two"):
            stage_level(bad)


def test_stage_maps_coarsen_the_final_layout_and_never_refine_its_periphery():
    final = rasterize(Fovea((Gaze(0.4, 0.5, 0.25),), LevelPolicy.rings(1.8)), TokenGrid(2, 16, 16))
    maps = stage_level_maps(final, (0.25, 0.5, 1))
    assert torch.equal(maps[0], torch.full_like(final, 2))
    assert torch.equal(maps[1], torch.clamp(final, min=1))
    assert torch.equal(maps[2], final)
    for m in maps:
        TokenLayout(m)  # block consistent
    with pytest.raises(ValueError, match="divisible by 4"):
        stage_level_maps(torch.zeros(1, 18, 16, dtype=torch.long), (0.25, 1))


def _canvas(layout, p, seed=0):
    pk = LatentPacking(layout, p)
    T, Hl, Wl = pk.latent_shape
    return pk, pk.noise((2, 3, Hl, Wl), generator=torch.Generator().manual_seed(seed))


def test_plain_switch_is_the_spectral_expansion_of_the_coarse_latent():
    src, canvas = _canvas(TokenLayout(torch.ones(1, 8, 8, dtype=torch.long)), 2)
    dst = LatentPacking(TokenLayout(torch.zeros(1, 8, 8, dtype=torch.long)), 2)
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out, t_new = switch_canvas(canvas, src, dst, 0.5, 1.0, 0.8, noise, torch.zeros_like(canvas))
    expanded, t_ref = spectral_expand(level_view(canvas, 1).contiguous(), noise, 0.8)
    assert t_new == t_ref == pytest.approx(2 * 0.8 / 1.8)
    assert torch.equal(out, expanded)


def test_progressive_foveation_switch_expands_the_fovea_and_forward_noises_the_periphery():
    final = TokenLayout(rasterize(Fovea((Gaze(0.4, 0.5, 0.3),)), TokenGrid(1, 8, 8)))
    coarse = TokenLayout(torch.ones(1, 8, 8, dtype=torch.long))
    src, canvas = _canvas(coarse, 2)
    dst = LatentPacking(final, 2)
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(canvas.shape, generator=torch.Generator().manual_seed(2))
    t = 0.7
    out, t_new = switch_canvas(canvas, src, dst, 0.5, 1.0, t, noise, eps)
    assert dst.is_canonical(out)
    fovea_px = dst.pixel_levels()[0] == 0
    expanded, _ = spectral_expand(level_view(canvas, 1).contiguous(), noise, t)
    assert torch.equal(out[..., fovea_px], expanded[..., fovea_px])
    kept = dst.canonicalize(forward_noise(canvas, t, t_new, eps))
    assert torch.equal(out[..., ~fovea_px], kept[..., ~fovea_px])
    assert not torch.equal(out[..., ~fovea_px], canvas[..., ~fovea_px])  # brought to t~, not left at t


def test_forward_noised_periphery_reaches_the_new_noise_level():
    """A periphery token at t with state (1 - t) x0 + t e ends at (1 - t~) x0 + t~ e'."""
    coarse = TokenLayout(torch.ones(1, 8, 8, dtype=torch.long))
    final = TokenLayout(rasterize(Fovea((Gaze(0.1, 0.1, 0.05),)), TokenGrid(1, 8, 8)))
    src, dst = LatentPacking(coarse, 1), LatentPacking(final, 1)
    g = torch.Generator().manual_seed(3)
    n, t = 4000, 0.6
    x0 = torch.randn(n, 1, 8, 8, generator=g) * 0.7
    state = src.canonicalize((1 - t) * x0 + t * torch.randn(n, 1, 8, 8, generator=g))
    out, t_new = switch_canvas(state, src, dst, 0.5, 1.0, t, torch.randn(n, 1, 8, 8, generator=g),
                               torch.randn(n, 1, 8, 8, generator=g))
    x0c = src.canonicalize(x0)
    periphery = dst.pixel_levels()[0] > 0
    resid = (out - (1 - t_new) * x0c)[..., periphery]
    assert abs(float(resid.var()) - t_new**2) < 0.03
