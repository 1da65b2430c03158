"""DESIGN.md invariants on ComfyUI's real model classes (tiny random checkpoints in the
real formats, loaded by ComfyUI's own loader), fp32 on CPU."""
import pytest
import torch

from assertions import assert_close, upsample
from reference_dit import dense_reference_attention

pytestmark = pytest.mark.comfyui
ATOL = 3e-5


def _close(a, b, atol=ATOL):
    assert_close(a, b, atol)


class Family:
    """A loaded tiny model of one family plus how to call its diffusion model."""

    def __init__(self, env, key, dtype=torch.float32):
        from comfy import sd as comfy_sd

        self.env, self.key, self.dtype = env, key, dtype
        info = env.infos[key]
        opts = {"dtype": dtype}
        if key == "chroma":  # ComfyUI hard-codes Chroma's approximator width; the patch reads it
            with env.tiny_models.chroma_detection_patch():
                self.mp = comfy_sd.load_diffusion_model(info["path"], model_options=opts)
        else:
            self.mp = comfy_sd.load_diffusion_model(info["path"], model_options=opts)
        self.dm = self.mp.model.diffusion_model
        self.info = info
        self.ctx_dim = info["context_in_dim"]
        # what the diffusion model receives: Fill models get the masked image and mask concatenated
        self.channels = 16 if key == "chroma" else info["in_channels"]
        self.patch = info["patch_size"] if key != "chroma" else 2
        pack = env.pack
        self.pack = pack
        self.adapter_cls = pack.nodes.adapters.adapter_for(self.mp)

    def call_args(self, x, *, txt_len=7, seed=0, refs=None, transformer_options=None, ref_method=None):
        g = torch.Generator().manual_seed(seed)
        B = x.shape[0]
        context = torch.randn(B, txt_len, self.ctx_dim, generator=g).to(self.dtype)
        x = x.to(self.dtype)
        t = torch.full((B,), 0.7)
        topts = transformer_options if transformer_options is not None else {}
        kwargs = {}
        if self.key == "chroma":
            args = (x, t, context, torch.zeros(B), None, topts)
        else:
            y = torch.randn(B, self.info["vec_in_dim"], generator=g).to(self.dtype) if self.info["vec_in_dim"] else None
            guidance = torch.full((B,), 3.5) if self.info["guidance_embed"] else None
            args = (x, t, context, y, guidance, refs, None, topts)
            if ref_method:
                kwargs["ref_latents_method"] = ref_method
        return args, kwargs

    def native(self, x, **kw):
        args, kwargs = self.call_args(x, **kw)
        with torch.no_grad():
            return self.dm(*args, **kwargs)

    def foveated(self, x, layout, image_rows=None, **kw):
        """What the patch does around the adapter (prepare, pack, run, unpack), on an explicit
        layout (also for all-level-0 / all-level-k maps); image_rows pads the strip as under
        torch.compile."""
        fc = self.pack.fov_core
        adapter = self.adapter_cls(self.mp)
        packing = fc.LatentPacking(layout, self.patch)
        args, kwargs = self.call_args(x, **kw)
        topts = args[-1]
        refs = {"ref_latents": args[5]} if self.key != "chroma" else {}
        with torch.no_grad():
            call = adapter.prepare(self.dm, layout, packing, args[0], args[2], topts, refs, image_rows)
            kwargs = dict(kwargs, foveation=call)
            return self.pack.nodes.foveation.diffusion_model_wrapper(lambda *a, **k: self.dm._forward(*a, **k),
                                                                     *args, **kwargs)

    def apply_model(self, x, transformer_options=None):
        """The denoised prediction through BaseModel.apply_model (and its wrappers), sigma 0.7;
        for Fill models the channels after the first 16 are the concatenated conditioning."""
        args, _ = self.call_args(x, transformer_options=transformer_options)
        x, c_concat = (x[:, :16], x[:, 16:]) if self.key == "flux1_fill" else (x, None)
        extra = {"guidance": args[3]} if self.key == "chroma" else {"y": args[3], "guidance": args[4]}
        sigma = torch.full((x.shape[0],), 0.7)
        with torch.no_grad():
            return self.mp.model.apply_model(x, sigma, c_concat, args[2], None, args[-1], **extra)

    def patched(self, fovea):
        return self.pack.nodes.foveation.FoveationPatch(fovea, self.adapter_cls).install(self.mp)


FAMILIES = ["flux1_dev", "flux1_schnell", "flux1_fill", "flux2_klein", "chroma"]


@pytest.fixture(scope="module")
def families(env):
    return {k: Family(env, k) for k in FAMILIES}


def _layout(env, level_map):
    return env.pack.fov_core.TokenLayout(level_map)


def _canvas(env, fam, layout, batch=1, seed=0):
    packing = env.pack.fov_core.LatentPacking(layout, fam.patch)
    T, Hl, Wl = packing.latent_shape
    return packing.noise((batch, fam.channels, Hl, Wl), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("key", FAMILIES)
def test_adapter_is_chosen_by_model_class(families, key):
    fam = families[key]
    expected = "ChromaAdapter" if key == "chroma" else "FluxAdapter"
    assert fam.adapter_cls.__name__ == expected


@pytest.mark.parametrize("key", FAMILIES)
@pytest.mark.parametrize("batch", [1, 2])
def test_all_full_resolution_equals_native(env, families, key, batch):
    fam = families[key]
    layout = _layout(env, torch.zeros(1, 6, 10, dtype=torch.long))
    x = torch.randn(batch, fam.channels, 6 * fam.patch, 10 * fam.patch)
    _close(fam.foveated(x, layout), fam.native(x))


@pytest.mark.parametrize("key", FAMILIES)
@pytest.mark.parametrize("k", [1, 2])
def test_all_low_resolution_equals_native_low_resolution(env, families, key, k):
    fam = families[key]
    layout = _layout(env, torch.full((1, 8, 12), k, dtype=torch.long))
    canvas = _canvas(env, fam, layout, batch=2)
    low = canvas[..., :: 2**k, :: 2**k]
    _close(fam.foveated(canvas, layout), upsample(fam.native(low), k))


@pytest.mark.parametrize("key", ["flux2_klein", "chroma"])
def test_padded_strip_with_one_level_equals_native_low_resolution(env, families, key):
    """The strip is padded under torch.compile; with a one-level layout (all 1/2, e.g. a
    Progressive Resolution stage) the padding rows must still be nobody's keys."""
    fam = families[key]
    layout = _layout(env, torch.full((1, 8, 8), 1, dtype=torch.long))
    canvas = _canvas(env, fam, layout)
    low = upsample(fam.native(canvas[..., ::2, ::2]), 1)
    _close(fam.foveated(canvas, layout, image_rows=layout.n_tokens + 5), low)


@pytest.mark.parametrize(
    "key, method",
    [("flux1_dev", m) for m in (None, "index", "uxo")]
    # index_timestep_zero needs FLUX.2's global modulation (native FLUX.1 rejects it too)
    + [("flux2_klein", m) for m in (None, "index", "uxo", "index_timestep_zero")],
)
def test_reference_latents_pass_through(env, families, key, method):
    """Kontext / FLUX.2 edit: reference tokens are never foveated; all-level-k with refs
    equals the native low-resolution forward with the same refs."""
    fam = families[key]
    refs = [torch.randn(1, fam.channels, 4 * fam.patch, 6 * fam.patch)]
    layout = _layout(env, torch.full((1, 8, 8), 1, dtype=torch.long))
    canvas = _canvas(env, fam, layout)
    low = canvas[..., ::2, ::2]
    kw = dict(refs=refs, ref_method=method)
    if method == "uxo":
        # uxo offsets the refs by the target's size: equal to native only for the same target size
        full = _layout(env, torch.zeros(1, 8, 8, dtype=torch.long))
        x = torch.randn(1, fam.channels, 8 * fam.patch, 8 * fam.patch)
        _close(fam.foveated(x, full, **kw), fam.native(x, **kw))
    else:
        _close(fam.foveated(canvas, layout, **kw), upsample(fam.native(low, **kw), 1))


def _native_ids(fam, monkeypatch, x, **kw):
    """The RoPE ids the native forward builds for this call (read off its pe_embedder)."""
    seen = []
    embed = fam.dm.pe_embedder.forward
    monkeypatch.setattr(fam.dm.pe_embedder, "forward", lambda ids: seen.append(ids) or embed(ids))
    fam.native(x, **kw)
    monkeypatch.undo()
    (ids,) = seen
    return ids[0].double()


def _dense_override_factory(env, fam, ids, layout):
    """An attention override computing the dense per-query reference (straight from the
    definition) on q and k with the block's own RoPE undone. ids: the packed sequence's
    full-resolution ids, derived from the native forward's."""
    import comfy.ldm.flux.math as fm

    def factory(state, previous=None):
        def override(func, q, k, v, heads, *args, **kwargs):
            plan = state.plan
            if plan is None or q.shape[2] != plan.seq_len:
                return func(q, k, v, heads, *args, **kwargs)
            levels = torch.full((plan.seq_len,), -1, dtype=torch.long)
            levels[plan.image_start : plan.image_end] = layout.level
            rope = lambda x, i: fm._apply_rope1(x, fam.dm.pe_embedder(i[None].float()))  # noqa: E731
            q, k = rope(q, -ids), rope(k, -ids)  # the inverse rotation
            out = dense_reference_attention(q, k, v, ids, levels, (1, 2), rope)
            B, H, N, D = out.shape
            return out.transpose(1, 2).reshape(B, N, H * D)

        return override

    return factory


@pytest.mark.parametrize("key", FAMILIES)
@pytest.mark.parametrize("policy", ["half", "rings"])
def test_fast_path_equals_dense_reference(env, families, monkeypatch, key, policy):
    fam = families[key]
    fc = env.pack.fov_core
    pol = fc.LevelPolicy.half() if policy == "half" else fc.LevelPolicy.rings(1.6)
    fovea = fc.Fovea((fc.Gaze(0.4, 0.45, 0.25),), pol)
    layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(1, 12, 12)))
    assert len(layout.levels) >= 2
    canvas = _canvas(env, fam, layout, batch=2)
    refs = [torch.randn(2, fam.channels, 2 * fam.patch, 4 * fam.patch)] if key != "chroma" else None
    fast = fam.foveated(canvas, layout, refs=refs)
    native = _native_ids(fam, monkeypatch, canvas, refs=refs)  # [text | image raster | refs]
    n_txt = native.shape[0] - layout.full_tokens - (8 if refs else 0)
    image = native[n_txt : n_txt + layout.full_tokens][layout.flat_index]
    ids = torch.cat((native[:n_txt], image, native[n_txt + layout.full_tokens :]))
    monkeypatch.setattr(env.pack.nodes.adapters.base, "make_attention_override",
                        _dense_override_factory(env, fam, ids, layout))
    dense = fam.foveated(canvas, layout, refs=refs)
    _close(fast, dense)
    assert fam.pack.fov_core.LatentPacking(layout, fam.patch).is_canonical(fast)


@pytest.mark.parametrize("key", ["flux1_dev", "flux2_klein", "chroma"])
def test_bf16_invariants(env, families, key):
    """In bf16: all-full and all-low-resolution run exactly the native computations, so they
    are bit-identical to native. A mixed layout adds one bf16 rounding of q and k per
    coarser group (the second rotation) to what native bf16 already rounds; its error
    against the same foveated forward in fp32 stays within 2x native's own bf16 error (and
    the native error is a few bf16 ulps, so this is no loose bound)."""
    fam32, fam16 = families[key], Family(env, key, torch.bfloat16)
    fc = env.pack.fov_core
    x = torch.randn(1, fam16.channels, 8 * fam16.patch, 12 * fam16.patch)
    assert torch.equal(fam16.foveated(x, _layout(env, torch.zeros(1, 8, 12, dtype=torch.long))), fam16.native(x))
    low_layout = _layout(env, torch.full((1, 8, 12), 1, dtype=torch.long))
    canvas = _canvas(env, fam16, low_layout)
    assert torch.equal(fam16.foveated(canvas, low_layout), upsample(fam16.native(canvas[..., ::2, ::2]), 1))
    layout = fc.TokenLayout(fc.rasterize(fc.Fovea((fc.Gaze(0.4, 0.45, 0.25),), fc.LevelPolicy.rings(1.6)),
                                         fc.TokenGrid(1, 12, 12)))
    canvas = _canvas(env, fam16, layout)
    fov_err = (fam16.foveated(canvas, layout).float() - fam32.foveated(canvas, layout)).abs().max()
    nat_err = (fam16.native(canvas).float() - fam32.native(canvas)).abs().max()
    assert 0 < fov_err <= 2 * nat_err, (float(fov_err), float(nat_err))


@pytest.mark.parametrize("key", FAMILIES)
def test_patched_model_forward_and_no_trace(env, families, key):
    """Through the real wrappers (BaseModel.apply_model): foveated output is a canvas; the
    original model and its options are untouched, so native output afterwards is
    bit-identical."""
    fam = families[key]
    fc = env.pack.fov_core
    fovea = fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),), fc.LevelPolicy.quarter())
    layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(1, 12, 12)))
    x = _canvas(env, fam, layout)  # the sampler's state is a canvas
    before = fam.apply_model(x)
    opts_before = repr((fam.mp.model_options, fam.mp.wrappers))
    patched = fam.patched(fovea)
    # what sampling does (sampler_helpers.prepare_model_patcher): the patcher's wrappers go
    # into transformer_options
    out = fam.apply_model(x, transformer_options={"wrappers": patched.wrappers})
    assert fc.LatentPacking(layout, fam.patch).is_canonical(out)
    assert not torch.equal(out, before)
    assert repr((fam.mp.model_options, fam.mp.wrappers)) == opts_before
    assert torch.equal(fam.apply_model(x), before)


def test_reference_kv_cache_matches_native_low_resolution(env, families):
    """Core FluxKVCache drops reference tokens from the queries after its first step and
    feeds cached reference keys/values; all-level-1 foveated == native at 1/2 still holds."""
    from comfy_extras.nodes_flux import FluxKVCache

    fam = families["flux2_klein"]
    refs = [torch.randn(1, fam.channels, 4, 6)]
    layout = _layout(env, torch.full((1, 8, 8), 1, dtype=torch.long))
    canvas = _canvas(env, fam, layout)
    low = canvas[..., ::2, ::2]

    def two_steps(call):
        topts = FluxKVCache.execute(fam.mp).result[0].model_options["transformer_options"]
        topts = {"patches": {k: list(v) for k, v in topts["patches"].items()}}
        return [call(topts) for _ in range(2)]

    kw = dict(refs=refs, ref_method="index_timestep_zero")
    native = two_steps(lambda topts: fam.native(low, transformer_options=topts, **kw))
    fov = two_steps(lambda topts: fam.foveated(canvas, layout, transformer_options=topts, **kw))
    for a, b in zip(fov, native):
        _close(a, upsample(b, 1))


def test_attention_override_slices_masks_and_rejects_full_resolution_masks(env):
    import comfy.ldm.modules.attention as attn

    fc = env.pack.fov_core
    fov = env.pack.nodes.foveation
    layout = fc.TokenLayout(fc.rasterize(fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),)), fc.TokenGrid(1, 8, 8)))
    state = fov.CallState(layout)
    state.plan = fc.SequencePlan.of(layout, n_prefix=5)
    state.rotate = lambda q, k, gi: (q, k)  # frames do not matter here
    override = fov.make_attention_override(state)
    N = state.plan.seq_len
    q, k, v = (torch.randn(1, 2, N, 16, generator=torch.Generator().manual_seed(i)) for i in range(3))
    func = attn.attention_pytorch.__wrapped__
    plain = override(func, q, k, v, 2, skip_reshape=True)
    zero_mask = torch.zeros(1, 1, N, N)
    _close(override(func, q, k, v, 2, skip_reshape=True, mask=zero_mask), plain, 1e-6)
    # a mask that hides the text keys from every query
    text_off = torch.zeros(1, 1, N, N)
    text_off[..., :5] = float("-inf")
    masked = override(func, q, k, v, 2, skip_reshape=True, mask=text_off)
    assert not torch.allclose(masked, plain)
    with pytest.raises(ValueError, match="full-resolution sequence"):
        override(func, q, k, v, 2, skip_reshape=True, mask=torch.zeros(1, 1, N + 3, N + 3))
