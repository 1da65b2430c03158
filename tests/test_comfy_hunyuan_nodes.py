"""Foveated HunyuanVideo through ComfyUI's real executor, headless on CPU, with tiny random
checkpoints in the real HunyuanVideo 1.0 and 1.5 formats: text-to-video following a gaze
path (1.0; 1.5 with Foveated Decode and Foveated Encode of its 32-channel, 16x video
latents), image-to-video (1.0 "v1 (concat)"), and the refused "v2 (replace)" mode."""
import json

import pytest
import torch

from comfy_fixtures.prompts import Prompt

pytestmark = pytest.mark.comfyui
W, H = 128, 96  # 8 x 6 tokens of 16 px


def run(env, prompt):
    return env.harness.run_prompt(env.handle, prompt, clear_cache=True)


def _conds(p, pooled, guidance, seed=1):
    c = {"n_tokens": 5, "context_dim": 64, "pooled_dim": pooled, "guidance": guidance}
    return p.add("HarnessRandomConditioning", seed=seed, **c), p.add("HarnessRandomConditioning", seed=seed + 1, **c)


def _path(p, frames):
    kf = json.dumps([{"frame": 0, "x": 0.25, "y": 0.3, "radius": 0.3}, {"frame": frames - 1, "x": 0.75, "y": 0.6,
                                                                          "radius": 0.35}])
    return p.add("GazePath", keyframes=kf, num_frames=frames, width=W, height=H, periphery="1/2 resolution",
                 ring_scale=2.0, feather=0.03)


def _sampler(p, model, pos, neg, lat, steps=2):
    return p.add("KSampler", model=p.out(model), seed=3, steps=steps, cfg=1.0, sampler_name="euler",
                 scheduler="simple", positive=p.out(pos), negative=p.out(neg), latent_image=p.out(lat), denoise=1.0)


def _packing(env, fovea, latent, patch):
    fc = env.pack.fov_core
    T, h, w = latent.shape[2:]
    layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(T, h // patch, w // patch, token_px=16,
                                                             frame_stride=4)))
    return layout, fc.LatentPacking(layout, patch)


def test_hunyuan_video_text_to_video_follows_a_gaze_path(env):
    frames = 9  # 3 latent frames
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["hunyuan_video_t2v"]["name"], weight_dtype="default")
    lat = p.add("EmptyHunyuanLatentVideo", width=W, height=H, length=frames, batch_size=1)
    pos, neg = _conds(p, pooled=768, guidance=6.0)
    path = _path(p, frames)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(path), latent=p.out(lat))
    s = _sampler(p, fm, pos, neg, lat)
    r = run(env, p)
    latent = r[s][0]["samples"]
    assert latent.shape == (1, 16, 3, H // 8, W // 8)
    layout, packing = _packing(env, r[path][0], latent, 2)
    assert not torch.equal(layout.level_map[0], layout.level_map[2]) and len(layout.levels) == 2
    assert packing.is_canonical(latent) and torch.isfinite(latent).all()
    assert r[fm][1].startswith("HunyuanVideo 96x128: ") and f"/{3 * 6 * 8} tokens" in r[fm][1]


def test_hunyuan_video15_text_to_video_decode_and_encode(env):
    """1.5: 32-channel latents at 16x, one latent pixel per token; Foveated Decode gives
    the blended video, Foveated Encode turns it back into a foveated latent."""
    frames = 5  # 2 latent frames
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["hunyuan_video15_t2v"]["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos["hunyuan15_vae"]["name"])
    lat = p.add("EmptyHunyuanVideo15Latent", width=W, height=H, length=frames, batch_size=1)
    pos, neg = _conds(p, pooled=8, guidance=-1.0)  # model_base.HunyuanVideo reads a pooled output; 1.5 ignores it
    path = _path(p, frames)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(path), latent=p.out(lat))
    s = _sampler(p, fm, pos, neg, lat)
    dec = p.add("FoveatedDecode", samples=p.out(s), vae=p.out(v), fovea=p.out(path), margin=2)
    plain = p.add("VAEDecode", samples=p.out(s), vae=p.out(v))
    enc = p.add("FoveatedEncode", pixels=p.out(dec), vae=p.out(v), fovea=p.out(path))
    with env.tiny_hunyuan.hunyuan15_vae_detection_patch():
        r = run(env, p)
    latent = r[s][0]["samples"]
    assert latent.shape == (1, 32, 2, H // 16, W // 16)
    layout, packing = _packing(env, r[path][0], latent, 1)
    assert not torch.equal(layout.level_map[0], layout.level_map[1]) and len(layout.levels) == 2
    assert packing.is_canonical(latent)
    assert r[fm][1].startswith("HunyuanVideo 1.5 96x128: ")
    image, mask = r[dec][0], r[dec][1]
    assert image.shape == r[plain][0].shape == (frames, H, W, 3) and mask.shape == (frames, H, W)
    assert float(mask.amax()) == pytest.approx(1.0) and float(mask.amin()) == 0.0
    # inside the fovea the blend is the fovea's own decode: the 1.5 VAE normalizes per pixel
    # (RMS) but its middle attention spans the whole video, so a crop decode is close to a
    # plain decode, not equal; outside it is the upsampled 1/2 decode
    inside, outside = mask > 0.999, mask == 0
    assert inside.any() and outside.any()
    diff = (image - r[plain][0]).abs()
    assert float(diff[inside].mean()) < 1e-4 and float(diff[inside].max()) < 5e-3
    assert float(diff[outside].mean()) > 0.01
    assert packing.is_canonical(r[enc][0]["samples"]) and r[enc][0]["samples"].shape == latent.shape


def test_hunyuan_video_image_to_video_concat(env):
    """1.0 I2V, HunyuanImageToVideo "v1 (concat)": the start image's latent and the mask are
    concatenated (17 channels) and read at low resolution in the periphery. The start image
    is encoded with the tiny Wan 2.1 VAE: the same latent geometry as HunyuanVideo 1.0's
    VAE (16 channels, 8x, 4x causal in time), which no tiny fixture loads (see tiny_hunyuan)."""
    frames = 9
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["hunyuan_video_i2v"]["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos["wan21_vae"]["name"])
    pos, neg = _conds(p, pooled=768, guidance=6.0)
    img = p.add("EmptyImage", width=W, height=H, batch_size=1, color=0x3080C0)
    i2v = p.add("HunyuanImageToVideo", positive=p.out(pos), vae=p.out(v), width=W, height=H, length=frames,
                batch_size=1, guidance_type="v1 (concat)", start_image=p.out(img))
    path = _path(p, frames)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(path))
    s = p.add("KSampler", model=p.out(fm), seed=3, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple",
              positive=p.out(i2v, 0), negative=p.out(neg), latent_image=p.out(i2v, 1), denoise=1.0)
    r = run(env, p)
    latent = r[s][0]["samples"]
    assert latent.shape == (1, 16, 3, H // 8, W // 8)
    assert _packing(env, r[path][0], latent, 2)[1].is_canonical(latent)


def test_hunyuan_video_replace_guidance_is_a_clear_error(env):
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["hunyuan_video_t2v"]["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos["wan21_vae"]["name"])
    pos, neg = _conds(p, pooled=768, guidance=6.0)
    img = p.add("EmptyImage", width=W, height=H, batch_size=1, color=0x3080C0)
    i2v = p.add("HunyuanImageToVideo", positive=p.out(pos), vae=p.out(v), width=W, height=H, length=5,
                batch_size=1, guidance_type="v2 (replace)", start_image=p.out(img))
    f = p.add("Fovea", x=0.5, y=0.5, radius=0.3, aspect=1.0, rotation=0.0, extra_gazes="[]", width=W, height=H,
              periphery="1/2 resolution", ring_scale=2.0, feather=0.03)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f))
    p.add("KSampler", model=p.out(fm), seed=3, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple",
          positive=p.out(i2v, 0), negative=p.out(neg), latent_image=p.out(i2v, 1), denoise=1.0)
    with pytest.raises(env.harness.PromptExecutionError, match=r"v2 \(replace\)"):
        run(env, p)


def test_interrupted_foveated_run_leaves_no_trace(env):
    """A foveated HunyuanVideo run cancelled mid-sampling: the same loaded model then gives
    the native result bit for bit."""
    frames = 9

    def t2v(p, steps, foveated):
        m = p.add("UNETLoader", unet_name=env.infos["hunyuan_video_t2v"]["name"], weight_dtype="default")
        lat = p.add("EmptyHunyuanLatentVideo", width=W, height=H, length=frames, batch_size=1)
        pos, neg = _conds(p, pooled=768, guidance=6.0)
        if foveated:
            m = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(_path(p, frames)), latent=p.out(lat))
        return _sampler(p, m, pos, neg, lat, steps=steps)

    p = Prompt()
    s_nat = t2v(p, 3, False)
    before = run(env, p)[s_nat][0]["samples"].clone()
    p2 = Prompt()
    t2v(p2, 30, True)
    with pytest.raises(env.harness.PromptInterrupted):
        env.harness.run_prompt(env.handle, p2, on_progress=lambda v, t, n: env.harness.interrupt(env.handle)
                               if v >= 2 else None)
    assert torch.equal(env.harness.run_prompt(env.handle, p)[s_nat][0]["samples"], before)
    assert torch.equal(run(env, p)[s_nat][0]["samples"], before)
