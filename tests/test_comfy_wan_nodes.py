"""Foveated video through ComfyUI's real executor, headless on CPU, with tiny random
checkpoints in the real Wan 2.1 and Wan 2.2 formats: text-to-video following a gaze
path, image-to-video (Wan 2.1 I2V, Wan 2.2 5B), the Wan 2.2 14B experts in two
KSamplerAdvanced, Foveated Decode / Encode of video latents, and the errors."""
import json

import pytest
import torch

from comfy_fixtures.prompts import Prompt

pytestmark = pytest.mark.comfyui
W, H, FRAMES = 128, 96, 9  # 9 video frames = 3 latent frames; 8 x 6 tokens of 16 px


def run(env, prompt):
    return env.harness.run_prompt(env.handle, prompt, clear_cache=True)


def _conds(p, seed=1):
    c = {"n_tokens": 5, "context_dim": 4096, "pooled_dim": 0, "guidance": -1.0}
    return p.add("HarnessRandomConditioning", seed=seed, **c), p.add("HarnessRandomConditioning", seed=seed + 1, **c)


def _path(p, frames=FRAMES, width=W, height=H):
    kf = json.dumps([{"frame": 0, "x": 0.25, "y": 0.3, "radius": 0.3}, {"frame": frames - 1, "x": 0.75, "y": 0.6,
                                                                          "radius": 0.35}])
    return p.add("GazePath", keyframes=kf, num_frames=frames, width=width, height=height,
                 periphery="1/2 resolution", ring_scale=2.0, feather=0.03)


def _sampler(p, model, pos, neg, lat, steps=2):
    return p.add("KSampler", model=p.out(model), seed=3, steps=steps, cfg=1.0, sampler_name="euler",
                 scheduler="simple", positive=p.out(pos), negative=p.out(neg), latent_image=p.out(lat), denoise=1.0)


def _layout(env, fovea, latent, token_px):
    fc = env.pack.fov_core
    T, h, w = latent.shape[2:]
    return fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(T, h // 2, w // 2, token_px=token_px, frame_stride=4)))


def test_text_to_video_follows_a_gaze_path(env):
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["wan21_t2v"]["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos["wan21_vae"]["name"])
    lat = p.add("EmptyHunyuanLatentVideo", width=W, height=H, length=FRAMES, batch_size=1)
    pos, neg = _conds(p)
    path = _path(p)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(path), latent=p.out(lat))
    s = _sampler(p, fm, pos, neg, lat)
    dec = p.add("FoveatedDecode", samples=p.out(s), vae=p.out(v), fovea=p.out(path), margin=2)
    plain = p.add("VAEDecode", samples=p.out(s), vae=p.out(v))
    r = run(env, p)
    latent, fovea = r[s][0]["samples"], r[path][0]
    layout = _layout(env, fovea, latent, 16)
    assert latent.shape == (1, 16, 3, H // 8, W // 8) and not torch.equal(layout.level_map[0], layout.level_map[2])
    assert env.pack.fov_core.LatentPacking(layout, 2).is_canonical(latent)
    image, mask = r[dec][0], r[dec][1]
    assert image.shape == r[plain][0].shape == (FRAMES, H, W, 3)
    assert mask.shape == (FRAMES, H, W)
    assert float(mask.amax()) == pytest.approx(1.0) and float(mask.amin()) == 0.0
    # Wan's VAE normalizes per pixel (RMS over channels) and the fovea is decoded over all
    # frames: in the fovea the blend is the fovea's own decode, equal to a plain decode away
    # from the crop's edge (the decoder sees 2 tokens of margin); outside it is the
    # upsampled low-resolution decode
    inside, outside = mask > 0.999, mask == 0
    assert inside.any() and outside.any()
    diff = (image - r[plain][0]).abs()[inside]
    assert float(diff.mean()) < 1e-4 and float(diff.max()) < 5e-3  # exact but at the crop's edge
    assert float((image - r[plain][0]).abs()[outside].mean()) > 0.01
    assert "Wan" in r[fm][1] and "tokens" in r[fm][1]


def test_image_to_video_wan21_i2v(env):
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["wan21_i2v"]["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos["wan21_vae"]["name"])
    pos, neg = _conds(p)
    img = p.add("EmptyImage", width=W, height=H, batch_size=1, color=0x3080C0)
    i2v = p.add("WanImageToVideo", positive=p.out(pos), negative=p.out(neg), vae=p.out(v), width=W, height=H,
                length=FRAMES, batch_size=1, start_image=p.out(img))
    f = p.add("Fovea", x=0.5, y=0.5, radius=0.3, aspect=1.0, rotation=0.0, extra_gazes="[]", width=W, height=H,
              periphery="1/2 resolution", ring_scale=2.0, feather=0.03)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f))
    s = p.add("KSampler", model=p.out(fm), seed=3, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple",
              positive=p.out(i2v, 0), negative=p.out(i2v, 1), latent_image=p.out(i2v, 2), denoise=1.0)
    r = run(env, p)
    latent = r[s][0]["samples"]
    assert latent.shape == (1, 16, 3, H // 8, W // 8)
    assert env.pack.fov_core.LatentPacking(_layout(env, r[f][0], latent, 16), 2).is_canonical(latent)


def test_wan22_14b_experts_share_one_fovea_in_two_ksampler_advanced(env):
    """ComfyUI's own Wan 2.2 14B template: the high-noise expert runs the first steps and
    hands its noisy latent to the low-noise expert; one FOVEA patches both."""
    p = Prompt()
    hi = p.add("UNETLoader", unet_name=env.infos["wan22_t2v_14b_high"]["name"], weight_dtype="default")
    lo = p.add("UNETLoader", unet_name=env.infos["wan22_t2v_14b_low"]["name"], weight_dtype="default")
    lat = p.add("EmptyHunyuanLatentVideo", width=W, height=H, length=FRAMES, batch_size=1)
    pos, neg = _conds(p)
    path = _path(p)
    fh = p.add("ApplyFoveation", model=p.out(hi), fovea=p.out(path))
    fl = p.add("ApplyFoveation", model=p.out(lo), fovea=p.out(path))
    common = dict(noise_seed=4, steps=4, cfg=1.0, sampler_name="euler", scheduler="simple",
                  positive=p.out(pos), negative=p.out(neg))
    s1 = p.add("KSamplerAdvanced", model=p.out(fh), add_noise="enable", latent_image=p.out(lat), start_at_step=0,
               end_at_step=2, return_with_leftover_noise="enable", **common)
    s2 = p.add("KSamplerAdvanced", model=p.out(fl), add_noise="disable", latent_image=p.out(s1), start_at_step=2,
               end_at_step=4, return_with_leftover_noise="disable", **common)
    r = run(env, p)
    layout = _layout(env, r[path][0], r[s2][0]["samples"], 16)
    pk = env.pack.fov_core.LatentPacking(layout, 2)
    assert pk.is_canonical(r[s1][0]["samples"]) and pk.is_canonical(r[s2][0]["samples"])
    assert not torch.equal(r[s1][0]["samples"], r[s2][0]["samples"])


def test_wan22_5b_image_to_video_decode_and_encode(env):
    """Wan 2.2 TI2V 5B: 48-channel latents at 16x, 32 px tokens, the first latent frame
    clean (per-frame timesteps) and kept from the start image by the noise mask, so Foveated
    Decode decodes it at full resolution; Foveated Encode on its video."""
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["wan22_ti2v_5b"]["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos["wan22_vae"]["name"])
    pos, neg = _conds(p)
    img = p.add("EmptyImage", width=W, height=H, batch_size=1, color=0x3080C0)
    lat = p.add("Wan22ImageToVideoLatent", vae=p.out(v), width=128, height=128, length=FRAMES, batch_size=1,
                start_image=p.out(img))
    f = p.add("Fovea", x=0.4, y=0.5, radius=0.35, aspect=1.0, rotation=0.0, extra_gazes="[]", width=128,
              height=128, periphery="1/2 resolution", ring_scale=2.0, feather=0.03)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f), latent=p.out(lat))
    s = _sampler(p, fm, pos, neg, lat)
    dec = p.add("FoveatedDecode", samples=p.out(s), vae=p.out(v), fovea=p.out(f), margin=1)
    plain = p.add("VAEDecode", samples=p.out(s), vae=p.out(v))
    enc = p.add("FoveatedEncode", pixels=p.out(dec), vae=p.out(v), fovea=p.out(f))
    with env.tiny_wan.wan22_vae_detection_patch():
        r = run(env, p)
    latent = r[s][0]["samples"]
    assert latent.shape == (1, 48, 3, 8, 8)  # 128 px / 16, 4 x 4 tokens of 32 px
    assert torch.equal(latent[:, :, 0], r[lat][0]["samples"][:, :, 0])  # the start image, bit for bit
    layout = _layout(env, r[f][0], latent, 32)
    assert len(layout.levels) == 2
    first = torch.zeros(layout.shape, dtype=torch.bool)
    first[0] = True
    assert env.pack.fov_core.LatentPacking(layout.with_full_resolution(first), 2).is_canonical(latent)
    assert r[dec][0].shape == (FRAMES, 128, 128, 3)
    assert torch.allclose(r[dec][0][0], r[plain][0][0], atol=1e-4)  # video frame 0 = latent frame 0, full res
    assert env.pack.fov_core.LatentPacking(layout, 2).is_canonical(r[enc][0]["samples"])
    assert "Wan 2.2 5B" in r[fm][1]


def test_a_path_for_another_frame_count_is_a_clear_error(env):
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["wan21_t2v"]["name"], weight_dtype="default")
    lat = p.add("EmptyHunyuanLatentVideo", width=W, height=H, length=13, batch_size=1)
    pos, neg = _conds(p)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(_path(p, frames=FRAMES)))
    _sampler(p, fm, pos, neg, lat)
    with pytest.raises(env.harness.PromptExecutionError, match=r"9 video frames.*13 frames"):
        run(env, p)


def test_a_video_fovea_on_an_image_model_is_a_clear_error(env):
    from comfy_fixtures.prompts import base, ksampler

    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_dev")
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(_path(p)))
    ksampler(p, fm, pos, neg, lat)
    with pytest.raises(env.harness.PromptExecutionError, match="single image"):
        run(env, p)
