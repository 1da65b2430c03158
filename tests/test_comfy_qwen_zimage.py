"""DESIGN.md invariants on ComfyUI's real Qwen-Image and Z-Image classes (tiny random
checkpoints in the real formats, comfy_fixtures/tiny_qwen_zimage.py, loaded by ComfyUI's
own loader), fp32 on CPU: all full resolution == native; all 1/2^k == native on the
1/2^k latent (grids whose centre moves by half a token included); Qwen-Image-Edit's
references are never foveated; the fast path == a dense per-query reference whose frames
are the ids the native forward builds at each level and which starts from q and k with
the rotation the model actually applied undone; bf16; no trace; the errors."""
import pytest
import torch

from assertions import assert_close, upsample
from reference_dit import dense_reference_attention_frames

pytestmark = pytest.mark.comfyui
ATOL = 3e-5
TXT = 7  # text tokens of the test conditioning
KEYS = ["qwen_image", "qwen_image_edit_2511", "z_image"]


class Model:
    """A loaded tiny Qwen-Image / Z-Image and how to call its diffusion model."""

    def __init__(self, env, key, dtype=torch.float32):
        from comfy import sd as comfy_sd

        self.env, self.key, self.dtype, self.info = env, key, dtype, env.infos[key]
        self.qwen = self.info["family"] == "qwen_image"
        tq = env.tiny_qwen_zimage
        with (tq.qwen_detection_patch() if self.qwen else tq.zimage_detection_patch()):
            self.mp = comfy_sd.load_diffusion_model(self.info["path"], model_options={"dtype": dtype})
        self.dm = self.mp.model.diffusion_model
        self.embedder = self.dm.pe_embedder if self.qwen else self.dm.rope_embedder
        self.pack = env.pack
        self.adapter_cls = env.pack.nodes.adapters.adapter_for(self.mp)

    def shape(self, batch, H, W):
        """A latent of H x W tokens as the diffusion model receives it."""
        return (batch, 16, 1, 2 * H, 2 * W) if self.qwen else (batch, 16, 2 * H, 2 * W)

    def call_args(self, x, *, seed=0, txt=TXT, refs=None, ref_method=None, mask=None, transformer_options=None):
        g = torch.Generator().manual_seed(seed)
        B = x.shape[0]
        context = torch.randn(B, txt, self.info["context_dim"], generator=g).to(self.dtype)
        t = torch.full((B,), 0.7)
        topts = {} if transformer_options is None else transformer_options
        if self.qwen:
            kwargs = {"ref_latents_method": ref_method} if ref_method else {}
            return (x.to(self.dtype), t, context, mask, refs, None, topts), kwargs
        return (x.to(self.dtype), t, context, txt, None), {"transformer_options": topts}

    def native(self, x, **kw):
        args, kwargs = self.call_args(x, **kw)
        with torch.no_grad():
            return self.dm(*args, **kwargs)

    def foveated(self, x, layout, image_rows=None, **kw):
        """What the patch does around the adapter (prepare, pack, run, unpack) on an explicit layout."""
        fc = self.pack.fov_core
        adapter = self.adapter_cls(self.mp)
        args, kwargs = self.call_args(x, **kw)
        topts = args[6] if self.qwen else kwargs["transformer_options"]
        extra = {"ref_latents": args[4]} if self.qwen and args[4] is not None else {}
        with torch.no_grad():
            call = adapter.prepare(self.dm, layout, fc.LatentPacking(layout, 2), args[0], args[2], topts, extra,
                                   image_rows)
            return self.pack.nodes.foveation.diffusion_model_wrapper(
                lambda *a, **k: self.dm._forward(*a, **k), *args, foveation=call, **kwargs)


@pytest.fixture(scope="module")
def models(env):
    return {k: Model(env, k) for k in KEYS}


def _layout(env, level_map):
    return env.pack.fov_core.TokenLayout(level_map)


def _canvas(env, m, layout, batch=1, seed=0):
    T, H, W = layout.shape
    packing = env.pack.fov_core.LatentPacking(layout, 2)
    return packing.noise(m.shape(batch, H, W), generator=torch.Generator().manual_seed(seed))


def _foveal_layout(env, policy="half", n=12):
    fc = env.pack.fov_core
    pol = fc.LevelPolicy.half() if policy == "half" else fc.LevelPolicy.rings(1.6)
    layout = fc.TokenLayout(fc.rasterize(fc.Fovea((fc.Gaze(0.4, 0.45, 0.25),), pol), fc.TokenGrid(1, n, n)))
    assert len(layout.levels) >= 2
    return layout


def _refs(m, batch=1):
    return [torch.randn(batch, 16, 1, 4, 6, generator=torch.Generator().manual_seed(5))] if m.qwen else None


def test_adapters_are_chosen_by_model_class_and_read_their_latents(env, models):
    q, z = models["qwen_image"], models["z_image"]
    assert q.adapter_cls.__name__ == "QwenImageAdapter" and z.adapter_cls.__name__ == "ZImageAdapter"
    for m in (q, z):
        adapter = m.adapter_cls(m.mp)
        grid, p = adapter.token_grid((1, 16, 8, 12))  # what EmptySD3LatentImage makes
        assert (grid.frames, grid.height, grid.width, grid.token_px, p) == (1, 4, 6, 16, 2)
    assert q.adapter_cls(q.mp).token_grid((1, 16, 1, 8, 12))[0].width == 6  # what sampling sees
    with pytest.raises(ValueError, match="Layered"):
        q.adapter_cls(q.mp).token_grid((1, 16, 3, 8, 12))
    from types import SimpleNamespace

    other = SimpleNamespace(model=SimpleNamespace(diffusion_model=torch.nn.Linear(1, 1)))
    with pytest.raises(ValueError, match="Supported families: .*Qwen-Image.*Z-Image"):
        env.pack.nodes.adapters.adapter_for(other)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("batch", [1, 2])
def test_all_full_resolution_equals_native(env, models, key, batch):
    m = models[key]
    layout = _layout(env, torch.zeros(1, 6, 10, dtype=torch.long))  # Z-Image: 60 tokens + 4 x_pad_tokens
    x = torch.randn(m.shape(batch, 6, 10))
    assert_close(m.foveated(x, layout), m.native(x), ATOL)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("k, grid", [(1, (8, 12)), (1, (6, 10)), (2, (8, 12)), (2, (12, 8)), (3, (16, 24)),
                                     (1, (16, 12))])
def test_all_low_resolution_equals_native_low_resolution(env, models, key, k, grid):
    """(6, 10) at 1/2 and (12, 8) at 1/4: the low-resolution grid's centre is not the full
    grid's centre / 2^k (Qwen-Image centres ids with integer division). Z-Image: up to 32
    low-resolution tokens pad to 32, as many as the 7 text tokens pad to, so the noise
    refiner's sequence would be as long as the context refiner's, and the override tells
    them apart by length only: the strip takes 32 more rows (keys of nobody). Without them
    every grid here but (16, 12) fails; (16, 12) at 1/2 (48 tokens, padded to 64) is the
    ordinary case."""
    m = models[key]
    layout = _layout(env, torch.full((1,) + grid, k, dtype=torch.long))
    canvas = _canvas(env, m, layout, batch=2)
    low = canvas[..., :: 2**k, :: 2**k]
    assert_close(m.foveated(canvas, layout), upsample(m.native(low), k), ATOL)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("rope", [{"shift_x": 3.0, "shift_y": 1.5}, {"scale_x": 2.0, "scale_y": 0.5, "shift_x": 1.0}])
def test_z_image_all_low_resolution_with_rope_options(env, models, k, rope):
    """rope_options (scale and shift of the spatial ids, which pos_ids_x reads): all 1/2^k
    == native at 1/2^k with the same options."""
    m = models["z_image"]
    layout = _layout(env, torch.full((1, 8, 12), k, dtype=torch.long))
    canvas = _canvas(env, m, layout)
    low = canvas[..., :: 2**k, :: 2**k]
    topts = lambda: {"rope_options": dict(rope)}  # noqa: E731
    assert_close(m.foveated(canvas, layout, transformer_options=topts()),
                 upsample(m.native(low, transformer_options=topts()), k), ATOL)


@pytest.mark.parametrize("key, method", [("qwen_image", m) for m in (None, "index", "offset", "negative_index")]
                         + [("qwen_image_edit_2511", None)])
def test_qwen_image_edit_references_are_never_foveated(env, models, key, method):
    """Reference images keep their own ids and full resolution in every frame: all 1/2 with
    references == native at 1/2 with the same references (2511: timestep-zero references)."""
    m = models[key]
    refs = [torch.randn(2, 16, 1, 4, 6), torch.randn(2, 16, 1, 6, 4)]
    layout = _layout(env, torch.full((1, 8, 8), 1, dtype=torch.long))
    canvas = _canvas(env, m, layout, batch=2)
    kw = dict(refs=refs, ref_method=method)
    assert_close(m.foveated(canvas, layout, **kw), upsample(m.native(canvas[..., ::2, ::2], **kw), 1), ATOL)
    assert not torch.allclose(m.native(canvas, **kw), m.native(canvas))


def test_qwen_image_text_mask_is_sliced_with_the_keys(env, models):
    m = models["qwen_image"]
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]] * 2)  # two padded text tokens per prompt
    layout = _foveal_layout(env)
    canvas = _canvas(env, m, layout, batch=2)
    masked = m.foveated(canvas, layout, mask=mask)
    assert not torch.allclose(masked, m.foveated(canvas, layout))
    low = _layout(env, torch.ones(1, 8, 8, dtype=torch.long))
    c = _canvas(env, m, low, batch=2)
    assert_close(m.foveated(c, low, mask=mask), upsample(m.native(c[..., ::2, ::2], mask=mask), 1), ATOL)


# ------------------------------------------------------------------------ dense reference

def _record(monkeypatch, embedder):
    """Record the ids every call of the model's RoPE embedder gets."""
    seen, forward = [], embedder.forward
    monkeypatch.setattr(embedder, "forward", lambda ids: seen.append(ids[0].double()) or forward(ids))
    return seen


def _native_frames(m, monkeypatch, canvas, layout, **kw):
    """Per level f: the native forward's ids on the 1/2^f latent, split into
    (before the image, image raster (H_f, W_f, 3), after the image)."""
    out = {}
    for f in layout.levels:
        low = canvas[..., :: 2**f, :: 2**f]
        H, W = -(-layout.shape[1] // 2**f), -(-layout.shape[2] // 2**f)
        with monkeypatch.context() as mp:
            seen = _record(mp, m.embedder)
            m.native(low, **kw)
        if m.qwen:  # one call: [text | image | references]
            (ids,) = seen
            out[f] = (ids[:TXT], ids[TXT : TXT + H * W].view(H, W, 3), ids[TXT + H * W :])
        else:  # text ids, then [image | x_pad_tokens]
            cap, x = seen
            assert (x[H * W :] == 0).all()  # padding tokens sit at 0 at every level
            out[f] = (cap, x[: H * W].view(H, W, 3), None)
    return out


def _frames(layout, native, n_prefix, rows, n_suffix):
    """Per level f, the ids of the packed sequence [prefix | strip rows | suffix] in frame f."""
    frames, lattice = {}, {}
    L = layout.n_tokens
    for f, (before, image, after) in native.items():
        ids = torch.zeros(n_prefix + rows + n_suffix, 3, dtype=torch.float64)
        ids[:n_prefix] = before[:n_prefix]
        if after is not None:
            ids[n_prefix + rows :] = after
        s = 2**f
        on = (layout.y % s == 0) & (layout.x % s == 0)
        img = ids[n_prefix : n_prefix + L]
        img[on] = image[layout.y[on] // s, layout.x[on] // s]
        lat = torch.zeros(len(ids), dtype=torch.bool)
        lat[n_prefix : n_prefix + L] = on
        frames[f], lattice[f] = ids, lat
    return frames, lattice


def _dense(m, q, k, v, used, frames, levels, lattice):
    import comfy.ldm.flux.math as fm

    embed = type(m.embedder).forward  # not the recording one
    rope = lambda x, i: fm._apply_rope1(x, embed(m.embedder, i[None].float()))  # noqa: E731
    q, k = rope(q, -used), rope(k, -used)  # undo the rotation the model applied
    out = dense_reference_attention_frames(q, k, v, frames, levels, lattice, rope)
    B, H, N, D = out.shape
    return out.transpose(1, 2).reshape(B, N, H * D)


@pytest.mark.parametrize("key", ["qwen_image", "z_image"])
@pytest.mark.parametrize("policy", ["half", "rings"])
def test_fast_path_equals_dense_reference(env, models, monkeypatch, key, policy):
    m = models[key]
    layout = _foveal_layout(env, policy)
    canvas = _canvas(env, m, layout, batch=2)
    refs = _refs(m, batch=2)
    fast = m.foveated(canvas, layout, refs=refs)
    native = _native_frames(m, monkeypatch, canvas, layout, refs=refs)
    L = layout.n_tokens
    seen = _record(monkeypatch, m.embedder)
    if m.qwen:
        n_ref = 2 * 3  # the 4 x 6 reference latent
        frames, lattice = _frames(layout, native, TXT, L, n_ref)
        levels = torch.full((TXT + L + n_ref,), -1, dtype=torch.long)
        levels[TXT : TXT + L] = layout.level

        def factory(state, previous=None):
            def override(func, q, k, v, heads, *args, **kwargs):
                if state.plan is None or q.shape[2] != state.plan.seq_len:
                    return func(q, k, v, heads, *args, **kwargs)
                return _dense(m, q, k, v, seen[-1], frames, levels, lattice)

            return override

        monkeypatch.setattr(env.pack.nodes.adapters.base, "make_attention_override", factory)
    else:
        def factory(call, state, previous=None):
            def override(func, q, k, v, heads, *args, **kwargs):
                cap, x = seen[-2:]  # the model's own ids: text, then strip rows and x_pad_tokens
                rows = int((x[:, 0] != 0).sum())
                n_prefix = {len(x): 0, len(cap) + len(x): len(cap)}.get(q.shape[2])
                if n_prefix is None:  # the context refiner: text only
                    return func(q, k, v, heads, *args, **kwargs)
                assert rows >= L and (x[rows:] == 0).all()
                frames, lattice = _frames(layout, native, n_prefix, rows, len(x) - rows)
                levels = torch.full((n_prefix + len(x),), -1, dtype=torch.long)
                levels[n_prefix : n_prefix + L] = layout.level
                levels[n_prefix + L : n_prefix + rows] = -2  # strip padding: nobody's key
                used = torch.cat((cap, x)) if n_prefix else x
                return _dense(m, q, k, v, used, frames, levels, lattice)

            return override

        monkeypatch.setattr(env.pack.nodes.adapters.z_image, "positions_override", factory)
    seen.clear()
    dense = m.foveated(canvas, layout, refs=refs)
    assert_close(fast, dense, ATOL)
    assert env.pack.fov_core.LatentPacking(layout, 2).is_canonical(fast)


# ------------------------------------------------------------------------ Z-Image's strip

def test_z_image_pads_like_the_native_model_and_strip_padding_changes_nothing(env, models):
    """The model pads the strip with as many x_pad_tokens as the native image at the base
    level; extra strip rows (torch.compile, or a strip whose refiner sequence would be as
    long as the text) are keys of nobody."""
    m = models["z_image"]
    fc = env.pack.fov_core
    layout = _foveal_layout(env, n=10)
    adapter = m.adapter_cls(m.mp)
    canvas = _canvas(env, m, layout)
    ctx = torch.zeros(1, TXT, 64)
    call = adapter.prepare(m.dm, layout, fc.LatentPacking(layout, 2), canvas, ctx, {}, {}, None)
    rows = call.image_rows or layout.n_tokens
    assert call.n_suffix == (-100) % 32 == (-rows) % 32 and rows - layout.n_tokens < 32
    base = m.foveated(canvas, layout)
    assert_close(m.foveated(canvas, layout, image_rows=layout.n_tokens + 37), base, ATOL)
    # a text as long as the refiner's sequence: the strip takes 32 more rows; same result
    n = -(-rows // 32) * 32
    call = adapter.prepare(m.dm, layout, fc.LatentPacking(layout, 2), canvas, torch.zeros(1, n, 64), {}, {}, None)
    assert call.image_rows == rows + 32
    assert_close(m.foveated(canvas, layout, txt=n), m.foveated(canvas, layout, txt=n, image_rows=rows + 64), ATOL)


# ------------------------------------------------------------------------ bf16, no trace, errors

@pytest.mark.parametrize("key", ["qwen_image", "z_image"])
def test_bf16_invariants(env, models, key):
    """Qwen-Image: all-full and all-1/2 run exactly the native computations (bit-identical).
    Z-Image rotates q and k once more from the strip's ids to the true ones (one more bf16
    rounding), so all-full, all-1/2 and a mixed layout stay within 2x native's own bf16 error."""
    m32, m16 = models[key], Model(env, key, torch.bfloat16)
    full = _layout(env, torch.zeros(1, 8, 12, dtype=torch.long))
    x = torch.randn(m16.shape(1, 8, 12))
    low = _layout(env, torch.ones(1, 8, 12, dtype=torch.long))
    canvas = _canvas(env, m16, low)
    layout = _foveal_layout(env, "rings")
    mixed = _canvas(env, m16, layout)
    nat_err = max(float((m16.native(c).float() - m32.native(c)).abs().max()) for c in (x, mixed))
    if m16.qwen:
        assert torch.equal(m16.foveated(x, full), m16.native(x))
        assert torch.equal(m16.foveated(canvas, low), upsample(m16.native(canvas[..., ::2, ::2]), 1))
    else:
        assert 0 < float((m16.foveated(x, full).float() - m32.native(x)).abs().max()) <= 2 * nat_err
        low_nat = upsample(m32.native(canvas[..., ::2, ::2]), 1)
        low_err = float((m16.native(canvas[..., ::2, ::2]).float() - m32.native(canvas[..., ::2, ::2])).abs().max())
        assert 0 < float((m16.foveated(canvas, low).float() - low_nat).abs().max()) <= 2 * low_err
    fov_err = float((m16.foveated(mixed, layout).float() - m32.foveated(mixed, layout)).abs().max())
    assert 0 < fov_err <= 2 * nat_err, (fov_err, nat_err)


@pytest.mark.parametrize("key", ["qwen_image", "z_image"])
def test_patched_model_forward_and_no_trace(env, models, key):
    """Through BaseModel.apply_model and the real wrappers: the output is a canvas, the
    original model and its options are untouched, native output afterwards is bit-identical."""
    m = models[key]
    fc = env.pack.fov_core
    fovea = fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),), fc.LevelPolicy.quarter())
    layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(1, 12, 12)))
    x = _canvas(env, m, layout)
    context = torch.randn(1, TXT, m.info["context_dim"], generator=torch.Generator().manual_seed(1))
    extra = {} if m.qwen else {"num_tokens": TXT}

    def apply(topts):
        with torch.no_grad():
            return m.mp.model.apply_model(x, torch.full((1,), 0.7), None, context, None, topts, **extra)

    before = apply({})
    opts_before = repr((m.mp.model_options, m.mp.wrappers))
    patched = m.pack.nodes.foveation.FoveationPatch(fovea, m.adapter_cls).install(m.mp)
    out = apply({"wrappers": patched.wrappers})
    assert fc.LatentPacking(layout, 2).is_canonical(out) and not torch.equal(out, before)
    assert repr((m.mp.model_options, m.mp.wrappers)) == opts_before
    assert torch.equal(apply({}), before)


def test_unsupported_inputs_are_refused(env, models):
    fc = env.pack.fov_core
    layout = _foveal_layout(env)
    q, z = models["qwen_image"], models["z_image"]

    class DiffSynthCnetPatch:  # what QwenImageDiffsynthControlnet / ZImageFunControlnet install
        def __call__(self, kwargs):
            return kwargs

    for m, kind in ((q, "double_block"), (z, "noise_refiner")):
        canvas = _canvas(env, m, layout)
        with pytest.raises(ValueError, match="DiffSynthCnetPatch on .*Remove that node or the foveation"):
            m.adapter_cls(m.mp).prepare(m.dm, layout, fc.LatentPacking(layout, 2), canvas, torch.zeros(1, TXT, 64),
                                        {"patches": {kind: [DiffSynthCnetPatch()]}}, {}, None)
    canvas = _canvas(env, z, layout)
    with pytest.raises(ValueError, match="reference images on Z-Image"):
        z.adapter_cls(z.mp).prepare(z.dm, layout, fc.LatentPacking(layout, 2), canvas, torch.zeros(1, TXT, 64), {},
                                    {"ref_latents": [torch.zeros(1, 16, 8, 8)]}, None)
