"""The tiny Wan checkpoints of comfy_fixtures/tiny_wan.py against the real ComfyUI:
each file is detected as the right family by ComfyUI's own loaders, every tensor lands
on a module parameter of the same shape, and one forward / VAE encode+decode runs with
the documented shapes. Independent of the pack's adapters (which do not support Wan)."""
from types import SimpleNamespace

import pytest
import torch

from comfy_fixtures import tiny_wan

pytestmark = pytest.mark.comfyui

LATENT_T, LATENT_HW = 3, 8   # a 1 x C x 3 x 8 x 8 latent: 3 x 4 x 4 = 48 tokens
TEXT_LEN = 7


@pytest.fixture(scope="module")
def comfy(env):
    """ComfyUI's modules, imported once ComfyUI is booted in-process (conftest env)."""
    import comfy.latent_formats
    import comfy.ldm.wan.model
    import comfy.ldm.wan.vae
    import comfy.ldm.wan.vae2_2
    import comfy.model_base
    import comfy.sd
    import comfy.supported_models
    import comfy.utils

    return SimpleNamespace(sd=comfy.sd, utils=comfy.utils, model_base=comfy.model_base,
                           supported_models=comfy.supported_models, latent_formats=comfy.latent_formats,
                           wan_model=comfy.ldm.wan.model, wan_vae=comfy.ldm.wan.vae, wan_vae22=comfy.ldm.wan.vae2_2)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------
# Diffusion models
# ---------------------------------------------------------------------------------------

# id -> (writer, kwargs, latent format, has img_emb)
DIT_CASES = {
    "wan21_t2v": (tiny_wan.write_wan21_t2v_dit, {}, "Wan21", False),
    "wan21_t2v_dim256_2blocks": (tiny_wan.write_wan21_t2v_dit, {"dim": 256, "ffn_dim": 320, "num_layers": 2},
                                 "Wan21", False),
    "wan21_i2v": (tiny_wan.write_wan21_i2v_dit, {}, "Wan21", True),
    "wan21_flf2v": (tiny_wan.write_wan21_flf2v_dit, {}, "Wan21", True),
    "wan22_ti2v_5b": (tiny_wan.write_wan22_ti2v_5b_dit, {}, "Wan22", False),
    "wan22_t2v_14b_high": (tiny_wan.write_wan22_14b_dit, {"expert": "high_noise"}, "Wan21", False),
    "wan22_t2v_14b_low": (tiny_wan.write_wan22_14b_dit, {"expert": "low_noise"}, "Wan21", False),
    "wan22_i2v_14b_high": (tiny_wan.write_wan22_14b_dit, {"expert": "high_noise", "task": "i2v"}, "Wan21", False),
}


def _load_dit(comfy, info):
    mp = comfy.sd.load_diffusion_model(info["path"])
    return mp, mp.model, mp.model.diffusion_model


def _assert_every_tensor_loaded(comfy, model, path):
    """Every tensor in the file maps onto a module parameter of the same shape (no
    missing or unexpected keys: ComfyUI loads with strict=False and only logs them),
    and the module holds the file's values."""
    sd = model.model_config.process_unet_state_dict(comfy.utils.load_torch_file(path))
    msd = model.diffusion_model.state_dict()
    assert set(sd) == set(msd), f"file-only: {sorted(set(sd) - set(msd))}, module-only: {sorted(set(msd) - set(sd))}"
    bad = [k for k in sd if sd[k].shape != msd[k].shape]
    assert not bad, [(k, tuple(sd[k].shape), tuple(msd[k].shape)) for k in bad]
    assert all(torch.equal(sd[k].float(), msd[k].float()) for k in sd), "weights not loaded"


@pytest.mark.parametrize("case", list(DIT_CASES))
def test_dit_detected_loaded_and_runs(comfy, tmp_path, case):
    writer, kwargs, latent_format, has_clip = DIT_CASES[case]
    info = writer(tmp_path / f"{case}.safetensors", **kwargs)
    _, m, dm = _load_dit(comfy, info)

    assert type(dm) is comfy.wan_model.WanModel
    assert type(m) is getattr(comfy.model_base, info["model_base"])
    assert type(m.model_config) is getattr(comfy.supported_models, info["supported_model"])
    assert type(m.latent_format) is getattr(comfy.latent_formats, latent_format)
    assert m.latent_format.latent_channels == info["latent_channels"]
    assert m.image_to_video is info["image_to_video"]
    uc = m.model_config.unet_config
    derived = {"dim": info["dim"], "num_heads": info["dim"] // 128, "ffn_dim": info["ffn_dim"],
               "num_layers": info["num_layers"], "in_dim": info["in_dim"], "out_dim": info["out_dim"],
               "model_type": info["model_type"], "patch_size": (1, 2, 2)}
    assert {k: uc[k] for k in derived} == derived
    assert uc.get("flf_pos_embed_token_number") == info["flf_pos_embed_token_number"]
    # not read from the tensors: ComfyUI keeps WanModel's defaults
    assert "text_dim" not in uc and dm.text_dim == tiny_wan.WAN_TEXT_DIM == 4096
    assert (dm.img_emb is not None) is has_clip
    _assert_every_tensor_loaded(comfy, m, info["path"])

    x = _randn(1, info["in_dim"], LATENT_T, LATENT_HW, LATENT_HW, seed=1)
    ctx = _randn(1, TEXT_LEN, tiny_wan.WAN_TEXT_DIM, seed=2)
    with torch.no_grad():
        out = dm(x, torch.full((1,), 0.5), ctx)
    assert out.shape == (1, info["out_dim"], LATENT_T, LATENT_HW, LATENT_HW)
    assert torch.isfinite(out).all() and out.std() > 1e-3


def test_wan21_i2v_concat_channels_and_clip_tokens(comfy, tmp_path):
    """I2V in_dim 36 = 16 noise + cat(4 mask, 16 image latent) built by ComfyUI's own
    concat_cond; CLIP-vision tokens (257 x 1280) are optional and change the output."""
    info = tiny_wan.write_wan21_i2v_dit(tmp_path / "i2v.safetensors")
    _, m, dm = _load_dit(comfy, info)
    shape = (1, 16, LATENT_T, LATENT_HW, LATENT_HW)
    noise, image = _randn(*shape, seed=1), _randn(*shape, seed=2)
    mask = torch.ones(1, 1, LATENT_T, LATENT_HW, LATENT_HW)
    mask[:, :, 0] = 0.0  # WanImageToVideo: the start frame's latent frame is kept
    ctx = _randn(1, TEXT_LEN, tiny_wan.WAN_TEXT_DIM, seed=3)
    clip_tokens = _randn(1, tiny_wan.WAN_CLIP_TOKENS, tiny_wan.WAN_CLIP_DIM, seed=4)
    clip_out = SimpleNamespace(penultimate_hidden_states=clip_tokens)  # what a ClipVisionOutput carries
    conds = m.extra_conds(noise=noise, device=torch.device("cpu"), concat_latent_image=image, concat_mask=mask,
                          cross_attn=ctx, clip_vision_output=clip_out)
    c_concat = conds["c_concat"].cond
    assert c_concat.shape == (1, 20, LATENT_T, LATENT_HW, LATENT_HW)
    assert torch.equal(c_concat[:, :4], (1.0 - mask).repeat(1, 4, 1, 1, 1))
    assert torch.allclose(c_concat[:, 4:], m.process_latent_in(image))
    clip_fea = conds["clip_fea"].cond
    assert clip_fea.shape == (1, 257, 1280)
    sigma = torch.full((1,), 0.7)
    with torch.no_grad():
        with_clip = m.apply_model(noise, sigma, c_concat=c_concat, c_crossattn=ctx, clip_fea=clip_fea)
        without_clip = m.apply_model(noise, sigma, c_concat=c_concat, c_crossattn=ctx)
    for out in (with_clip, without_clip):
        assert out.shape == shape and torch.isfinite(out).all()
    assert (with_clip - without_clip).abs().max() > 1e-4


def test_wan21_flf2v_takes_two_images_of_clip_tokens(comfy, tmp_path):
    info = tiny_wan.write_wan21_flf2v_dit(tmp_path / "flf2v.safetensors")
    _, m, dm = _load_dit(comfy, info)
    assert dm.img_emb.emb_pos.shape == (1, 514, 1280)
    x = _randn(1, 36, LATENT_T, LATENT_HW, LATENT_HW, seed=1)
    ctx = _randn(1, TEXT_LEN, 4096, seed=2)
    clip_fea = _randn(1, 2 * 257, 1280, seed=3)  # WanFirstLastFrameToVideo: start and end tokens concatenated
    with torch.no_grad():
        out = dm(x, torch.full((1,), 0.5), ctx, clip_fea=clip_fea)
        dm.img_emb.emb_pos.data.zero_()
        out_no_pos = dm(x, torch.full((1,), 0.5), ctx, clip_fea=clip_fea)
    assert out.shape == (1, 16, LATENT_T, LATENT_HW, LATENT_HW) and torch.isfinite(out).all()
    assert (out - out_no_pos).abs().max() > 1e-5, "emb_pos is not used"


def test_wan22_ti2v_5b_clean_first_frame_by_timestep(comfy, tmp_path):
    """TI2V 5B: no concat channels; a denoise_mask gives latent frame 0 timestep 0
    (model_base.WAN22.process_timestep), one timestep per latent frame."""
    info = tiny_wan.write_wan22_ti2v_5b_dit(tmp_path / "ti2v.safetensors")
    _, m, dm = _load_dit(comfy, info)
    x = _randn(1, 48, LATENT_T, LATENT_HW, LATENT_HW, seed=1)
    ctx = _randn(1, TEXT_LEN, 4096, seed=2)
    assert m.concat_cond(noise=x, device=torch.device("cpu")) is None
    mask = torch.ones(1, 1, LATENT_T, LATENT_HW, LATENT_HW)
    mask[:, :, 0] = 0.0
    t = m.process_timestep(torch.full((1,), 900.0), x=x, denoise_mask=mask)
    assert t.shape == (1, LATENT_T) and t[0, 0] == 0 and torch.all(t[0, 1:] == 900.0)
    sigma = torch.full((1,), 0.9)
    with torch.no_grad():
        masked = m.apply_model(x, sigma, c_crossattn=ctx, denoise_mask=mask)
        plain = m.apply_model(x, sigma, c_crossattn=ctx)
    assert masked.shape == x.shape and torch.isfinite(masked).all()
    assert (masked - plain).abs().max() > 1e-4


def test_wan22_14b_experts_and_i2v(comfy, tmp_path):
    """The A14B high- and low-noise experts share every key and shape (the Wan 2.1 14B
    format) but not their weights; the A14B I2V format (in_dim 36, no img_emb) is a
    WAN21_T2V whose concat_cond still builds 4 mask + 16 image-latent channels."""
    high = tiny_wan.write_wan22_14b_dit(tmp_path / "high.safetensors", expert="high_noise")
    low = tiny_wan.write_wan22_14b_dit(tmp_path / "low.safetensors", expert="low_noise")
    sd_h, sd_l = (comfy.utils.load_torch_file(i["path"]) for i in (high, low))
    assert {k: v.shape for k, v in sd_h.items()} == {k: v.shape for k, v in sd_l.items()}
    assert not torch.equal(sd_h["blocks.0.self_attn.q.weight"], sd_l["blocks.0.self_attn.q.weight"])

    info = tiny_wan.write_wan22_14b_dit(tmp_path / "i2v_low.safetensors", expert="low_noise", task="i2v")
    _, m, dm = _load_dit(comfy, info)
    assert type(m.model_config) is comfy.supported_models.WAN21_T2V and m.image_to_video is False
    assert dm.patch_embedding.weight.shape[1] == 36 and dm.img_emb is None
    shape = (1, 16, LATENT_T, LATENT_HW, LATENT_HW)
    noise, image = _randn(*shape, seed=1), _randn(*shape, seed=2)
    cpu = torch.device("cpu")
    assert m.concat_cond(noise=noise, device=cpu).shape == (1, 20, LATENT_T, LATENT_HW, LATENT_HW)
    c_concat = m.concat_cond(noise=noise, device=cpu, concat_latent_image=image,
                             concat_mask=torch.zeros(1, 1, LATENT_T, LATENT_HW, LATENT_HW))
    assert c_concat.shape == (1, 20, LATENT_T, LATENT_HW, LATENT_HW)
    assert torch.equal(c_concat[:, :4], torch.ones(1, 4, LATENT_T, LATENT_HW, LATENT_HW))
    with torch.no_grad():
        out = m.apply_model(noise, torch.full((1,), 0.7), c_concat=c_concat,
                            c_crossattn=_randn(1, TEXT_LEN, 4096, seed=3))
    assert out.shape == shape and torch.isfinite(out).all()


def test_dit_dim_must_be_a_multiple_of_the_head_dim():
    with pytest.raises(ValueError, match="multiple of 128"):
        tiny_wan.write_wan21_t2v_dit("unused.safetensors", dim=64)


# ---------------------------------------------------------------------------------------
# VAEs
# ---------------------------------------------------------------------------------------

def _vae_state_dicts_match(comfy, vae, path):
    sd = comfy.utils.load_torch_file(path)
    msd = vae.first_stage_model.state_dict()
    assert set(sd) == set(msd), f"file-only: {sorted(set(sd) - set(msd))}, module-only: {sorted(set(msd) - set(sd))}"
    bad = [k for k in sd if sd[k].shape != msd[k].shape]
    assert not bad, [(k, tuple(sd[k].shape), tuple(msd[k].shape)) for k in bad]
    assert all(torch.equal(sd[k].float(), msd[k].float()) for k in sd), "weights not loaded"


def _check_video_vae(vae, latent_channels, spatial):
    """Encode + decode tiny videos through ComfyUI's VAE.encode / VAE.decode (as the
    executor runs nodes: inference mode) and check the causal temporal mapping:
    latent frame 0 = video frame 0 alone, each later latent frame = the next 4 frames."""
    for f in range(1, 14):
        assert vae.downscale_ratio[0](f) == tiny_wan.latent_frames(f)
        assert vae.upscale_ratio[0](tiny_wan.latent_frames(f)) == tiny_wan.video_frames(tiny_wan.latent_frames(f))
    assert vae.downscale_ratio[1:] == (spatial, spatial) and vae.upscale_ratio[1:] == (spatial, spatial)
    g = torch.Generator().manual_seed(5)
    video = torch.rand(5, 64, 64, 3, generator=g)
    with torch.inference_mode():
        z = vae.encode(video)
        decoded = vae.decode(z)
        z_image = vae.encode(video[:1])
    h = 64 // spatial
    assert z.shape == (1, latent_channels, 2, h, h) and z_image.shape == (1, latent_channels, 1, h, h)
    assert torch.isfinite(z).all() and z.std() > 1e-3
    assert decoded.shape == (1, 5, 64, 64, 3)
    assert torch.isfinite(decoded).all() and decoded.std() > 1e-3
    assert torch.allclose(z_image[:, :, 0], z[:, :, 0], atol=1e-5), "an image encodes to the video's first latent frame"

    # causality, at 32 x 32 to stay cheap
    small = video[:, :32, :32].clone()
    later = small.clone()
    later[1:] = torch.rand(4, 32, 32, 3, generator=g)
    h = 32 // spatial
    with torch.inference_mode():
        z, z_later = vae.encode(small), vae.encode(later)
        three = vae.decode(torch.randn(1, latent_channels, 3, h, h, generator=g))
        decoded = vae.decode(z)
        z_changed = z.clone()
        z_changed[:, :, 1] += 1.0
        decoded_changed = vae.decode(z_changed)
    assert three.shape == (1, tiny_wan.video_frames(3), 32, 32, 3) == (1, 9, 32, 32, 3)
    assert torch.allclose(z_later[:, :, 0], z[:, :, 0], atol=1e-5), "latent frame 0 depends on video frames 1-4"
    assert (z_later[:, :, 1] - z[:, :, 1]).abs().max() > 1e-3, "latent frame 1 ignores video frames 1-4"
    assert torch.allclose(decoded_changed[:, 0], decoded[:, 0], atol=1e-5), "video frame 0 depends on latent frame 1"
    assert (decoded_changed[:, 1:] - decoded[:, 1:]).abs().max() > 1e-3


def test_wan21_vae(comfy, tmp_path, monkeypatch):
    configs = []
    original = comfy.wan_vae.WanVAE

    def recorder(**cfg):  # records the ddconfig ComfyUI derives, builds ComfyUI's own class
        configs.append(dict(cfg))
        return original(**cfg)

    monkeypatch.setattr(comfy.wan_vae, "WanVAE", recorder)
    info = tiny_wan.write_wan21_vae(tmp_path / "wan_2.1_vae.safetensors")
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(info["path"]))
    vae.throw_exception_if_invalid()
    assert type(vae.first_stage_model) is original
    assert len(configs) == 1 and configs[0]["dim"] == info["dim"] == 8  # read from decoder.head.0.gamma
    assert configs[0]["z_dim"] == 16 and configs[0]["temperal_downsample"] == [False, True, True]
    assert vae.latent_channels == 16 and vae.latent_dim == 3
    _vae_state_dicts_match(comfy, vae, info["path"])
    _check_video_vae(vae, 16, 8)
    # at the release width (96) the writer's keys and shapes are exactly ComfyUI's module
    with torch.device("meta"):
        ref = original(**{**configs[0], "dim": 96})
    assert {k: tuple(v.shape) for k, v in ref.state_dict().items()} == tiny_wan.wan21_vae_shapes(dim=96)


def test_wan22_vae_tiny_needs_the_patch(comfy, tmp_path):
    info = tiny_wan.write_wan22_vae(tmp_path / "wan2.2_vae.safetensors")
    assert info["needs_detection_patch"]
    sd = comfy.utils.load_torch_file(info["path"])
    with pytest.raises(RuntimeError, match="size mismatch"):  # ComfyUI builds dim 160 / dec_dim 256
        comfy.sd.VAE(sd=dict(sd))
    init_before, cls_before = comfy.sd.VAE.__init__, comfy.wan_vae22.WanVAE
    with tiny_wan.wan22_vae_detection_patch() as configs:
        vae = comfy.sd.VAE(sd=sd)
    assert comfy.sd.VAE.__init__ is init_before and comfy.wan_vae22.WanVAE is cls_before  # restored
    assert len(configs) == 1 and configs[0]["dim"] == 160 and configs[0]["z_dim"] == 48
    vae.throw_exception_if_invalid()
    fsm = vae.first_stage_model
    assert type(fsm) is comfy.wan_vae22.WanVAE
    assert fsm.dim == 8 and fsm.decoder.dim == 8
    assert vae.latent_channels == 48 and vae.latent_dim == 3
    _vae_state_dicts_match(comfy, vae, info["path"])
    _check_video_vae(vae, 48, 16)


def test_wan22_vae_native_widths_match_comfyui(comfy, tmp_path):
    """wan22_vae_shapes() (the native widths) are exactly the keys and shapes of the module
    ComfyUI builds unaided (ddconfig captured from a real load; compared on the meta device)."""
    info = tiny_wan.write_wan22_vae(tmp_path / "tiny.safetensors")
    with tiny_wan.wan22_vae_detection_patch() as configs:
        comfy.sd.VAE(sd=comfy.utils.load_torch_file(info["path"]))
    with torch.device("meta"):
        ref = comfy.wan_vae22.WanVAE(**configs[0])
    native = tiny_wan.wan22_vae_shapes()
    assert {k: tuple(v.shape) for k, v in ref.state_dict().items()} == native
    assert sum(torch.Size(s).numel() for s in native.values()) > 700e6  # why the default is the tiny one
