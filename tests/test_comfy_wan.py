"""DESIGN.md invariants on ComfyUI's real Wan classes (tiny random checkpoints in the real
Wan 2.1 T2V / I2V and Wan 2.2 5B / 14B formats, loaded by ComfyUI's own loader), fp32 on
CPU: all full resolution == native; all 1/2 == native on the half-resolution video; the
fast path == the dense per-query reference with a moving fovea; a static fovea == the
same fovea as a one-keyframe gaze path; image conditioning and per-frame timesteps."""
import pytest
import torch
import torch.nn.functional as F

from assertions import assert_close, upsample
from reference_dit import dense_reference_attention

pytestmark = pytest.mark.comfyui
ATOL = 3e-5
TXT = 9  # text tokens of the test conditioning (the real UMT5 context is 512)


class Wan:
    """A loaded tiny Wan model and how to call its diffusion model."""

    def __init__(self, env, key):
        from comfy import sd as comfy_sd

        self.env, self.key = env, key
        self.info = env.infos[key]
        self.mp = comfy_sd.load_diffusion_model(self.info["path"])
        self.dm = self.mp.model.diffusion_model
        self.channels = self.info["latent_channels"]
        self.pack = env.pack
        self.adapter_cls = env.pack.nodes.adapters.adapter_for(self.mp)

    def call_args(self, x, *, seed=0, timestep=None, clip=False):
        g = torch.Generator().manual_seed(seed)
        B = x.shape[0]
        context = torch.randn(B, TXT, self.info["text_dim"], generator=g)
        t = timestep if timestep is not None else torch.full((B,), 700.0)
        clip_fea = torch.randn(B, self.info["clip_tokens"], 1280, generator=g) if clip else None
        return (x, t, context, clip_fea, None, {}), {}

    def native(self, x, **kw):
        args, kwargs = self.call_args(x, **kw)
        with torch.no_grad():
            return self.dm(*args, **kwargs)

    def foveated(self, x, layout, image_rows=None, **kw):
        fc = self.pack.fov_core
        adapter = self.adapter_cls(self.mp)
        packing = fc.LatentPacking(layout, adapter.patch_size)
        args, kwargs = self.call_args(x, **kw)
        extra = {"clip_fea": args[3]} if args[3] is not None else {}
        with torch.no_grad():
            call = adapter.prepare(self.dm, layout, packing, x, args[2], {}, extra, image_rows)
            return self.pack.nodes.foveation.diffusion_model_wrapper(
                lambda *a, **k: self.dm._forward(*a, **k), *args, foveation=call, **kwargs)


@pytest.fixture(scope="module")
def wans(env):
    return {}


def _wan(env, wans, key):
    if key not in wans:
        wans[key] = Wan(env, key)
    return wans[key]


def _canvas(env, layout, channels, batch=1, seed=0):
    packing = env.pack.fov_core.LatentPacking(layout, 2)
    T, Hl, Wl = packing.latent_shape
    return packing.noise((batch, channels, T, Hl, Wl), generator=torch.Generator().manual_seed(seed))


def _moving_fovea(env, frames):
    fc = env.pack.fov_core
    path = fc.GazePath((fc.GazeKeyframe(0, 0.25, 0.3, 0.2), fc.GazeKeyframe(frames - 1, 0.7, 0.6, 0.3)), frames)
    return fc.Fovea((), fc.LevelPolicy.half(), path=path)


T2V = ["wan21_t2v", "wan22_t2v_14b_high", "wan22_ti2v_5b"]


@pytest.mark.parametrize("key", T2V)
def test_adapter_and_token_grid(env, wans, key):
    w = _wan(env, wans, key)
    adapter = w.adapter_cls(w.mp)
    grid, p = adapter.token_grid((1, w.channels, 3, 8, 12))
    assert (grid.frames, grid.height, grid.width, p) == (3, 4, 6, 2)
    assert grid.token_px == w.info["token_px"] and grid.video_frames == 9  # 1 + 4 (3 - 1)
    with pytest.raises(ValueError, match="generates videos"):
        adapter.token_grid((1, w.channels, 8, 12))


@pytest.mark.parametrize("key", T2V)
@pytest.mark.parametrize("batch", [1, 2])
def test_all_full_resolution_equals_native(env, wans, key, batch):
    w = _wan(env, wans, key)
    layout = env.pack.fov_core.TokenLayout(torch.zeros(3, 4, 6, dtype=torch.long))
    x = torch.randn(batch, w.channels, 3, 8, 12)
    assert_close(w.foveated(x, layout), w.native(x), ATOL)


@pytest.mark.parametrize("key", T2V)
def test_all_half_resolution_equals_native_half_resolution(env, wans, key):
    w = _wan(env, wans, key)
    layout = env.pack.fov_core.TokenLayout(torch.ones(3, 4, 6, dtype=torch.long))
    canvas = _canvas(env, layout, w.channels, batch=2)
    assert_close(w.foveated(canvas, layout), upsample(w.native(canvas[..., ::2, ::2]), 1), ATOL)


def test_per_frame_timesteps_reach_every_token_of_their_frame(env, wans):
    """Wan 2.2 5B image-to-video: the first latent frame is clean (timestep 0), so the
    model gets one timestep per latent frame; foveated, each token gets its frame's."""
    w = _wan(env, wans, "wan22_ti2v_5b")
    t = torch.tensor([[0.0, 700.0, 700.0]])
    full = env.pack.fov_core.TokenLayout(torch.zeros(3, 4, 6, dtype=torch.long))
    x = torch.randn(1, w.channels, 3, 8, 12)
    assert_close(w.foveated(x, full, timestep=t), w.native(x, timestep=t), ATOL)
    low = env.pack.fov_core.TokenLayout(torch.ones(3, 4, 6, dtype=torch.long))
    canvas = _canvas(env, low, w.channels)
    assert_close(w.foveated(canvas, low, timestep=t), upsample(w.native(canvas[..., ::2, ::2], timestep=t), 1), ATOL)
    assert not torch.allclose(w.native(x, timestep=t), w.native(x))


def test_a_frame_timestep_reaches_exactly_the_tokens_of_its_frame(env, wans):
    """With a moving fovea the packed order is not frame-major: token i must get the
    timestep of its own latent frame layout.t[i]."""
    w = _wan(env, wans, "wan22_ti2v_5b")
    fc = env.pack.fov_core
    layout = fc.TokenLayout(fc.rasterize(_moving_fovea(env, 9), fc.TokenGrid(3, 8, 8, frame_stride=4)))
    assert not torch.equal(layout.t, layout.t.sort().values)
    adapter = w.adapter_cls(w.mp)
    x = torch.randn(1, w.channels, 3, 16, 16)
    args, _ = w.call_args(x, timestep=torch.tensor([[0.0, 300.0, 700.0]]))
    call = adapter.prepare(w.dm, layout, fc.LatentPacking(layout, 2), x, args[2], {}, {}, None)
    seen = []

    def executor(strip, t, *rest, **kw):
        seen.append(t)
        return torch.zeros(strip.shape[0], w.channels, *strip.shape[2:])

    env.pack.nodes.foveation.diffusion_model_wrapper(executor, *args, foveation=call)
    assert torch.equal(seen[0][0], torch.tensor([0.0, 300.0, 700.0])[layout.t])


def test_image_conditioning_tokens_are_never_foveated(env, wans):
    """I2V with CLIP-vision tokens: all full == native, all 1/2 == native at 1/2."""
    w = _wan(env, wans, "wan21_i2v")
    fc = env.pack.fov_core
    full = fc.TokenLayout(torch.zeros(2, 4, 6, dtype=torch.long))
    x = torch.randn(1, 36, 2, 8, 12)
    assert_close(w.foveated(x, full, clip=True), w.native(x, clip=True), ATOL)
    low = fc.TokenLayout(torch.ones(2, 4, 6, dtype=torch.long))
    canvas = _canvas(env, low, 36)
    assert_close(w.foveated(canvas, low, clip=True), upsample(w.native(canvas[..., ::2, ::2], clip=True), 1), ATOL)


def test_concatenated_conditioning_reads_its_low_resolution_version(env, wans):
    """Through BaseModel.apply_model: the I2V mask and image-latent channels of a 1/2
    token are their 2x2 average, so all 1/2 == native at 1/2 on the pooled conditioning."""
    w = _wan(env, wans, "wan22_i2v_14b_high")  # in 36 = 16 noise + 20 concatenated, no CLIP
    fc = env.pack.fov_core
    fovea = fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),))
    low = fc.TokenLayout(torch.ones(2, 4, 6, dtype=torch.long))
    patch = env.pack.nodes.foveation.FoveationPatch(fovea, w.adapter_cls)
    patch.layout_for = lambda grid, stage=-1: low  # this test's explicit all-1/2 layout
    patched = patch.install(w.mp)
    x = _canvas(env, low, 16)
    concat = torch.randn(1, 20, 2, 8, 12)
    g = torch.Generator().manual_seed(3)
    context = torch.randn(1, TXT, w.info["text_dim"], generator=g)
    sigma = torch.full((1,), 0.7)
    with torch.no_grad():
        fov = w.mp.model.apply_model(x, sigma, concat, context, None, {"wrappers": patched.wrappers})
        pooled = F.avg_pool3d(concat, (1, 2, 2))
        nat = w.mp.model.apply_model(x[..., ::2, ::2], sigma, pooled, context, None, {})
    assert_close(fov, upsample(nat, 1), ATOL)


def _native_ids(w, monkeypatch, x):
    seen = []
    embed = w.dm.rope_embedder.forward
    monkeypatch.setattr(w.dm.rope_embedder, "forward", lambda ids: seen.append(ids) or embed(ids))
    w.native(x)
    monkeypatch.undo()
    (ids,) = seen
    return ids[0].double()


@pytest.mark.parametrize("policy", ["half", "rings"])
def test_fast_path_equals_dense_reference_with_a_moving_fovea(env, wans, monkeypatch, policy):
    import comfy.ldm.flux.math as fm

    w = _wan(env, wans, "wan21_t2v")
    fc = env.pack.fov_core
    pol = fc.LevelPolicy.half() if policy == "half" else fc.LevelPolicy.rings(1.6)
    fovea = fc.Fovea((), pol, path=_moving_fovea(env, 9).path)
    layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(3, 8, 8, frame_stride=4)))
    assert not torch.equal(layout.level_map[0], layout.level_map[2])  # the fovea moves
    canvas = _canvas(env, layout, 16, batch=2)
    fast = w.foveated(canvas, layout)
    native = _native_ids(w, monkeypatch, canvas)  # the video's (t, y, x) ids in raster order
    ids = native[layout.flat_index]
    d = w.dm.dim // w.dm.num_heads

    def factory(state, previous=None):
        def override(func, q, k, v, heads, *args, **kwargs):
            if state.plan is None or q.shape[1] != state.plan.seq_len or k.shape[1] != state.plan.seq_len:
                return func(q, k, v, heads, *args, **kwargs)
            B, N = q.shape[:2]
            q, k, v = (t.view(B, N, heads, d).transpose(1, 2) for t in (q, k, v))
            rope = lambda x, i: fm._apply_rope1(x, w.dm.rope_embedder(i[None].float()))  # noqa: E731
            q, k = rope(q, -ids), rope(k, -ids)  # undo the block's own rotation
            out = dense_reference_attention(q, k, v, ids, layout.level, (1, 2), rope)
            return out.transpose(1, 2).reshape(B, N, heads * d)

        return override

    monkeypatch.setattr(env.pack.nodes.adapters.base, "make_attention_override", factory)
    assert_close(fast, w.foveated(canvas, layout), ATOL)


def test_static_fovea_equals_a_one_keyframe_gaze_path(env, wans):
    w = _wan(env, wans, "wan21_t2v")
    fc = env.pack.fov_core
    grid = fc.TokenGrid(3, 8, 8, frame_stride=4)
    static = fc.Fovea((fc.Gaze(0.4, 0.55, 0.3),))
    path = fc.Fovea((), path=fc.GazePath((fc.GazeKeyframe(0, 0.4, 0.55, 0.3),), grid.video_frames))
    a, b = fc.TokenLayout(fc.rasterize(static, grid)), fc.TokenLayout(fc.rasterize(path, grid))
    assert torch.equal(a.level_map, b.level_map) and len(a.levels) == 2
    canvas = _canvas(env, a, 16)
    assert torch.equal(w.foveated(canvas, a), w.foveated(canvas, b))


def test_strip_length_never_equals_a_cross_attention_length(env, wans):
    """The override tells self- from cross-attention by key length: a strip as long as the
    text is padded by one token, and the result is unchanged."""
    w = _wan(env, wans, "wan21_t2v")
    fc = env.pack.fov_core
    layout = fc.TokenLayout(fc.rasterize(fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),)), fc.TokenGrid(2, 6, 6)))
    adapter = w.adapter_cls(w.mp)
    ctx = torch.zeros(1, layout.n_tokens, 4096)
    assert adapter.strip_length(layout, None, ctx, {}) == layout.n_tokens + 1
    assert adapter.strip_length(layout, None, torch.zeros(1, TXT, 4096), {}) is None
    canvas = _canvas(env, layout, 16)
    assert_close(w.foveated(canvas, layout, image_rows=layout.n_tokens + 5), w.foveated(canvas, layout), ATOL)
