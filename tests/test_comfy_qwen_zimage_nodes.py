"""Foveated Qwen-Image and Z-Image through ComfyUI's real executor, headless on CPU, with
the tiny checkpoints of comfy_fixtures/tiny_qwen_zimage.py: UNETLoader, a conditioning of
the family's width, the family's empty latent (EmptySD3LatentImage, as ComfyUI's own
templates), Fovea, Apply Foveation, KSampler, Foveated Decode / Encode with the family's
tiny VAE (the Wan 2.1 VAE for Qwen-Image, the FLUX.1 VAE for Z-Image); Qwen-Image-Edit
with a reference image; the errors."""
import pytest
import torch

from comfy_fixtures.prompts import Prompt, fovea, ksampler

pytestmark = pytest.mark.comfyui
W, H = 128, 96  # 8 x 6 tokens of 16 px
VAE = {"qwen_image": "wan21_vae", "qwen_image_edit_2511": "wan21_vae", "z_image": "flux_vae"}
NAME = {"qwen_image": "Qwen-Image", "qwen_image_edit_2511": "Qwen-Image", "z_image": "Z-Image"}


def run(env, key, prompt):
    tq = env.tiny_qwen_zimage
    with (tq.zimage_detection_patch() if key == "z_image" else tq.qwen_detection_patch()):
        return env.harness.run_prompt(env.handle, prompt, clear_cache=True)


def _base(env, p, key):
    info = env.infos[key]
    m = p.add("UNETLoader", unet_name=info["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos[VAE[key]]["name"])
    lat = p.add("EmptySD3LatentImage", width=W, height=H, batch_size=1)
    conds = [p.add("HarnessRandomConditioning", seed=s, n_tokens=7, context_dim=info["context_dim"], pooled_dim=0,
                   guidance=-1.0) for s in (1, 2)]
    return m, v, lat, conds[0], conds[1]


def _packing(env, latent, fov):
    fc = env.pack.fov_core
    grid = fc.TokenGrid(1, latent.shape[-2] // 2, latent.shape[-1] // 2)
    return fc.LatentPacking(fc.TokenLayout(fc.rasterize(fov, grid)), 2)


@pytest.mark.parametrize("key", ["qwen_image", "z_image"])
def test_text_to_image(env, key):
    p = Prompt()
    m, v, lat, pos, neg = _base(env, p, key)
    f = fovea(p, x=0.4, y=0.5, radius=0.3, width=W, height=H)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f), latent=p.out(lat))
    s = ksampler(p, fm, pos, neg, lat, steps=2, cfg=2.0)
    s_nat = ksampler(p, m, pos, neg, lat, steps=2, cfg=2.0)
    dec = p.add("FoveatedDecode", samples=p.out(s), vae=p.out(v), fovea=p.out(f), margin=2)
    plain = p.add("VAEDecode", samples=p.out(s), vae=p.out(v))
    enc = p.add("FoveatedEncode", pixels=p.out(dec), vae=p.out(v), fovea=p.out(f))
    r = run(env, key, p)
    latent, nat = r[s][0]["samples"], r[s_nat][0]["samples"]
    # Qwen-Image samples (B, 16, 1, h, w) latents (latent_formats.Wan21), Z-Image (B, 16, h, w)
    assert latent.shape == nat.shape == ((1, 16, 1, H // 8, W // 8) if key == "qwen_image" else (1, 16, H // 8, W // 8))
    packing = _packing(env, latent, r[f][0])
    assert len(packing.layout.levels) == 2 and packing.is_canonical(latent)
    assert torch.isfinite(latent).all() and not torch.equal(latent, nat)
    image, mask = r[dec][0], r[dec][1]
    assert image.shape == r[plain][0].shape == (1, H, W, 3) and mask.shape == (1, H, W)
    assert float(mask.amax()) == pytest.approx(1.0) and float(mask.amin()) == 0.0
    assert torch.isfinite(image).all() and float((image - r[plain][0]).abs()[mask == 0].mean()) > 0.01
    assert packing.is_canonical(r[enc][0]["samples"]) and r[enc][0]["samples"].shape == latent.shape
    readout = r[fm][1]
    assert NAME[key] in readout and "tokens" in readout and "FLOP-ideal speedup" in readout


def test_qwen_image_edit_with_a_reference_image(env):
    """Qwen-Image-Edit-2511 (timestep-zero references): the reference latent joins the
    conditioning (ReferenceLatent, as TextEncodeQwenImageEdit does) and is never foveated."""
    key = "qwen_image_edit_2511"
    p = Prompt()
    m, v, lat, pos, neg = _base(env, p, key)
    img = p.add("EmptyImage", width=64, height=48, batch_size=1, color=0x3080C0)
    ref = p.add("VAEEncode", pixels=p.out(img), vae=p.out(v))
    pos_ref = p.add("ReferenceLatent", conditioning=p.out(pos), latent=p.out(ref))
    f = fovea(p, x=0.6, y=0.5, radius=0.25, width=W, height=H, periphery="rings: 1/2 then 1/4")
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f), latent=p.out(lat))
    s = ksampler(p, fm, pos_ref, neg, lat, steps=2, cfg=2.0)
    s_plain = ksampler(p, fm, pos, neg, lat, steps=2, cfg=2.0)
    r = run(env, key, p)
    latent = r[s][0]["samples"]
    assert r[ref][0]["samples"].shape == (1, 16, 1, 6, 8)  # the reference: 3 x 4 tokens, full resolution
    assert _packing(env, latent, r[f][0]).is_canonical(latent)
    assert not torch.equal(latent, r[s_plain][0]["samples"])  # the reference reaches the model


def test_unsupported_inputs_are_clear_errors(env):
    # Z-Image Omni reference images
    p = Prompt()
    m, v, lat, pos, neg = _base(env, p, "z_image")
    ref = p.add("VAEEncode", pixels=p.out(p.add("EmptyImage", width=64, height=64, batch_size=1, color=0)),
                vae=p.out(v))
    f = fovea(p, width=W, height=H)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f))
    ksampler(p, fm, p.add("ReferenceLatent", conditioning=p.out(pos), latent=p.out(ref)), neg, lat, steps=1)
    with pytest.raises(env.harness.PromptExecutionError, match="reference images on Z-Image"):
        run(env, "z_image", p)
    # a Qwen-Image-Layered latent (several layers as frames)
    p = Prompt()
    m, v, lat, pos, neg = _base(env, p, "qwen_image")
    layered = p.add("EmptyQwenImageLayeredLatentImage", width=W, height=H, layers=2, batch_size=1)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(fovea(p, width=W, height=H)))
    ksampler(p, fm, pos, neg, layered, steps=1)
    with pytest.raises(env.harness.PromptExecutionError, match="single images.*Layered"):
        run(env, "qwen_image", p)


@pytest.mark.parametrize("key", ["qwen_image", "z_image"])
@pytest.mark.parametrize("with_fovea", [False, True])
def test_progressive_resolution_runs_its_stages(env, caplog, key, with_fovea):
    """Progressive Resolution (1/2, then full resolution or, with a fovea, the fovea) on both
    families: two stages logged, a finite sample, a canonical canvas with a fovea."""
    import logging
    import re

    p = Prompt()
    m, v, lat, pos, neg = _base(env, p, key)
    f = fovea(p, x=0.4, y=0.5, radius=0.3, width=W, height=H) if with_fovea else None
    pm = p.add("ProgressiveResolution", model=p.out(m), scales="0.5, 1", switch_at="manual sigmas", delta=0.05,
               spectrum="FLUX", manual_sigmas="0.9", transform="dct", noise="fast", seed=0, A=1.0, beta=1.0,
               **({"fovea": p.out(f)} if f else {}))
    s = ksampler(p, pm, pos, neg, lat, steps=4)
    with caplog.at_level(logging.INFO, logger="foveated"):
        r = run(env, key, p)
    latent = r[s][0]["samples"]
    assert torch.isfinite(latent).all() and r[pm][1].startswith("stages 0.5 -> 1")
    logged = [msg for msg in caplog.messages if msg.startswith("Progressive")]
    assert logged and NAME[key] in logged[-1] and len(re.findall(r"% tokens x \d+ steps", logged[-1])) == 2, logged
    if f:
        assert _packing(env, latent, r[f][0]).is_canonical(latent)
