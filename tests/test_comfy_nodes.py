"""Every node of the pack executed through ComfyUI's real executor, headless on CPU,
with tiny random checkpoints in the real FLUX.1 / FLUX.2 formats."""
import logging

import pytest
import torch

from comfy_fixtures.prompts import FAMILY, Prompt, base, fovea, ksampler

pytestmark = pytest.mark.comfyui


def run(env, prompt, **kw):
    return env.harness.run_prompt(env.handle, prompt, clear_cache=True, **kw)


def packing_for(env, latent, fov, patch):
    fc = env.pack.fov_core
    grid = fc.TokenGrid(1, latent.shape[-2] // patch, latent.shape[-1] // patch)
    return fc.LatentPacking(fc.TokenLayout(fc.rasterize(fov, grid)), patch)


PATCH = {"flux1_dev": 2, "flux1_schnell": 2, "flux1_kontext": 2, "flux2_klein": 1}


SAMPLERS = {
    "ksampler_euler": lambda p, m, pos, neg, lat: ksampler(p, m, pos, neg, lat),
    "ksampler_cfg_ancestral": lambda p, m, pos, neg, lat: ksampler(p, m, pos, neg, lat, cfg=3.0, sampler="euler_ancestral"),
    "ksampler_sde": lambda p, m, pos, neg, lat: ksampler(p, m, pos, neg, lat, cfg=2.0, sampler="dpmpp_2m_sde", scheduler="karras"),
    "ksampler_advanced": lambda p, m, pos, neg, lat: p.add(
        "KSamplerAdvanced", model=p.out(m), add_noise="enable", noise_seed=5, steps=4, cfg=1.5,
        sampler_name="heun", scheduler="simple", positive=p.out(pos), negative=p.out(neg), latent_image=p.out(lat),
        start_at_step=0, end_at_step=10000, return_with_leftover_noise="disable"),
    "sampler_custom_advanced": lambda p, m, pos, neg, lat: p.add(
        "SamplerCustomAdvanced",
        noise=p.out(p.add("RandomNoise", noise_seed=9)),
        guider=p.out(p.add("CFGGuider", model=p.out(m), positive=p.out(pos), negative=p.out(neg), cfg=2.5)),
        sampler=p.out(p.add("KSamplerSelect", sampler_name="dpmpp_sde")),
        sigmas=p.out(p.add("BasicScheduler", model=p.out(m), scheduler="beta", steps=3, denoise=1.0)),
        latent_image=p.out(lat)),
}


def _fovea_value(env, **kw):
    fc = env.pack.fov_core
    pol = {"1/2 resolution": fc.LevelPolicy.half(), "1/4 resolution": fc.LevelPolicy.quarter(),
           "rings: 1/2 then 1/4": fc.LevelPolicy.rings(2.0)}[kw.get("periphery", "1/2 resolution")]
    return fc.Fovea((fc.Gaze(kw.get("x", 0.5), kw.get("y", 0.5), kw.get("radius", 0.3)),), pol, 0.03)


@pytest.mark.parametrize("family", ["flux1_dev", "flux2_klein"])
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_gives_a_canvas(env, family, sampler):
    p = Prompt()
    m, v, lat, pos, neg = base(p, family, batch=2)
    f = fovea(p, periphery="rings: 1/2 then 1/4", radius=0.25)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f), latent=p.out(lat))
    s_fov = SAMPLERS[sampler](p, fm, pos, neg, lat)
    s_nat = SAMPLERS[sampler](p, m, pos, neg, lat)
    r = run(env, p)
    fov, nat = r[s_fov][0]["samples"], r[s_nat][0]["samples"]
    assert fov.shape == nat.shape and torch.isfinite(fov).all()
    pk = packing_for(env, fov, _fovea_value(env, periphery="rings: 1/2 then 1/4", radius=0.25), PATCH[family])
    assert pk.is_canonical(fov), "the sampled latent must be a canvas (replicated low-resolution blocks)"
    assert not torch.equal(fov, nat)
    readout = r[fm][1]
    assert "tokens" in readout and "FLOP-ideal speedup" in readout


def test_initial_noise_follows_the_canvas_rule(env):
    """Whoever draws the noise (here KSampler), the sampler receives i.i.d. representatives
    replicated over groups, equal to the representatives of the drawn noise."""
    import comfy.patcher_extension as pe_ext
    import comfy.sample as comfy_sample
    from comfy import sd as comfy_sd

    fc = env.pack.fov_core
    mp = comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY["flux1_dev"][0]))
    fov = fc.Fovea((fc.Gaze(0.3, 0.6, 0.2),), fc.LevelPolicy.quarter())
    patched = env.pack.nodes.apply_node.ApplyFoveation.execute(mp, fov).result[0]
    seen = {}

    def capture(executor, *args, **kwargs):
        seen["noise"] = args[4].clone()
        return executor(*args, **kwargs)

    patched.add_wrapper_with_key(pe_ext.WrappersMP.SAMPLER_SAMPLE, "test_capture", capture)
    drawn = torch.randn(1, 16, 32, 32, generator=torch.Generator().manual_seed(0))
    cond = env.harness.random_conditioning(7, 64, 32, guidance=3.5)
    with torch.inference_mode():
        out = comfy_sample.sample(patched, drawn, 2, 1.0, "euler", "simple", cond, cond, torch.zeros_like(drawn))
    pk = packing_for(env, drawn, fov, 2)
    assert pk.is_canonical(seen["noise"])
    assert not pk.is_canonical(drawn)
    assert torch.equal(pk.pack(seen["noise"]), pk.pack(drawn))
    assert pk.is_canonical(out)


def test_inpainting_keeps_what_the_mask_keeps_bit_for_bit(env):
    """SetLatentNoiseMask: outside the mask ComfyUI keeps the input latent; the canvas's
    final canonicalization must not overwrite those pixels in periphery blocks, and Foveated
    Decode decodes them at full resolution."""
    import comfy.sampler_helpers

    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_dev", width=256, height=256)
    img = p.add("EmptyImage", width=256, height=256, batch_size=1, color=0x8040C0)
    enc = p.add("VAEEncode", pixels=p.out(img), vae=p.out(v))
    region = p.add("ThresholdMask", mask=p.out(fovea(p, x=0.7, radius=0.25), 1), value=0.9)
    masked = p.add("SetLatentNoiseMask", samples=p.out(enc), mask=p.out(region))
    f = fovea(p, x=0.3, radius=0.3)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f))
    s = ksampler(p, fm, pos, neg, masked, steps=3)
    dec = p.add("FoveatedDecode", samples=p.out(s), vae=p.out(v), fovea=p.out(f), margin=2)
    plain = p.add("VAEDecode", samples=p.out(s), vae=p.out(v))
    r = run(env, p)
    before, after = r[enc][0]["samples"], r[s][0]["samples"]
    keep = comfy.sampler_helpers.prepare_mask(r[region][0][:, None], before.shape, "cpu") == 0
    assert keep.any() and (~keep).any()
    assert torch.equal(after[keep], before[keep])
    assert not torch.equal(after[~keep], before[~keep])
    # Foveated Decode decodes what the mask kept at full resolution: there it is a plain decode
    image, weight = r[dec]
    kept_px = torch.nn.functional.interpolate(keep[:, :1].float(), size=image.shape[1:3])[:, 0] == 1
    full = weight == 1
    assert (full & kept_px).sum() >= 0.8 * kept_px.sum()  # the feather lies inside the full-resolution part
    assert torch.allclose(image[full], r[plain][0][full], atol=1e-4)


def test_controlnet_is_refused_before_any_step(env, monkeypatch):
    import comfy.controlnet
    import comfy.sample as comfy_sample
    from comfy import sd as comfy_sd

    fc = env.pack.fov_core
    mp = comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY["flux1_dev"][0]))
    patched = env.pack.nodes.apply_node.ApplyFoveation.execute(mp, fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),))).result[0]
    calls = []
    monkeypatch.setattr(mp.model, "apply_model", lambda *a, **k: calls.append(1))
    cond = env.harness.random_conditioning(7, 64, 32, guidance=3.5)
    cond[0][1]["control"] = comfy.controlnet.ControlBase()  # what Apply ControlNet puts in the conditioning
    latent = torch.zeros(1, 16, 32, 32)
    with pytest.raises(ValueError, match="ControlNet"):
        comfy_sample.sample(patched, torch.randn(latent.shape), 2, 1.0, "euler", "simple", cond, cond, latent)
    assert calls == []


def test_memory_estimate_counts_the_packed_tokens(env, monkeypatch):
    """ComfyUI loads (or offloads) the model by its memory estimate; the foveated model's
    estimate follows the packed token count instead of the full grid."""
    import comfy.model_management as mm
    import comfy.sample as comfy_sample
    from comfy import sd as comfy_sd

    fc = env.pack.fov_core
    mp = comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY["flux1_dev"][0]))
    fov = fc.Fovea((fc.Gaze(0.5, 0.5, 0.2),), fc.LevelPolicy.quarter())
    patched = env.pack.nodes.apply_node.ApplyFoveation.execute(mp, fov).result[0]
    asked = []
    load = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, memory_required=0, **kw: (
        asked.append(memory_required), load(models, memory_required=memory_required, **kw))[1])
    latent = torch.zeros(1, 16, 64, 64)
    cond = env.harness.random_conditioning(7, 64, 32, guidance=3.5)
    with torch.inference_mode():
        for model in (mp, patched):
            comfy_sample.sample(model, torch.randn(latent.shape), 1, 1.0, "euler", "simple", cond, cond, latent)
    ratio = fc.TokenLayout(fc.rasterize(fov, fc.TokenGrid(1, 32, 32))).token_ratio
    native, foveated = asked
    assert ratio < 0.3
    assert foveated == pytest.approx(native * ratio, rel=0.05)


def test_model_used_foveated_then_native_is_bit_identical(env):
    def native_prompt():
        p = Prompt()
        m, v, lat, pos, neg = base(p, "flux1_dev")
        return p, ksampler(p, m, pos, neg, lat, cfg=2.0, sampler="euler_ancestral")

    p, s = native_prompt()
    before = run(env, p)[s][0]["samples"].clone()
    p2 = Prompt()
    m, v, lat, pos, neg = base(p2, "flux1_dev")
    fm = p2.add("ApplyFoveation", model=p2.out(m), fovea=p2.out(fovea(p2, periphery="1/4 resolution")))
    s_fov = ksampler(p2, fm, pos, neg, lat, cfg=2.0, sampler="euler_ancestral")
    s_nat = ksampler(p2, m, pos, neg, lat, cfg=2.0, sampler="euler_ancestral")
    r = env.harness.run_prompt(env.handle, p2)  # same loaded model object serves both samplers
    assert torch.equal(r[s_nat][0]["samples"], before)
    assert not torch.equal(r[s_fov][0]["samples"], before)
    p, s = native_prompt()
    assert torch.equal(run(env, p)[s][0]["samples"], before)


def test_interrupted_foveated_run_leaves_no_trace(env):
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux2_klein")
    s_nat = ksampler(p, m, pos, neg, lat, steps=4)
    before = run(env, p)[s_nat][0]["samples"].clone()

    p2 = Prompt()
    m, v, lat, pos, neg = base(p2, "flux2_klein")
    fm = p2.add("ApplyFoveation", model=p2.out(m), fovea=p2.out(fovea(p2)))
    ksampler(p2, fm, pos, neg, lat, steps=40)
    with pytest.raises(env.harness.PromptInterrupted):
        run(env, p2, on_progress=lambda v_, t, n: env.harness.interrupt(env.handle) if v_ >= 2 else None)
    # a failure inside the model mid-run (bad fovea on a different latent size) also leaves nothing
    assert torch.equal(env.harness.run_prompt(env.handle, p)[s_nat][0]["samples"], before)
    assert torch.equal(run(env, p)[s_nat][0]["samples"], before)


def test_paper_lora_loads_through_lora_loader_model_only(env, caplog):
    from comfy_fixtures.paper_lora import write_paper_style_lora
    from comfy import sd as comfy_sd

    mp = comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY["flux2_klein"][0]))
    lora_dir = env.models / "loras"
    write_paper_style_lora(lora_dir / "fov_random_tiny.safetensors", mp.model.state_dict(), rank=4, seed=1,
                           magnitude=0.5)
    env.harness.refresh_model_lists(env.handle)
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux2_klein")
    lm = p.add("LoraLoaderModelOnly", model=p.out(m), lora_name="fov_random_tiny.safetensors", strength_model=1.0)
    f = fovea(p, periphery="1/2 resolution")
    s_lora = ksampler(p, p.add("ApplyFoveation", model=p.out(lm), fovea=p.out(f)), pos, neg, lat)
    s_plain = ksampler(p, p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f)), pos, neg, lat)
    with caplog.at_level(logging.WARNING):
        r = run(env, p)
    assert not [rec for rec in caplog.records if "lora key not loaded" in rec.getMessage()]
    a, b = r[s_lora][0]["samples"], r[s_plain][0]["samples"]
    assert not torch.equal(a, b), "the LoRA must change the foveated result"
    assert packing_for(env, a, _fovea_value(env), 1).is_canonical(a)


def test_kontext_reference_latent_is_not_foveated(env):
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_kontext")
    ref = p.add("EmptySD3LatentImage", width=128, height=192, batch_size=1)
    pos_ref = p.add("ReferenceLatent", conditioning=p.out(pos), latent=p.out(ref))
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(fovea(p, x=0.3)))
    s = ksampler(p, fm, pos_ref, neg, lat, cfg=1.0)
    out = run(env, p)[s][0]["samples"]
    assert packing_for(env, out, _fovea_value(env, x=0.3), 2).is_canonical(out)


@pytest.mark.parametrize("family", ["flux1_dev", "flux2_klein"])
def test_foveated_decode_and_plain_decode(env, family):
    p = Prompt()
    m, v, lat, pos, neg = base(p, family, width=320, height=256)
    f = fovea(p, x=0.35, radius=0.25, periphery="1/4 resolution", feather=0.05)
    s = ksampler(p, p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f)), pos, neg, lat)
    fd = p.add("FoveatedDecode", samples=p.out(s), vae=p.out(v), fovea=p.out(f), margin=2)
    vd = p.add("VAEDecode", samples=p.out(s), vae=p.out(v))
    r = run(env, p)
    img, mask = r[fd]
    plain = r[vd][0]
    assert img.shape == plain.shape == (1, 256, 320, 3)
    assert mask.shape == (1, 256, 320) and float(mask.max()) == pytest.approx(1.0) and float(mask.min()) == 0.0
    assert torch.isfinite(img).all() and float(img.min()) >= 0 and float(img.max()) <= 1
    far, inside = mask == 0, mask > 0.999
    assert far.float().mean() > 0.3 and inside.any()
    # inside the fovea the blend is the fovea's crop decode: close to a plain decode (the
    # FLUX VAEs' GroupNorm sees only the crop, so not exactly); outside it is the upsampled
    # low-resolution decode, unlike the plain decode of the blocky canvas
    err_in, err_out = (float((img - plain).abs()[m].mean()) for m in (inside, far))
    assert err_in < 0.08 and err_in < 0.5 * err_out, (err_in, err_out)


def test_decode_rejects_a_latent_from_another_fovea(env):
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_dev")
    f1 = fovea(p, x=0.2, y=0.2, radius=0.15)
    f2 = fovea(p, x=0.8, y=0.8, radius=0.15)
    s = ksampler(p, p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f1)), pos, neg, lat)
    p.add("FoveatedDecode", samples=p.out(s), vae=p.out(v), fovea=p.out(f2), margin=2)
    with pytest.raises(env.harness.PromptExecutionError, match="not generated with this fovea"):
        run(env, p)


@pytest.mark.parametrize("family, size, periphery", [
    ("flux1_dev", (128, 128), "1/2 resolution"),
    ("flux2_klein", (128, 128), "1/2 resolution"),
    ("flux1_dev", (176, 144), "rings: 1/2 then 1/4"),  # 11x9 tokens: edge blocks fall back
])
def test_foveated_encode_for_img2img(env, family, size, periphery):
    w, h = size
    p = Prompt()
    m, v, lat, pos, neg = base(p, family, width=w, height=h)
    s0 = ksampler(p, m, pos, neg, lat, steps=2)
    img = p.add("VAEDecode", samples=p.out(s0), vae=p.out(v))
    f = fovea(p, width=w, height=h, periphery=periphery, radius=0.3)
    enc = p.add("FoveatedEncode", pixels=p.out(img), vae=p.out(v), fovea=p.out(f))
    plain = p.add("VAEEncode", pixels=p.out(img), vae=p.out(v))
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f))
    s1 = ksampler(p, fm, pos, neg, enc, steps=3, denoise=0.5)
    r = run(env, p)
    canvas, full = r[enc][0]["samples"], r[plain][0]["samples"]
    pk = packing_for(env, canvas, _fovea_value(env, radius=0.3, periphery=periphery), PATCH[family])
    assert pk.is_canonical(canvas)
    lev = pk.pixel_levels()[0]
    assert torch.allclose(canvas[..., lev == 0], full[..., lev == 0], atol=1e-5)
    # periphery = latent of the downsampled image, not a pooled or subsampled full latent
    assert not torch.allclose(canvas[..., lev == 1], pk.canonicalize(full)[..., lev == 1], atol=1e-3)
    assert pk.is_canonical(r[s1][0]["samples"])


def test_fovea_from_mask_boxes_and_saliency(env):
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_dev")
    zero = p.add("SolidMask", value=0.0, width=256, height=256)
    blob = p.add("SolidMask", value=1.0, width=48, height=64)
    mask = p.add("MaskComposite", destination=p.out(zero), source=p.out(blob), x=160, y=32, operation="add")
    fm_ = p.add("FoveaFromMask", mask=p.out(mask), threshold=0.5, periphery="1/2 resolution", ring_scale=2.0,
                feather=0.03)
    box = p.add("PrimitiveBoundingBox", x=16, y=150, width=60, height=50)
    fb = p.add("FoveaFromBoxes", bboxes=p.out(box), width=256, height=256, expand=0.1,
               periphery="1/4 resolution", ring_scale=2.0, feather=0.03, fovea=p.out(fm_))
    s = ksampler(p, p.add("ApplyFoveation", model=p.out(m), fovea=p.out(fb)), pos, neg, lat)
    img = p.add("VAEDecode", samples=p.out(s), vae=p.out(v))
    fs = p.add("FoveaFromSaliency", image=p.out(img), threshold=0.3, coverage=0.9, min_radius=0.2,
               max_radius=0.5, periphery="1/2 resolution", ring_scale=2.0, feather=0.03)
    fs_mask = p.add("FoveaFromSaliency", saliency=p.out(mask), threshold=0.3, coverage=0.9, min_radius=0.05,
                    max_radius=0.5, periphery="1/2 resolution", ring_scale=2.0, feather=0.03)
    r = run(env, p)
    prev_mask = r[fm_][1]
    assert prev_mask.shape == (1, 256, 256)
    assert float(prev_mask[0, 64, 184]) == 1.0 and float(prev_mask[0, 250, 10]) == 0.5
    prev_box = r[fb][1]
    assert float(prev_box[0, 170, 40]) == 1.0 and float(prev_box[0, 64, 184]) == 1.0  # union with the mask
    assert float(prev_box[0, 250, 250]) == 0.25
    sal_fovea = r[fs_mask][0]
    g = sal_fovea.regions[0]
    assert abs(g.x - (160 + 24) / 256) < 0.05 and abs(g.y - (32 + 32) / 256) < 0.05
    assert r[fs][0].regions and r[fs][1].shape == (1, 256, 256)


def test_unsupported_model_names_the_supported_families(env):
    import comfy.model_patcher

    fake = torch.nn.Module()
    fake.diffusion_model = torch.nn.Linear(4, 4)
    fake.latent_format = None
    mp = comfy.model_patcher.ModelPatcher(fake, torch.device("cpu"), torch.device("cpu"))
    apply_cls = env.pack.nodes.apply_node.ApplyFoveation
    fc = env.pack.fov_core
    with pytest.raises(ValueError, match=r"Supported families: FLUX\.1 .*FLUX\.2 .*Chroma"):
        apply_cls.execute(mp, fc.Fovea((fc.Gaze(0.5, 0.5, 0.2),)))


def test_every_node_has_tooltips_a_description_and_a_help_page(env):
    from pathlib import Path

    root = Path(env.pack.__file__).parent
    classes = env.pack.nodes.NODE_CLASSES
    assert len(classes) >= 7
    assert not hasattr(env.pack, "NODE_CLASS_MAPPINGS"), "V3 entry point only, never both"
    for cls in classes:
        schema = cls.GET_SCHEMA()
        assert schema.description, schema.node_id
        for inp in schema.inputs:
            assert inp.tooltip, f"{schema.node_id}.{inp.id} has no tooltip"
        page = root / "web" / "docs" / f"{schema.node_id}.md"
        assert page.is_file(), f"missing help page {page}"
        assert page.read_text().startswith(f"# {schema.display_name}")
        assert env.handle.node_class_mappings[schema.node_id] is cls


def test_one_readout_log_line_per_run(env, caplog):
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_dev", batch=2)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(fovea(p, periphery="1/4 resolution")))
    ksampler(p, fm, pos, neg, lat, steps=4, cfg=2.0)
    with caplog.at_level(logging.INFO, logger="foveated"):
        run(env, p)
    lines = [r.getMessage() for r in caplog.records if r.name == "foveated"]
    assert len(lines) == 1, lines
    assert "FLUX.1" in lines[0] and "tokens" in lines[0] and "FLOP-ideal speedup" in lines[0]


def test_gaze_path_node_and_its_errors(env):
    p = Prompt()
    kf = '[{"frame": 0, "x": 0.2, "y": 0.5, "radius": 0.2}, {"frame": 8, "x": 0.8, "y": 0.5, "radius": 0.2}]'
    gp = p.add("GazePath", keyframes=kf, num_frames=9, width=128, height=64, periphery="1/2 resolution",
               ring_scale=2.0, feather=0.03)
    r = run(env, p)
    fov, preview = r[gp]
    assert fov.path is not None and fov.path.num_frames == 9
    assert preview.shape == (9, 64, 128)
    first = preview[0].nonzero()[:, 1].float()
    # the full-resolution region moves from left to right
    cols = [float((preview[t] == 1.0).nonzero()[:, 1].float().mean()) for t in range(9)]
    assert cols[0] < cols[4] < cols[8] and first.numel() > 0

    cls = env.pack.nodes.fovea_nodes.GazePathNode
    bad = [
        ('[{"frame": 12, "x": 0.5, "y": 0.5, "radius": 0.2}]', "out of range"),
        ('[{"frame": 5, "x": 0.5, "y": 0.5, "radius": 0.2}, {"frame": 2, "x": 0.5, "y": 0.5, "radius": 0.2}]',
         "increasing"),
        ('[{"frame": 1, "x": 0.5, "y": 0.5}]', "lacks 'radius'"),
        ('[{"frame": 1.5, "x": 0.5, "y": 0.5, "radius": 0.2}]', "integer"),
        ("[[1, 0.5", "keyframes must be JSON"),
    ]
    for text, match in bad:
        with pytest.raises(ValueError, match=match):
            cls.execute(text, 10, 128, 64, "1/2 resolution", 2.0, 0.03)

    # a gaze path on an image model: a clear error when sampling
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_dev")
    gp = p.add("GazePath", keyframes=kf, num_frames=9, width=256, height=256, periphery="1/2 resolution",
               ring_scale=2.0, feather=0.03)
    ksampler(p, p.add("ApplyFoveation", model=p.out(m), fovea=p.out(gp)), pos, neg, lat)
    with pytest.raises(env.harness.PromptExecutionError, match="single image"):
        run(env, p)
