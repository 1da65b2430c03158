"""DESIGN.md invariants on ComfyUI's real HunyuanVideo class (tiny random checkpoints in the
HunyuanVideo 1.0 T2V / I2V and 1.5 formats, loaded by ComfyUI's own loader), fp32 on CPU:
all full resolution == native; all 1/2^k == native on the low-resolution video; the fast
path == the dense per-query reference with a moving fovea; a static fovea == the same
fovea as a one-keyframe gaze path; batch composition and caching change nothing; no trace
on the model; text, byT5 glyph, vision and reference tokens never foveated; concatenated
image conditioning read at low resolution; clear errors."""
import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from assertions import assert_close, upsample
from reference_dit import dense_reference_attention

pytestmark = pytest.mark.comfyui
ATOL = 3e-5
TXT = 7  # text tokens of the test conditioning
T2V = ["hunyuan_video_t2v", "hunyuan_video15_t2v"]


class Hunyuan:
    """A loaded tiny HunyuanVideo model and how to call its diffusion model."""

    def __init__(self, env, key):
        from comfy import sd as comfy_sd

        self.env, self.key = env, key
        self.info = env.infos[key]
        self.mp = comfy_sd.load_diffusion_model(self.info["path"])
        self.dm = self.mp.model.diffusion_model
        self.channels = self.info["in_channels"]  # what the diffusion model receives (noise + concat)
        self.patch = self.info["patch"]
        self.pack = env.pack
        self.adapter_cls = env.pack.nodes.adapters.adapter_for(self.mp)

    def call_args(self, x, *, seed=0, byt5=0, clip=0, ref=None, mask=None):
        """HunyuanVideo.forward's positional arguments (the DIFFUSION_MODEL executor's)."""
        g = torch.Generator().manual_seed(seed)
        B, info = x.shape[0], self.info
        context = torch.randn(B, TXT, info["context_dim"], generator=g)
        y = torch.randn(B, info["vec_dim"], generator=g) if info["vec_dim"] else None
        guidance = torch.full((B,), 6.0) if info["guidance_embed"] else None
        txt_byt5 = torch.randn(B, byt5, 1472, generator=g) if byt5 else None
        clip_fea = torch.randn(B, clip, info["vision_dim"], generator=g) if clip else None
        return (x, torch.full((B,), 700.0), context, y, txt_byt5, clip_fea, guidance, mask, None, ref, False, None, {})

    def native(self, x, **kw):
        with torch.no_grad():
            return self.dm(*self.call_args(x, **kw))

    def foveated(self, x, layout, image_rows=None, args=None, **kw):
        """args: explicit call_args (x replaced by `x`), else call_args(x, **kw)."""
        fc = self.pack.fov_core
        adapter = self.adapter_cls(self.mp)
        packing = fc.LatentPacking(layout, adapter.patch_size)
        args = self.call_args(x, **kw) if args is None else (x,) + tuple(args[1:])
        extra = {k: v for k, v in (("txt_byt5", args[4]), ("clip_fea", args[5]), ("ref_latent", args[9]))
                 if v is not None}
        with torch.no_grad():
            call = adapter.prepare(self.dm, layout, packing, x, args[2], {}, extra, image_rows)
            return self.pack.nodes.foveation.diffusion_model_wrapper(
                lambda *a, **k: self.dm._forward(*a, **k), *args, foveation=call)


@pytest.fixture(scope="module")
def models(env):
    return {}


def _model(env, models, key) -> Hunyuan:
    if key not in models:
        models[key] = Hunyuan(env, key)
    return models[key]


def _canvas(env, m, layout, batch=1, seed=0, channels=None):
    packing = env.pack.fov_core.LatentPacking(layout, m.patch)
    T, Hl, Wl = packing.latent_shape
    return packing.noise((batch, channels or m.channels, T, Hl, Wl), generator=torch.Generator().manual_seed(seed))


def _full(env, T, H, W, level=0):
    return env.pack.fov_core.TokenLayout(torch.full((T, H, W), level, dtype=torch.long))


def _moving_fovea(env, frames, policy=None):
    fc = env.pack.fov_core
    path = fc.GazePath((fc.GazeKeyframe(0, 0.25, 0.3, 0.2), fc.GazeKeyframe(frames - 1, 0.7, 0.6, 0.3)), frames)
    return fc.Fovea((), policy or fc.LevelPolicy.half(), path=path)


@pytest.mark.parametrize("key", T2V + ["hunyuan_video_i2v"])
def test_adapter_and_token_grid(env, models, key):
    m = _model(env, models, key)
    assert m.adapter_cls.__name__ == "HunyuanVideoAdapter"
    adapter = m.adapter_cls(m.mp)
    assert adapter.name == ("HunyuanVideo 1.5" if "15" in key else "HunyuanVideo")
    p = m.patch
    grid, patch = adapter.token_grid((1, m.info["latent_channels"], 3, 4 * p, 6 * p))
    assert (grid.frames, grid.height, grid.width, patch) == (3, 4, 6, p)
    assert grid.token_px == 16 and grid.video_frames == 9  # 1 + 4 (3 - 1)
    with pytest.raises(ValueError, match="generates videos"):
        adapter.token_grid((1, m.info["latent_channels"], 8, 12))


@pytest.mark.parametrize("key", T2V)
@pytest.mark.parametrize("batch", [1, 2])
def test_all_full_resolution_equals_native(env, models, key, batch):
    m = _model(env, models, key)
    extra = {"byt5": 5} if "15" in key else {}
    x = torch.randn(batch, m.channels, 3, 4 * m.patch, 6 * m.patch)
    assert_close(m.foveated(x, _full(env, 3, 4, 6), **extra), m.native(x, **extra), ATOL)


@pytest.mark.parametrize("key, k", [("hunyuan_video_t2v", 1), ("hunyuan_video_t2v", 2), ("hunyuan_video15_t2v", 1),
                                    ("hunyuan_video15_t2v", 2)])
def test_all_low_resolution_equals_native_low_resolution(env, models, key, k):
    m = _model(env, models, key)
    layout = _full(env, 2, 8, 8, level=k)
    canvas = _canvas(env, m, layout, batch=2)
    s = 2**k
    assert_close(m.foveated(canvas, layout), upsample(m.native(canvas[..., ::s, ::s]), k), ATOL)


def test_glyph_and_vision_tokens_are_never_foveated(env, models):
    """HunyuanVideo 1.5 I2V: byT5 glyph tokens and SigLIP vision tokens join the text in the
    prefix: all full == native, all 1/2 == native at 1/2 with them."""
    m = _model(env, models, "hunyuan_video15_t2v")
    kw = dict(byt5=4, clip=6)
    x = torch.randn(1, m.channels, 2, 4, 6)
    assert_close(m.foveated(x, _full(env, 2, 4, 6), **kw), m.native(x, **kw), ATOL)
    low = _full(env, 2, 4, 6, level=1)
    canvas = _canvas(env, m, low)
    assert_close(m.foveated(canvas, low, **kw), upsample(m.native(canvas[..., ::2, ::2], **kw), 1), ATOL)
    assert not torch.allclose(m.native(x, **kw), m.native(x))  # they do reach the model


def test_reference_latent_is_never_foveated(env, models):
    """HunyuanImageToVideo "custom": the reference latent's tokens sit before the image with
    their native ids (frame -1, x past the image): all 1/2 == native at 1/2 with it."""
    m = _model(env, models, "hunyuan_video_t2v")
    ref = torch.randn(1, 16, 1, 8, 8)
    full = _full(env, 2, 4, 4)
    x = torch.randn(1, 16, 2, 8, 8)
    assert_close(m.foveated(x, full, ref=ref), m.native(x, ref=ref), ATOL)
    low = _full(env, 2, 4, 4, level=1)
    canvas = _canvas(env, m, low)
    assert_close(m.foveated(canvas, low, ref=ref), upsample(m.native(canvas[..., ::2, ::2], ref=ref), 1), ATOL)


def test_text_attention_mask_is_kept(env, models):
    """A padded text (attention_mask with zeros): the mask's columns follow the keys of
    every attention group."""
    m = _model(env, models, "hunyuan_video_t2v")
    mask = torch.tensor([[1] * (TXT - 3) + [0] * 3])
    x = torch.randn(1, 16, 2, 8, 8)
    assert_close(m.foveated(x, _full(env, 2, 4, 4), mask=mask), m.native(x, mask=mask), ATOL)
    low = _full(env, 2, 4, 4, level=1)
    canvas = _canvas(env, m, low)
    assert_close(m.foveated(canvas, low, mask=mask), upsample(m.native(canvas[..., ::2, ::2], mask=mask), 1), ATOL)
    assert not torch.allclose(m.native(x, mask=mask), m.native(x))


def test_concatenated_image_conditioning_reads_its_low_resolution_version(env, models):
    """HunyuanVideo 1.0 I2V "v1 (concat)" through BaseModel.apply_model: the image latent and
    mask channels of a 1/2 token are their 2x2 average."""
    m = _model(env, models, "hunyuan_video_i2v")  # in 33 = 16 noise + 17 concatenated
    fc = env.pack.fov_core
    low = _full(env, 2, 4, 6, level=1)
    patch = env.pack.nodes.foveation.FoveationPatch(fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),)), m.adapter_cls)
    patch.layout_for = lambda grid, stage=-1: low  # this test's explicit all-1/2 layout
    patched = patch.install(m.mp)
    x = _canvas(env, m, low, channels=16)
    concat = torch.randn(1, 17, 2, 8, 12)
    g = torch.Generator().manual_seed(3)
    context = torch.randn(1, TXT, m.info["context_dim"], generator=g)
    extra = dict(y=torch.randn(1, 768, generator=g), guidance=torch.full((1,), 6.0))
    sigma = torch.full((1,), 0.7)
    with torch.no_grad():
        fov = m.mp.model.apply_model(x, sigma, concat, context, None, {"wrappers": patched.wrappers}, **extra)
        nat = m.mp.model.apply_model(x[..., ::2, ::2], sigma, F.avg_pool3d(concat, (1, 2, 2)), context, None, {},
                                     **extra)
    assert_close(fov, upsample(nat, 1), ATOL)


def _native_ids(m, monkeypatch, x, **kw):
    seen = []
    embed = m.dm.pe_embedder.forward
    monkeypatch.setattr(m.dm.pe_embedder, "forward", lambda ids: seen.append(ids) or embed(ids))
    m.native(x, **kw)
    monkeypatch.undo()
    (ids,) = seen
    return ids[0].double()  # [text | image in raster (t, y, x) order]


@pytest.mark.parametrize("key, policy, masked", [("hunyuan_video_t2v", "half", False),
                                                 ("hunyuan_video_t2v", "rings", False),
                                                 ("hunyuan_video_t2v", "half", True),
                                                 ("hunyuan_video15_t2v", "half", False)])
def test_fast_path_equals_dense_reference_with_a_moving_fovea(env, models, monkeypatch, key, policy, masked):
    """masked: a padded text (attention_mask with zeros), the mask's key columns follow
    every attention group's keys."""
    import comfy.ldm.flux.math as fm

    m = _model(env, models, key)
    fc = env.pack.fov_core
    pol = fc.LevelPolicy.half() if policy == "half" else fc.LevelPolicy.rings(1.6)
    layout = fc.TokenLayout(fc.rasterize(_moving_fovea(env, 9, pol), fc.TokenGrid(3, 8, 8, frame_stride=4)))
    assert not torch.equal(layout.level_map[0], layout.level_map[2])  # the fovea moves
    assert len(layout.levels) == (3 if policy == "rings" else 2)
    kw = {"byt5": 3} if "15" in key else {}
    if masked:
        kw["mask"] = torch.tensor([[1] * (TXT - 3) + [0] * 3])
    canvas = _canvas(env, m, layout, batch=1 if masked else 2)  # ComfyUI's text mask is built for batch 1
    fast = m.foveated(canvas, layout, **kw)
    native = _native_ids(m, monkeypatch, canvas, **kw)
    n_txt = native.shape[0] - layout.full_tokens
    ids = torch.cat((native[:n_txt], native[n_txt:][layout.flat_index]))  # the packed sequence's ids

    def factory(state, previous=None):
        def override(func, q, k, v, heads, *args, **kwargs):  # q, k, v: (B, heads, N, D)
            plan = state.plan
            if plan is None or q.shape[2] != plan.seq_len:
                return func(q, k, v, heads, *args, **kwargs)
            levels = torch.full((plan.seq_len,), -1, dtype=torch.long)
            levels[plan.image_start : plan.image_end] = layout.level
            rope = lambda x, i: fm._apply_rope1(x, m.dm.pe_embedder(i[None].float()))  # noqa: E731
            q, k = rope(q, -ids), rope(k, -ids)  # undo the block's own rotation
            mask = kwargs.get("mask")
            bias = None if mask is None else mask.reshape(-1)  # (1, 1, N): one additive logit per key
            out = dense_reference_attention(q, k, v, ids, levels, (1, 2), rope, key_bias=bias)
            B, H, N, D = out.shape
            return out.transpose(1, 2).reshape(B, N, H * D)

        return override

    monkeypatch.setattr(env.pack.nodes.adapters.base, "make_attention_override", factory)
    assert_close(fast, m.foveated(canvas, layout, **kw), ATOL)
    if masked:
        kw.pop("mask")
        assert not torch.allclose(fast, m.foveated(canvas, layout, **kw), atol=1e-3)  # the mask matters


@pytest.mark.parametrize("key", T2V)
def test_batch_composition_and_caching_change_nothing(env, models, key):
    """Invariant 4: cond and uncond in one batch == each alone (a batch of 2 with its own
    text each), and a second call on the cached layout tables is bit-identical."""
    m = _model(env, models, key)
    fc = env.pack.fov_core
    layout = fc.TokenLayout(fc.rasterize(_moving_fovea(env, 9), fc.TokenGrid(3, 6, 8, frame_stride=4)))
    assert len(layout.levels) == 2
    canvas = _canvas(env, m, layout, batch=2, seed=4)
    args = m.call_args(canvas, seed=9, **({"byt5": 3} if "15" in key else {}))  # each row its own text, y, glyphs
    rows = lambda i: tuple(a[i : i + 1] if torch.is_tensor(a) else a for a in args)  # noqa: E731
    together = m.foveated(canvas, layout, args=args)
    apart = torch.cat([m.foveated(canvas[i : i + 1], layout, args=rows(i)) for i in range(2)])
    assert_close(together, apart, ATOL)
    assert not torch.allclose(together[0], together[1], atol=1e-3)
    assert torch.equal(m.foveated(canvas, layout, args=args), together)


@pytest.mark.parametrize("key", T2V)
def test_patched_model_forward_and_no_trace(env, models, key):
    """Invariant 5 through the real wrappers (BaseModel.apply_model, what sampling calls):
    the foveated output is a canvas; the model and its options are untouched, so the native
    output afterwards is bit-identical."""
    m = _model(env, models, key)
    fc = env.pack.fov_core
    fovea = _moving_fovea(env, 9)
    layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(3, 6, 8, token_px=16, frame_stride=4)))
    latent_channels = m.info["latent_channels"]
    x = _canvas(env, m, layout, channels=latent_channels)  # the sampler's state is a canvas
    concat = torch.zeros((1, m.channels - latent_channels) + tuple(x.shape[2:])) if m.channels > latent_channels \
        else None  # 1.5 T2V: the zero image latent and mask of model_base.HunyuanVideo15.concat_cond
    g = torch.Generator().manual_seed(3)
    context = torch.randn(1, TXT, m.info["context_dim"], generator=g)
    extra = {"y": torch.randn(1, m.info["vec_dim"], generator=g)} if m.info["vec_dim"] else {}
    if m.info["guidance_embed"]:
        extra["guidance"] = torch.full((1,), 6.0)
    sigma = torch.full((1,), 0.7)

    def apply(topts):
        with torch.no_grad():
            return m.mp.model.apply_model(x, sigma, concat, context, None, topts, **extra)

    before = apply({})
    opts_before = repr((m.mp.model_options, m.mp.wrappers))
    patched = env.pack.nodes.foveation.FoveationPatch(fovea, m.adapter_cls).install(m.mp)
    out = apply({"wrappers": patched.wrappers})
    assert fc.LatentPacking(layout, m.patch).is_canonical(out)
    assert not torch.equal(out, before)
    assert repr((m.mp.model_options, m.mp.wrappers)) == opts_before
    assert torch.equal(apply({}), before)


def test_static_fovea_equals_a_one_keyframe_gaze_path(env, models):
    m = _model(env, models, "hunyuan_video15_t2v")
    fc = env.pack.fov_core
    grid = fc.TokenGrid(3, 8, 8, frame_stride=4)
    static = fc.Fovea((fc.Gaze(0.4, 0.55, 0.3),))
    path = fc.Fovea((), path=fc.GazePath((fc.GazeKeyframe(0, 0.4, 0.55, 0.3),), grid.video_frames))
    a, b = fc.TokenLayout(fc.rasterize(static, grid)), fc.TokenLayout(fc.rasterize(path, grid))
    assert torch.equal(a.level_map, b.level_map) and len(a.levels) == 2
    canvas = _canvas(env, m, a)
    assert torch.equal(m.foveated(canvas, a), m.foveated(canvas, b))


def test_a_padded_strip_changes_nothing(env, models):
    """Under torch.compile the strip is padded to a fixed length: the padding rows are
    computed and dropped."""
    m = _model(env, models, "hunyuan_video_t2v")
    fc = env.pack.fov_core
    layout = fc.TokenLayout(fc.rasterize(fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),)), fc.TokenGrid(2, 6, 6)))
    canvas = _canvas(env, m, layout)
    assert_close(m.foveated(canvas, layout, image_rows=layout.n_tokens + 5), m.foveated(canvas, layout), ATOL)


def test_unsupported_inputs_are_clear_errors(env, models):
    m = _model(env, models, "hunyuan_video_t2v")
    fc = env.pack.fov_core
    adapter = m.adapter_cls(m.mp)
    layout = _full(env, 2, 4, 4, level=1)
    x = torch.randn(1, 16, 2, 8, 8)
    with pytest.raises(ValueError, match=r"v2 \(replace\).*guidance_type 'v1 \(concat\)'"):
        adapter.prepare(m.dm, layout, fc.LatentPacking(layout, 2), x, torch.zeros(1, TXT, 64), {},
                        {"guiding_frame_index": torch.zeros(1)}, None)
    image_model = copy.copy(m.dm)  # the same class with 2-D patches, as HunyuanImage 2.1 loads
    image_model.patch_size = [1, 1]
    fake = SimpleNamespace(model=SimpleNamespace(diffusion_model=image_model, latent_format=m.mp.model.latent_format))
    assert env.pack.nodes.adapters.adapter_for(fake) is m.adapter_cls
    with pytest.raises(ValueError, match="HunyuanImage 2.1 and its refiner are image models"):
        m.adapter_cls(fake)
    import comfy.latent_formats as latent_formats

    refiner = SimpleNamespace(model=SimpleNamespace(diffusion_model=m.dm,  # 3-D patch (1, 1, 1) like 1.5
                                                    latent_format=latent_formats.HunyuanImage21Refiner()))
    with pytest.raises(ValueError, match="HunyuanImage21Refiner latents"):
        m.adapter_cls(refiner)


def test_tencent_and_comfy_key_names_load_the_same_model(env, models, tmp_path):
    """The 1.0 fixture in Tencent's original names loads (through ComfyUI's key conversion)
    to exactly the model the ComfyUI-named file gives."""
    from comfy import sd as comfy_sd

    m = _model(env, models, "hunyuan_video_t2v")
    path = env.tiny_hunyuan.write_hunyuan_video_dit(tmp_path / "tencent.safetensors", naming="tencent", seed=20)
    from safetensors.torch import load_file

    names = set(load_file(path["path"]))
    assert "double_blocks.0.img_attn_qkv.weight" in names and "double_blocks.0.img_attn.qkv.weight" not in names
    other = comfy_sd.load_diffusion_model(path["path"]).model.diffusion_model.state_dict()
    mine = m.dm.state_dict()
    assert set(other) == set(mine) and all(torch.equal(other[k], mine[k]) for k in mine)
