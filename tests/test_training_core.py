"""Foveated training, pure tier: random foveae, fitted images, the target and the loss over
packed tokens (fov_core.training), and correct gradients through blocks that update their
inputs in place (fov_core.inplace_safe)."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from fov_core import (
    Box, Gaze, LatentPacking, LevelPolicy, TokenGrid, TokenLayout, TrainingFoveae, boxes_in_fitted_image, clip_frames,
    downsample_image, fit_image, merge_levels, min_side_px, packed_velocity_loss, plan_fit, random_circle,
    random_gaze_path, rasterize, saliency_gaze, saliency_path,
)
from fov_core.fovea import Fovea
from fov_core.inplace_safe import block_forward

pytestmark = pytest.mark.pure


def test_random_circles_follow_the_paper():
    """Centers uniform in [0.2, 0.8]^2 (image center +- 0.3), radii uniform in [0.2, 0.5] of the
    half-diagonal; the same seed gives the same circles."""
    g = torch.Generator().manual_seed(0)
    circles = [random_circle(g) for _ in range(4000)]
    xs = torch.tensor([c.x for c in circles])
    ys = torch.tensor([c.y for c in circles])
    rs = torch.tensor([c.radius for c in circles])
    for v, lo, hi in ((xs, 0.2, 0.8), (ys, 0.2, 0.8), (rs, 0.2, 0.5)):
        assert float(v.min()) >= lo and float(v.max()) <= hi
        assert float(v.min()) < lo + 0.01 and float(v.max()) > hi - 0.01  # the whole range is used
        assert abs(float(v.mean()) - (lo + hi) / 2) < 0.01  # uniform
    assert abs(float(torch.corrcoef(torch.stack([xs, ys]))[0, 1])) < 0.05  # independent axes
    g2 = torch.Generator().manual_seed(0)
    assert [random_circle(g2) for _ in range(5)] == circles[:5]


def test_training_foveae_modes():
    pol = LevelPolicy.half()
    g = torch.Generator().manual_seed(1)
    rnd = TrainingFoveae("random circles", pol)
    a, b = rnd.draw(0, g), rnd.draw(0, g)
    assert a.regions != b.regions and rnd.fixed(0) is None  # a new circle per sample
    box = Box(0.1, 0.1, 0.4, 0.5)
    fixed = TrainingFoveae("boxes", pol, ((box,), None))
    assert fixed.draw(0, g).regions == (box,) and fixed.draw(0, g).regions == (box,)
    assert isinstance(fixed.draw(1, g).regions[0], Gaze)  # an image without boxes: random circles
    assert fixed.draw(0, g).policy == pol
    with pytest.raises(ValueError, match="fovea mode must be one of"):
        TrainingFoveae("gaze", pol)
    with pytest.raises(ValueError, match="'random gaze paths' is for video clips"):
        TrainingFoveae("random gaze paths", pol)
    with pytest.raises(ValueError, match="'boxes' is for images; this model trains on clips"):
        TrainingFoveae("boxes", pol, frames=(9,))


def test_clips_get_random_gaze_paths_that_move_and_stay_in_the_paper_ranges():
    """A random gaze path per clip sample: keyframes at the first, middle and last video frame,
    each a paper circle, so every frame's circle stays in the paper's ranges (PCHIP never
    overshoots) and the fovea moves over the clip; seeded like the circles."""
    pol = LevelPolicy.half()
    foveae = TrainingFoveae("random gaze paths", pol, frames=(9, 17))
    g = torch.Generator().manual_seed(3)
    a, b = foveae.draw(0, g), foveae.draw(1, g)
    assert a.regions == () and a.path.num_frames == 9 and b.path.num_frames == 17
    assert [kf.frame for kf in a.path.keyframes] == [0, 4, 8] and [kf.frame for kf in b.path.keyframes] == [0, 8, 16]
    for f in range(17):
        x, y, r = b.path.sample(f)
        assert 0.2 <= x <= 0.8 and 0.2 <= y <= 0.8 and 0.2 <= r <= 0.5
    assert b.path.sample(0) != b.path.sample(16)
    levels = rasterize(a, TokenGrid(3, 8, 8, frame_stride=4))
    assert not torch.equal(levels[0], levels[2])  # the full-resolution region moves between latent frames
    g2 = torch.Generator().manual_seed(3)
    assert random_gaze_path(g2, 9) == a.path
    one = TrainingFoveae("random gaze paths", pol, frames=(1,)).draw(0, g)
    assert one.path is None and isinstance(one.regions[0], Gaze)  # a one-frame clip: a circle
    circles = TrainingFoveae("random circles", pol, frames=(9,)).draw(0, g)
    assert circles.path is None and isinstance(circles.regions[0], Gaze)  # a circle that stays put


def test_a_clips_saliency_fovea_follows_its_salient_region():
    frames = 0.5 + 0.05 * torch.rand(9, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    for f in range(9):  # a bright square moving from the left to the right over a textured background
        x = 4 + 5 * f
        frames[f, 26:34, x : x + 8] = 1.0
    path = saliency_path(frames)
    assert [kf.frame for kf in path.keyframes] == [0, 4, 8]
    assert path.keyframes[0] == type(path.keyframes[0])(0, *[getattr(saliency_gaze(frames[0]), a)
                                                             for a in ("x", "y", "radius")])
    assert path.keyframes[0].x < 0.2 and path.keyframes[1].x == pytest.approx(0.44, abs=0.05) and path.keyframes[-1].x > 0.7
    fixed = TrainingFoveae("saliency", LevelPolicy.half(), (path,), frames=(9,))
    assert fixed.draw(0, torch.Generator()).path is path and fixed.fixed(0).path is path


def test_clips_keep_one_plus_a_multiple_of_the_vae_stride_frames():
    assert [clip_frames(n, 4) for n in (1, 4, 5, 8, 9, 80, 81, 200)] == [1, 1, 5, 5, 9, 77, 81, 81]
    assert clip_frames(33, 4, max_frames=17) == 17
    clip = torch.rand(5, 40, 70, 3)
    small = plan_fit(40, 70, resolution=1024)
    assert torch.equal(fit_image(clip, small), clip[:, 4:36, 3:67])  # every frame cropped alike
    fit = plan_fit(80, 140, resolution=64)
    out = fit_image(clip.repeat_interleave(2, 1).repeat_interleave(2, 2), fit)
    assert out.shape == (5, fit.height, fit.width, 3)
    assert torch.allclose(out[2], fit_image(clip[2].repeat_interleave(2, 0).repeat_interleave(2, 1), fit))


def test_images_are_fitted_to_whole_tokens_and_boxes_follow():
    fit = plan_fit(300, 500, resolution=256)  # 150000 px > 256^2: scaled down, aspect kept
    assert fit.scaled_h * fit.scaled_w <= 256 * 256 * 1.01
    assert abs(fit.scaled_w / fit.scaled_h - 500 / 300) < 0.02
    assert fit.height % 16 == 0 and fit.width % 16 == 0
    assert 0 <= fit.scaled_h - fit.height < 16 and 0 <= fit.scaled_w - fit.width < 16
    small = plan_fit(40, 70, resolution=1024)  # never upscaled; cropped to 32 x 64
    assert (small.scaled_h, small.scaled_w, small.height, small.width, small.top, small.left) == (40, 70, 32, 64, 4, 3)
    img = torch.rand(40, 70, 3)
    assert torch.equal(fit_image(img, small), img[4:36, 3:67])
    assert fit_image(torch.rand(300, 500, 3), fit).shape == (fit.height, fit.width, 3)
    # a box over the middle half of the original stays there (up to the crop)
    (b,) = boxes_in_fitted_image([Box(0.25, 0.25, 0.75, 0.75)], small)
    assert b.x0 == pytest.approx((0.25 * 70 - 3) / 64) and b.y1 == pytest.approx((0.75 * 40 - 4) / 32)
    assert boxes_in_fitted_image([Box(0.0, 0.0, 0.03, 0.05)], small) == []  # cropped away
    assert min_side_px(LevelPolicy.half()) == 32 and min_side_px(LevelPolicy.quarter()) == 64


def _packing(grid_hw=(8, 8), gaze=(0.3, 0.4, 0.25), patch=2, policy=None):
    fov = Fovea((Gaze(*gaze),), policy or LevelPolicy.half())
    return LatentPacking(TokenLayout(rasterize(fov, TokenGrid(1, *grid_hw))), patch)


def test_target_is_the_full_encode_in_the_fovea_and_the_downsampled_encode_outside():
    """The paper's principled target with a linear stand-in encoder (8x8 average pooling):
    fovea pixels come from E(x), every periphery group holds E(downsample(x)), never a
    pooled full-resolution latent."""
    pk = _packing()
    x = torch.rand(1, 128, 128, 3)  # 8 x 8 tokens of 16 px; latent 16 x 16 (patch 2)

    def enc(img):
        return F.avg_pool2d(img.movedim(-1, 1), 8)

    full = enc(x)
    low = enc(downsample_image(x, 2, 8))
    assert low.shape[-2:] == (8, 8)
    target = merge_levels(pk, full, {1: low})
    lev = pk.pixel_levels()[0]
    assert torch.equal(target[..., lev == 0], full[..., lev == 0])
    rep = target[..., ::2, ::2]  # the level-1 latent image
    lv1 = lev[::2, ::2] == 1
    assert torch.allclose(rep[..., lv1], low[..., lv1])
    assert not torch.allclose(rep[..., lv1], F.avg_pool2d(full, 2)[..., lv1], atol=1e-3)
    assert pk.is_canonical(target)


def test_downsample_image_pads_to_the_vae_multiple():
    x = torch.rand(2, 48, 80, 3)
    y = downsample_image(x, 4, 8)  # 12 x 20 -> padded to 16 x 24
    assert y.shape == (2, 16, 24, 3)
    assert torch.equal(y[:, 12:], y[:, 11:12].expand(-1, 4, -1, -1))  # replicate padding
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_loss_is_the_velocity_mse_over_packed_tokens():
    pk = _packing(grid_hw=(16, 16), policy=LevelPolicy.rings(2.0), gaze=(0.3, 0.3, 0.12))
    assert set(pk.layout.levels) == {0, 1, 2}
    g = torch.Generator().manual_seed(3)
    shape = (2, 4) + pk.latent_shape[1:]
    x0 = pk.canonicalize(torch.randn(shape, generator=g))
    eps = pk.noise(shape, generator=g)
    sigma = torch.tensor([0.3, 0.8])
    s = sigma.view(-1, 1, 1, 1)
    xt = (1 - s) * x0 + s * eps
    v_pred = pk.canonicalize(torch.randn(shape, generator=g))  # what the foveated model writes back
    x0_pred = xt - s * v_pred  # ComfyUI's CONST denoised
    loss = packed_velocity_loss(pk, x0_pred, x0, sigma)
    want = (pk.pack(v_pred) - pk.pack(eps - x0)).square().mean()
    assert float(loss) == pytest.approx(float(want), rel=1e-5)
    # every packed token counts once: not the canvas MSE (which weights a 1/4 token 16x)
    canvas_mse = (v_pred - (eps - x0)).square().mean()
    assert float(loss) != pytest.approx(float(canvas_mse), rel=1e-3)
    # an error confined to one 1/4 token (16 canvas positions per element) is counted once
    k = int((pk.layout.level == 2).nonzero()[0])
    tok = torch.zeros(2, pk.n_tokens, 4 * 4)
    tok[:, k] = 1.0
    delta = pk.unpack(tok)
    loss2 = packed_velocity_loss(pk, x0_pred - s * delta, x0, sigma)
    base = (pk.pack(v_pred) - pk.pack(eps - x0))
    assert float(loss2) == pytest.approx(float((base + tok).square().mean()), rel=1e-5)


# ----------------------------------------------------------------------------- in-place blocks
@dataclasses.dataclass
class Mod:
    scale: torch.Tensor
    gate: torch.Tensor


class InplaceBlock(torch.nn.Module):
    """Like ComfyUI's FLUX blocks: two residual updates of the input, in place, each after a
    LayerNorm that saved the stream; modulation passed as a nested dataclass."""

    def __init__(self, inplace: bool):
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
        self.inplace = inplace

    def forward(self, x, txt, vec=None, transformer_options=None):
        (m1, m2), = vec
        h = F.layer_norm(x, (8,)) * (1 + m1.scale)
        if self.inplace:
            x += m1.gate * self.a(h)
            x += m2.gate * self.b(F.layer_norm(x, (8,)).square())
            txt += x.mean(1, keepdim=True)
        else:
            x = x + m1.gate * self.a(h)
            x = x + m2.gate * self.b(F.layer_norm(x, (8,)).square())
            txt = txt + x.mean(1, keepdim=True)
        return x, txt


def _grads(inplace: bool, wrap, blocks=3):
    torch.manual_seed(0)
    mods = [InplaceBlock(inplace) for _ in range(blocks)]
    lora = torch.nn.Parameter(torch.full((8,), 0.5))  # a trainable leaf used inside each block
    for m in mods:
        m.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 8, generator=g)
    txt = torch.randn(2, 3, 8, generator=g)
    mod_src = torch.nn.Parameter(torch.randn(4, 8, generator=g))
    for m in mods:
        base_a, base_b = m.a.forward, m.b.forward
        m.a.forward = lambda t, f=base_a: f(t) * lora  # noqa: E731
        m.b.forward = lambda t, f=base_b: f(t) + lora  # noqa: E731
        if wrap is not None:
            m.forward = wrap(m.forward)
    vec = ((Mod(mod_src[0], mod_src[1]), Mod(mod_src[2], mod_src[3])),)
    for m in mods:
        x, txt = m(x, txt, vec=vec, transformer_options={"k": 1})
    (x.square().sum() + txt.sum()).backward()
    return lora.grad.clone(), mod_src.grad.clone()


@pytest.mark.parametrize("checkpoint", [False, True])
def test_inplace_blocks_get_correct_gradients(checkpoint):
    ref = _grads(False, None)
    got = _grads(True, lambda f: block_forward(f, checkpoint))
    for r, g in zip(ref, got):
        assert torch.allclose(r, g, atol=1e-6), (r, g)


def test_why_inplace_blocks_need_the_wrapper():
    """Without it: plain autograd refuses, and core Train LoRA's gradient-checkpointing patch
    (non-reentrant torch checkpoint) recomputes from mutated tensors (torch 2.9)."""
    with pytest.raises(RuntimeError, match="inplace operation"):
        _grads(True, None)

    def core_patch(f):  # comfy_extras.nodes_train.patch, non-offloading branch
        def fwd(args, kwargs):
            return f(*args, **kwargs)
        return lambda *a, **k: torch.utils.checkpoint.checkpoint(fwd, a, k, use_reentrant=False)

    ref = _grads(False, None)
    try:
        got = _grads(True, core_patch)
    except RuntimeError:
        return
    assert not all(torch.allclose(r, g, atol=1e-6) for r, g in zip(ref, got))


def test_checkpointed_block_without_trainable_parts_just_runs():
    blk = InplaceBlock(False).requires_grad_(False)
    fwd = block_forward(blk.forward, True, trainable=lambda: False)
    vec = ((Mod(torch.zeros(8), torch.ones(8)), Mod(torch.zeros(8), torch.ones(8))),)
    out = fwd(torch.randn(1, 2, 8), torch.randn(1, 1, 8), vec=vec)
    assert not out[0].requires_grad
    assert math.isfinite(float(out[0].sum()))


def test_checkpointing_recomputes_instead_of_keeping_activations():
    """With checkpoint=True every block's forward runs again in the backward pass (its
    activations were not kept); without, once."""
    for checkpoint, runs in ((False, 3), (True, 6)):
        calls = []

        def counting(f):
            def fwd(*a, **k):
                calls.append(1)
                return f(*a, **k)
            return block_forward(fwd, checkpoint)

        _grads(True, counting)
        assert len(calls) == runs, (checkpoint, len(calls))


# ----------------------------------------------------------------------------- the recipe on the reference DiT
class LoRA(torch.nn.Module):
    """W + (alpha / rank) up @ down, up random and down zero (core's initialisation: an exact
    no-op at the start), as a torch parametrization of a Linear's weight."""

    def __init__(self, weight: torch.Tensor, rank: int, generator: torch.Generator):
        super().__init__()
        self.up = torch.nn.Parameter(torch.empty(weight.shape[0], rank).uniform_(-1, 1, generator=generator))
        self.down = torch.nn.Parameter(torch.zeros(rank, weight.shape[1]))

    def forward(self, weight):
        return weight + self.up @ self.down  # alpha = rank


def _encode(pixels: torch.Tensor, frame_stride: int = 4) -> torch.Tensor:
    """A linear stand-in VAE: 8 px per latent pixel (average), frames 0 | 1-4 | 5-8 ... per
    latent frame (a clip), so one token (patch 2) is 16 px as in FLUX and Wan."""
    lat = F.avg_pool2d(pixels.movedim(-1, 1), 8)  # (T, 3, h, w)
    if pixels.shape[0] == 1:
        return lat
    groups = [lat[:1]] + list(lat[1:].split(frame_stride))
    return torch.stack([g.mean(0) for g in groups], dim=1)[None]  # (1, 3, T', h, w)


@pytest.mark.parametrize("kind", ["image", "clip"])
def test_the_recipe_trains_a_lora_on_the_reference_dit(kind):
    """The paper's recipe end to end on the reference DiTs, one optimizer step per sample: a
    new random fovea (a random gaze path for a clip) each step, the merged target, i.i.d.
    packed noise, the foveated forward, the packed velocity loss. The loss falls over a few
    dozen steps; before any step the LoRA model equals the base model exactly; training leaves
    the base weights as they were."""
    from torch.nn.utils import parametrize

    from reference_dit import JointDiT, VideoDiT

    g = torch.Generator().manual_seed(0)
    video = kind == "clip"
    frames = 9 if video else 1
    ramp = torch.linspace(0, 1, 128)
    pixels = torch.stack([(0.5 + 0.4 * torch.sin(6 * ramp[None, :] + 4 * ramp[:, None] + 0.3 * f))[..., None]
                          .expand(128, 128, 3) for f in range(frames)])
    full, low = _encode(pixels), _encode(downsample_image(pixels, 2, 8))
    grid = TokenGrid(full.shape[2] if video else 1, 8, 8, frame_stride=4)
    model = (VideoDiT if video else JointDiT)(channels=3, seed=1)
    model.requires_grad_(False)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    txt = torch.randn(1, 5, 8, generator=g)
    foveae = TrainingFoveae("random gaze paths" if video else "random circles", LevelPolicy.half(),
                            frames=(frames,) if video else ())
    first = foveae.draw(0, torch.Generator().manual_seed(9))
    first_layout = TokenLayout(rasterize(first, grid))
    canvas = merge_levels(LatentPacking(first_layout, 2), full, {1: low})
    with torch.no_grad():
        before = model.foveated(canvas, txt, first_layout)
    linears = [m for blk in model.blocks for m in blk.modules() if isinstance(m, torch.nn.Linear)]
    for m in linears:
        parametrize.register_parametrization(m, "weight", LoRA(m.weight, 4, g))
    with torch.no_grad():
        assert torch.equal(model.foveated(canvas, txt, first_layout), before)  # zero steps: the base model
    params = [p for m in linears for p in m.parametrizations.weight[0].parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    losses, paths = [], set()
    for _ in range(40):
        fovea = foveae.draw(0, g)
        paths.add(fovea.path if video else fovea.regions)
        layout = TokenLayout(rasterize(fovea, grid))
        packing = LatentPacking(layout, 2)
        x0 = merge_levels(packing, full, {1: low})
        sigma = torch.rand(1, generator=g) * 0.9 + 0.05
        s = sigma.view(-1, *([1] * (x0.ndim - 1)))
        xt = (1 - s) * x0 + s * packing.noise(tuple(x0.shape), generator=g)
        x0_pred = xt - s * model.foveated(xt, txt, layout)  # the model predicts the velocity
        loss = packed_velocity_loss(packing, x0_pred, x0, sigma)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert len(paths) == 40  # a new fovea every step
    assert sum(losses[-10:]) < 0.8 * sum(losses[:10]), losses
    for m in linears:
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    assert all(torch.equal(v, base[k]) for k, v in model.state_dict().items())
