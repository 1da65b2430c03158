"""Tiny random-initialised Wan checkpoints in the real on-disk key formats.

Every writer produces a ``.safetensors`` file whose keys and tensor shapes follow the
format of the real release (the Wan-AI "original" naming, which is also the naming of
Comfy-Org's repackaged ``split_files/diffusion_models`` and ``split_files/vae`` files),
scaled down so that ComfyUI's own loaders (``comfy.sd.load_diffusion_model`` and
``comfy.sd.VAE``) detect the right model family and a forward pass runs on CPU in a
fraction of a second. Companion of tiny_models.py (FLUX / Chroma); same conventions.

This module imports only torch and safetensors, so it can be imported (and the files
written) where ComfyUI is absent. The ComfyUI-side helper ``wan22_vae_detection_patch``
imports ComfyUI lazily.

Video geometry (all Wan diffusion models)
-----------------------------------------
Latents are 5-D: (B, C, T, H, W). The diffusion model patchifies with patch_size
(1, 2, 2) (hard-coded by ComfyUI's detection): one token per latent frame and per
2 x 2 latent pixels. The VAEs are causal in time with a 4x temporal factor:
latent frame 0 holds video frame 0 alone, every later latent frame holds the next 4
video frames, so T latent frames <-> 1 + 4 (T - 1) video frames (5 -> 2, 9 -> 3, 81 -> 21),
and ComfyUI's encoder drops trailing frames beyond the last 4k + 1.
    Wan 2.1 (and Wan 2.2 14B): 16 latent channels (latent_formats.Wan21), VAE 8x
        spatial, so one token covers 16 x 16 video pixels (8 x patch 2).
    Wan 2.2 TI2V 5B: 48 latent channels (latent_formats.Wan22), VAE 16x spatial
        (a 2x2 pixel patchify inside the VAE, then 8x), so one token covers 32 x 32 px.

What ComfyUI derives from the tensors (comfy/model_detection.py, detect_unet_config)
--------------------------------------------------------------------------------
Detected as image_model "wan2.1" when ``head.modulation`` is present (every Wan DiT).
Derived: dim = head.modulation.shape[-1]; out_dim = head.head.weight.shape[0] // 4
(the 1x2x2 patch); in_dim = patch_embedding.weight.shape[1]; ffn_dim =
blocks.0.ffn.0.weight.shape[0]; num_layers = number of blocks.N;
model_type "i2v" if ``img_emb.proj.0.bias`` is present, else "t2v";
flf_pos_embed_token_number = img_emb.emb_pos.shape[1] (FLF2V only).
Hard-coded: num_heads = dim // 128 (so the head dim is 128 and dim must be a multiple
of 128: the smallest Wan ComfyUI builds has dim 128 and one head; 64 gives 0 heads),
patch_size (1, 2, 2), freq_dim 256, qk_norm, cross_attn_norm (norm3 has weight+bias),
eps 1e-6, window (-1, -1). NOT read from the tensors and therefore fixed at the
WanModel defaults: text_dim 4096 (the UMT5-XXL width: the text context fed to even the
tiniest Wan must be 4096 wide), text_len 512, and the CLIP-vision projection input
1280 (img_emb.proj is LayerNorm(1280), Linear(1280, 1280), GELU, Linear(1280, dim),
LayerNorm(dim): CLIP ViT-H/14 penultimate tokens, 257 per image).
The supported model is picked by matching the derived config:
    WAN21_T2V   model_type t2v (any in_dim, out_dim != 48) -> model_base.WAN21, Wan21 latents
    WAN21_I2V   model_type i2v and in_dim 36               -> model_base.WAN21(image_to_video=True)
    WAN22_T2V   model_type t2v and out_dim 48               -> model_base.WAN22 (TI2V 5B), Wan22 latents
Real sizes: 2.1 1.3B dim 1536 / ffn 8960 / 30 layers (12 heads); 2.1 and 2.2 14B dim 5120
/ ffn 13824 / 40 layers (40 heads); 2.2 5B dim 3072 / ffn 14336 / 30 layers (24 heads).
The tiny default is dim 128 (1 head), ffn 256, 1 block: ~0.9M parameters (3.6 MB), of
which 0.5M are the hard-coded 4096-wide text_embedding.0; I2V adds ~1.85M for the
1280-wide img_emb (mostly its 1280 x 1280 Linear), FLF2V another 0.66M for emb_pos.

Formats:
    Wan 2.1 T2V (1.3B / 14B): in_dim 16, out_dim 16.
    Wan 2.1 I2V (480p / 720p 14B): in_dim 36 = 16 noise + 4 mask + 16 image-latent
        channels (model_base.WAN21.concat_cond builds the 20 extra channels as
        cat(mask, image)), img_emb, and cross-attention k_img / v_img / norm_k_img.
    Wan 2.1 FLF2V 14B: the I2V format plus ``img_emb.emb_pos`` (1, 514, 1280): two
        images' 257 CLIP tokens. Same supported model (WAN21_I2V); the only difference is
        flf_pos_embed_token_number 514.
    Wan 2.2 TI2V 5B: in_dim 48, out_dim 48, no img_emb. Image conditioning is not a
        channel concat: the clean first latent frame gets timestep 0 through
        ``denoise_mask`` (model_base.WAN22.process_timestep gives one timestep per
        latent frame).
    Wan 2.2 A14B T2V: the Wan 2.1 14B T2V format (in 16, out 16) -> WAN21_T2V /
        model_base.WAN21, in two experts (high-noise and low-noise) of identical shape.
    Wan 2.2 A14B I2V: in_dim 36 but NO img_emb (no CLIP vision), so it is detected as
        model_type "t2v" -> WAN21_T2V / model_base.WAN21(image_to_video=False), whose
        concat_cond still builds the 20 extra channels (4 mask + 16 image latent).

CLIP vision (Wan 2.1 I2V / FLF2V)
---------------------------------
No tiny CLIP-vision checkpoint is written: comfy/clip_vision.py picks the whole
architecture from a bundled JSON config by counting layers (ViT-H needs
``vision_model.encoder.layers.30.*``; its config is 32 layers x 1280, ~632M parameters,
~2.5 GB fp32) and reads no width from the tensors, so nothing small loads. Tests do not
need one: WanImageToVideo / WanFirstLastFrameToVideo take clip_vision_output optionally,
and the diffusion model accepts clip_fea=None (the I2V cross-attention then uses the
text tokens for both its text and image branches) or a random (B, 257 or 514, 1280)
``clip_fea`` tensor, which is what a ClipVisionOutput.penultimate_hidden_states is.

VAEs (comfy/sd.py, VAE.__init__, the ``decoder.middle.0.residual.0.gamma`` branch)
-------------------------------------------------------------------------------
Both are causal 3-D conv VAEs (RMS norms, no GroupNorm, so any width >= 1 builds) with
dim_mult [1, 2, 4, 4], num_res_blocks 2, no attention except one single-head attention
block in each middle, and temperal_downsample [False, True, True] (the first 2x spatial
stage has no temporal step) -- all hard-coded by ComfyUI.
Wan 2.1 VAE (no ``decoder.upsamples.0.upsamples.0.residual.2.weight``):
    z 16, 8x spatial, 4x temporal. Width derived: dim = decoder.head.0.gamma.shape[0]
    (used for the encoder too); image_channels = encoder.conv1.weight.shape[1] (3) and
    conv_out_channels = decoder.head.2.weight.shape[0] (3). Real dim 96 (~127M params);
    tiny default dim 8 (~0.9M params, 3.7 MB). Loads natively at any width.
Wan 2.2 VAE (that key present): z 48, 16x spatial (2x2 patchify to 12 channels, then
    8x), 4x temporal. NOTHING is read from the tensors: encoder dim 160 and decoder
    dim 256 (WanVAE's dec_dim default) are hard-coded (~705M params, 2.8 GB fp32; the
    decoder's upsample convs keep their width, unlike 2.1's which halve it; their shapes:
    ``wan22_vae_shapes()``). ``write_wan22_vae`` writes a tiny one (encoder and decoder
    dim 8, ~1.05M params) that ComfyUI detects as the Wan 2.2 VAE but only instantiates
    inside ``wan22_vae_detection_patch()`` (which reads the two widths from encoder.conv1 /
    decoder.conv1).
ComfyUI's VAE.encode takes (frames, H, W, 3) in [0, 1] and returns (1, C, T, H/s, W/s);
VAE.decode returns (1, frames, H, W, 3); vae.upscale_ratio[0](T) == 1 + 4 (T - 1) and
vae.downscale_ratio[0](F) == (F + 3) // 4.

Use
---
    from comfy_fixtures import tiny_wan
    infos = tiny_wan.write_all(tmp_path / "models")        # ~0.2 s, ~55 MB
    patcher = comfy.sd.load_diffusion_model(infos["wan21_t2v"]["path"])
    dm = patcher.model.diffusion_model                      # comfy.ldm.wan.model.WanModel
    out = dm(x, t, ctx)     # x: (B, 16, T, H, W); t: (B,); ctx: (B, L, 4096)
    with tiny_wan.wan22_vae_detection_patch():
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(infos["wan22_vae"]["path"]))
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

__all__ = [
    "WAN_HEAD_DIM",
    "WAN_TEXT_DIM",
    "WAN_CLIP_DIM",
    "WAN_CLIP_TOKENS",
    "WAN_FLF_TOKENS",
    "WAN_PATCH",
    "write_wan21_t2v_dit",
    "write_wan21_i2v_dit",
    "write_wan21_flf2v_dit",
    "write_wan22_ti2v_5b_dit",
    "write_wan22_14b_dit",
    "write_wan21_vae",
    "write_wan22_vae",
    "wan21_vae_shapes",
    "wan22_vae_shapes",
    "wan22_vae_detection_patch",
    "video_frames",
    "latent_frames",
    "write_all",
]

WAN_HEAD_DIM = 128     # ComfyUI: num_heads = dim // 128
WAN_FREQ_DIM = 256     # hard-coded freq_dim (sinusoidal timestep width)
WAN_TEXT_DIM = 4096    # text_dim is not read from the tensors: the WanModel default (UMT5-XXL)
WAN_CLIP_DIM = 1280    # img_emb input width, fixed in WanModel (CLIP ViT-H/14 penultimate)
WAN_CLIP_TOKENS = 257  # CLIP ViT-H/14 tokens per 224 px image (1 class + 16 x 16)
WAN_FLF_TOKENS = 2 * WAN_CLIP_TOKENS  # FLF2V: first and last frame
WAN_PATCH = (1, 2, 2)  # hard-coded by ComfyUI's detection

# Wan 2.2 VAE widths hard-coded by ComfyUI (comfy/sd.py passes dim 160, WanVAE's dec_dim default 256)
WAN22_VAE_NATIVE_DIM = 160
WAN22_VAE_NATIVE_DEC_DIM = 256
WAN21_VAE_REAL_DIM = 96  # read from the tensors; the real release's width

_VAE_DIM_MULT = (1, 2, 4, 4)            # fixed by ComfyUI for both Wan VAEs
_VAE_RES_BLOCKS = 2                     # fixed by ComfyUI
_VAE_TEMPORAL_DOWN = (False, True, True)  # fixed by ComfyUI (decoder: reversed)


def latent_frames(video_frames_: int) -> int:
    """Latent frames ComfyUI's Wan VAEs encode ``video_frames_`` into: (F + 3) // 4
    (the encoder keeps the first 1 + 4 k frames)."""
    return max(0, (video_frames_ + 3) // 4)


def video_frames(latent_frames_: int) -> int:
    """Video frames ``latent_frames_`` decode to: 1 + 4 (T - 1)."""
    return max(0, 4 * latent_frames_ - 3)


class _SD:
    """Collects tensors drawn from one seeded generator, in insertion order.
    meta=True records shapes only (tensors on the meta device, nothing allocated)."""

    def __init__(self, seed: int, std: float, meta: bool = False):
        self.g = torch.Generator().manual_seed(seed)
        self.std = std
        self.meta = meta
        self.sd: dict[str, torch.Tensor] = {}

    def rand(self, key, *shape, std=None):
        if self.meta:
            self.sd[key] = torch.empty(*shape, device="meta")
            return
        t = torch.randn(*shape, generator=self.g, dtype=torch.float32)
        self.sd[key] = t.mul_(self.std if std is None else std)

    def const(self, key, shape, value):
        self.sd[key] = torch.empty(*shape, device="meta") if self.meta else torch.full(shape, float(value))

    def linear(self, prefix, out_f, in_f, std=None):
        self.rand(prefix + ".weight", out_f, in_f, std=std)
        self.rand(prefix + ".bias", out_f, std=0.01 if std is None else std)

    def layer_norm(self, prefix, n):
        self.const(prefix + ".weight", (n,), 1.0)
        self.const(prefix + ".bias", (n,), 0.0)

    def conv(self, prefix, out_c, in_c, kernel):
        """Conv2d / Conv3d (kernel a tuple) with fan-in scaled std: keeps activations O(1)."""
        fan_in = in_c
        for k in kernel:
            fan_in *= k
        self.rand(prefix + ".weight", out_c, in_c, *kernel, std=fan_in ** -0.5)
        self.rand(prefix + ".bias", out_c, std=0.01)

    def save(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.float().contiguous() for k, v in self.sd.items()}, str(path))
        return path


def _info(path, **kw):
    path = Path(path)
    return {"path": str(path), "name": path.name, "bytes": os.path.getsize(path), **kw}


# ---------------------------------------------------------------------------------------
# Diffusion models
# ---------------------------------------------------------------------------------------

def _check_dim(dim):
    if dim <= 0 or dim % WAN_HEAD_DIM:
        raise ValueError(f"dim must be a positive multiple of {WAN_HEAD_DIM} (ComfyUI: num_heads = dim // "
                         f"{WAN_HEAD_DIM}), got {dim}")


def _dit_std(std, dim):
    """Default weight std: 0.02 at dim 128, scaled by 1/sqrt(width) above it."""
    return std if std is not None else 0.02 * (WAN_HEAD_DIM / dim) ** 0.5


def _attention(s, p, dim, *, i2v=False):
    for n in ("q", "k", "v", "o"):
        s.linear(f"{p}.{n}", dim, dim)
    s.const(f"{p}.norm_q.weight", (dim,), 1.0)
    s.const(f"{p}.norm_k.weight", (dim,), 1.0)
    if i2v:
        s.linear(f"{p}.k_img", dim, dim)
        s.linear(f"{p}.v_img", dim, dim)
        s.const(f"{p}.norm_k_img.weight", (dim,), 1.0)


def _wan_dit(s, *, in_dim, out_dim, dim, ffn_dim, num_layers, clip=False, flf_tokens=None):
    """Keys of comfy.ldm.wan.model.WanModel / the Wan-AI release, in release order."""
    s.conv("patch_embedding", dim, in_dim, WAN_PATCH)
    s.linear("text_embedding.0", dim, WAN_TEXT_DIM)
    s.linear("text_embedding.2", dim, dim)
    s.linear("time_embedding.0", dim, WAN_FREQ_DIM)
    s.linear("time_embedding.2", dim, dim)
    s.linear("time_projection.1", 6 * dim, dim)
    for i in range(num_layers):
        p = f"blocks.{i}"
        _attention(s, f"{p}.self_attn", dim)
        s.layer_norm(f"{p}.norm3", dim)  # cross_attn_norm (hard-coded True)
        _attention(s, f"{p}.cross_attn", dim, i2v=clip)
        s.linear(f"{p}.ffn.0", ffn_dim, dim)
        s.linear(f"{p}.ffn.2", dim, ffn_dim)
        s.rand(f"{p}.modulation", 1, 6, dim, std=dim ** -0.5)  # Wan's own init: randn / sqrt(dim)
    s.linear("head.head", out_dim * 4, dim)  # 4 = prod(patch_size)
    s.rand("head.modulation", 1, 2, dim, std=dim ** -0.5)
    if clip:
        s.layer_norm("img_emb.proj.0", WAN_CLIP_DIM)
        s.linear("img_emb.proj.1", WAN_CLIP_DIM, WAN_CLIP_DIM)
        s.linear("img_emb.proj.3", dim, WAN_CLIP_DIM)
        s.layer_norm("img_emb.proj.4", dim)
        if flf_tokens:
            s.rand("img_emb.emb_pos", 1, flf_tokens, WAN_CLIP_DIM, std=0.02)


def _write_dit(path, *, family, supported_model, model_base, latent_channels, token_px, in_dim, out_dim,
               dim, ffn_dim, num_layers, seed, std, clip=False, flf_tokens=None, model_type="t2v", **extra):
    _check_dim(dim)
    s = _SD(seed, _dit_std(std, dim))
    _wan_dit(s, in_dim=in_dim, out_dim=out_dim, dim=dim, ffn_dim=ffn_dim, num_layers=num_layers,
             clip=clip, flf_tokens=flf_tokens)
    s.save(path)
    return _info(path, family=family, supported_model=supported_model, model_base=model_base,
                 model_type=model_type, dim=dim, num_heads=dim // WAN_HEAD_DIM, ffn_dim=ffn_dim,
                 num_layers=num_layers, in_dim=in_dim, out_dim=out_dim, text_dim=WAN_TEXT_DIM,
                 clip_dim=WAN_CLIP_DIM if clip else None, clip_tokens=(flf_tokens or WAN_CLIP_TOKENS) if clip else None,
                 flf_pos_embed_token_number=flf_tokens, latent_channels=latent_channels,
                 patch_size=WAN_PATCH, token_px=token_px, temporal_ratio=4, **extra)


def write_wan21_t2v_dit(path, *, dim=128, ffn_dim=256, num_layers=1, seed=0, std=None):
    """Wan 2.1 T2V (1.3B / 14B diffusion_models format): in_dim 16, out_dim 16.

    Keys: patch_embedding (Conv3d dim x 16 x 1 x 2 x 2), text_embedding.{0,2},
    time_embedding.{0,2}, time_projection.1, blocks.N.{self_attn,cross_attn}.{q,k,v,o,
    norm_q,norm_k}, blocks.N.norm3, blocks.N.ffn.{0,2}, blocks.N.modulation (1, 6, dim),
    head.head, head.modulation (1, 2, dim). ComfyUI: supported_models.WAN21_T2V,
    model_base.WAN21, ldm.wan.model.WanModel, latent_formats.Wan21 (16 ch), 16 px tokens.
    Returns an info dict (the file's path and what ComfyUI should detect).
    """
    return _write_dit(path, family="wan21_t2v", supported_model="WAN21_T2V", model_base="WAN21",
                      latent_channels=16, token_px=16, in_dim=16, out_dim=16, dim=dim, ffn_dim=ffn_dim,
                      num_layers=num_layers, seed=seed, std=std, image_to_video=False)


def write_wan21_i2v_dit(path, *, dim=128, ffn_dim=256, num_layers=1, flf2v=False, seed=0, std=None):
    """Wan 2.1 I2V 14B (480p / 720p) format: in_dim 36 (16 noise + 4 mask + 16 image
    latent), out_dim 16, ``img_emb.proj.{0,1,3,4}`` (1280-wide CLIP-vision tokens ->
    dim) and cross_attn.{k_img, v_img, norm_k_img}. flf2v=True adds img_emb.emb_pos
    (1, 514, 1280) (see write_wan21_flf2v_dit). ComfyUI: supported_models.WAN21_I2V,
    model_base.WAN21 (image_to_video=True), latent_formats.Wan21.
    """
    return _write_dit(path, family="wan21_flf2v" if flf2v else "wan21_i2v", supported_model="WAN21_I2V",
                      model_base="WAN21", latent_channels=16, token_px=16, in_dim=36, out_dim=16, dim=dim,
                      ffn_dim=ffn_dim, num_layers=num_layers, seed=seed, std=std, clip=True,
                      flf_tokens=WAN_FLF_TOKENS if flf2v else None, model_type="i2v", image_to_video=True)


def write_wan21_flf2v_dit(path, **kw):
    """Wan 2.1 FLF2V 14B (first-last-frame): the I2V format plus ``img_emb.emb_pos``
    (1, 514, 1280), the positional embedding of two images' 257 CLIP tokens. ComfyUI
    detects flf_pos_embed_token_number 514 and otherwise treats it as WAN21_I2V.
    Same arguments as write_wan21_i2v_dit."""
    kw["flf2v"] = True
    return write_wan21_i2v_dit(path, **kw)


def write_wan22_ti2v_5b_dit(path, *, dim=128, ffn_dim=256, num_layers=1, seed=0, std=None):
    """Wan 2.2 TI2V 5B format: in_dim 48, out_dim 48 (Wan 2.2 VAE latents), no img_emb.
    ComfyUI: supported_models.WAN22_T2V (matched on out_dim 48), model_base.WAN22,
    latent_formats.Wan22 (48 ch), 32 px tokens. Image-to-video is the clean first latent
    frame (timestep 0 via denoise_mask), not extra input channels.
    """
    return _write_dit(path, family="wan22_ti2v_5b", supported_model="WAN22_T2V", model_base="WAN22",
                      latent_channels=48, token_px=32, in_dim=48, out_dim=48, dim=dim, ffn_dim=ffn_dim,
                      num_layers=num_layers, seed=seed, std=std, image_to_video=True)


def write_wan22_14b_dit(path, *, expert="high_noise", task="t2v", dim=128, ffn_dim=256, num_layers=1,
                        seed=None, std=None):
    """Wan 2.2 A14B, one expert: expert "high_noise" (early, high-sigma steps) or
    "low_noise". task "t2v": the Wan 2.1 14B T2V format (in 16, out 16); task "i2v":
    in_dim 36 (16 noise + 4 mask + 16 image latent) with no img_emb (no CLIP vision).
    Both are detected as model_type "t2v" -> supported_models.WAN21_T2V, model_base.WAN21
    (image_to_video=False), latent_formats.Wan21. The two experts share every shape;
    seed defaults to 0 (high) / 1 (low) so they differ.
    """
    if expert not in ("high_noise", "low_noise"):
        raise ValueError("expert must be 'high_noise' or 'low_noise'")
    if task not in ("t2v", "i2v"):
        raise ValueError("task must be 't2v' or 'i2v'")
    if seed is None:
        seed = 0 if expert == "high_noise" else 1
    return _write_dit(path, family=f"wan22_{task}_14b_{expert}", supported_model="WAN21_T2V", model_base="WAN21",
                      latent_channels=16, token_px=16, in_dim=16 if task == "t2v" else 36, out_dim=16, dim=dim,
                      ffn_dim=ffn_dim, num_layers=num_layers, seed=seed, std=std, expert=expert,
                      image_to_video=False)


# ---------------------------------------------------------------------------------------
# VAEs
# ---------------------------------------------------------------------------------------

def _rms(s, key, n, images=False):
    """RMS_norm.gamma: (n, 1, 1, 1) in 3-D blocks, (n, 1, 1) in the 2-D attention block."""
    s.const(key, (n, 1, 1) if images else (n, 1, 1, 1), 1.0)


def _res3d(s, p, c_in, c_out):
    _rms(s, f"{p}.residual.0.gamma", c_in)
    s.conv(f"{p}.residual.2", c_out, c_in, (3, 3, 3))
    _rms(s, f"{p}.residual.3.gamma", c_out)
    s.conv(f"{p}.residual.6", c_out, c_out, (3, 3, 3))
    if c_in != c_out:
        s.conv(f"{p}.shortcut", c_out, c_in, (1, 1, 1))


def _attn_block(s, p, c):
    _rms(s, f"{p}.norm.gamma", c, images=True)
    s.conv(f"{p}.to_qkv", 3 * c, c, (1, 1))
    s.conv(f"{p}.proj", c, c, (1, 1))


def _resample(s, p, c, mode, out_c=None):
    """Resample: resample.1 is the 2-D conv; upsample3d adds time_conv (2c <- c, 3x1x1),
    downsample3d adds time_conv (c <- c, 3x1x1, stride 2)."""
    if mode.startswith("up"):
        s.conv(f"{p}.resample.1", out_c if out_c is not None else c, c, (3, 3))
        if mode == "upsample3d":
            s.conv(f"{p}.time_conv", 2 * c, c, (3, 1, 1))
    else:
        s.conv(f"{p}.resample.1", c, c, (3, 3))
        if mode == "downsample3d":
            s.conv(f"{p}.time_conv", c, c, (3, 1, 1))


def _middle(s, side, c):
    _res3d(s, f"{side}.middle.0", c, c)
    _attn_block(s, f"{side}.middle.1", c)
    _res3d(s, f"{side}.middle.2", c, c)


def _head(s, side, c, out_c):
    _rms(s, f"{side}.head.0.gamma", c)
    s.conv(f"{side}.head.2", out_c, c, (3, 3, 3))


def _wan21_vae(s, dim, z=16, image_channels=3):
    mult, nrb = _VAE_DIM_MULT, _VAE_RES_BLOCKS
    # encoder: flat list encoder.downsamples.K (residual blocks, then a Resample per stage)
    dims = [dim * u for u in (1,) + mult]
    s.conv("encoder.conv1", dims[0], image_channels, (3, 3, 3))
    k = 0
    for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(nrb):
            _res3d(s, f"encoder.downsamples.{k}", c_in, c_out)
            c_in = c_out
            k += 1
        if i != len(mult) - 1:
            _resample(s, f"encoder.downsamples.{k}", c_out,
                      "downsample3d" if _VAE_TEMPORAL_DOWN[i] else "downsample2d")
            k += 1
    _middle(s, "encoder", dims[-1])
    _head(s, "encoder", dims[-1], 2 * z)
    s.conv("conv1", 2 * z, 2 * z, (1, 1, 1))
    s.conv("conv2", z, z, (1, 1, 1))
    # decoder: dims [4d, 4d, 4d, 2d, d]; each upsample conv halves the width
    up = tuple(reversed(_VAE_TEMPORAL_DOWN))
    dims = [dim * u for u in (mult[-1],) + tuple(reversed(mult))]
    s.conv("decoder.conv1", dims[0], z, (3, 3, 3))
    _middle(s, "decoder", dims[0])
    k = 0
    for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
        if i in (1, 2, 3):
            c_in = c_in // 2
        for _ in range(nrb + 1):
            _res3d(s, f"decoder.upsamples.{k}", c_in, c_out)
            c_in = c_out
            k += 1
        if i != len(mult) - 1:
            _resample(s, f"decoder.upsamples.{k}", c_out, "upsample3d" if up[i] else "upsample2d",
                      out_c=c_out // 2)
            k += 1
    _head(s, "decoder", dims[-1], image_channels)


def _wan22_vae(s, dim, dec_dim, z=48):
    mult, nrb = _VAE_DIM_MULT, _VAE_RES_BLOCKS
    patch_channels = 3 * 2 * 2  # the VAE patchifies 2x2 pixels before its first conv
    dims = [dim * u for u in (1,) + mult]
    s.conv("encoder.conv1", dims[0], patch_channels, (3, 3, 3))
    for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
        p = f"encoder.downsamples.{i}.downsamples"  # Down_ResidualBlock (its avg_shortcut has no weights)
        for j in range(nrb):
            _res3d(s, f"{p}.{j}", c_in, c_out)
            c_in = c_out
        if i != len(mult) - 1:
            _resample(s, f"{p}.{nrb}", c_out, "downsample3d" if _VAE_TEMPORAL_DOWN[i] else "downsample2d")
    _middle(s, "encoder", dims[-1])
    _head(s, "encoder", dims[-1], 2 * z)
    s.conv("conv1", 2 * z, 2 * z, (1, 1, 1))
    s.conv("conv2", z, z, (1, 1, 1))
    up = tuple(reversed(_VAE_TEMPORAL_DOWN))
    dims = [dec_dim * u for u in (mult[-1],) + tuple(reversed(mult))]
    s.conv("decoder.conv1", dims[0], z, (3, 3, 3))
    _middle(s, "decoder", dims[0])
    for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
        p = f"decoder.upsamples.{i}.upsamples"  # Up_ResidualBlock (DupUp3D shortcut has no weights)
        for j in range(nrb + 1):
            _res3d(s, f"{p}.{j}", c_in, c_out)
            c_in = c_out
        if i != len(mult) - 1:  # Wan 2.2 upsample convs keep the width
            _resample(s, f"{p}.{nrb + 1}", c_out, "upsample3d" if up[i] else "upsample2d", out_c=c_out)
    _head(s, "decoder", dims[-1], patch_channels)


def write_wan21_vae(path, *, dim=8, seed=0):
    """Wan 2.1 VAE (Wan2.1_VAE.pth / wan_2.1_vae.safetensors format; also the VAE of the
    Wan 2.2 A14B models): z 16, 8x spatial, 4x causal temporal.

    Keys: encoder.conv1, encoder.downsamples.K.{residual.{0,3}.gamma, residual.{2,6},
    shortcut, resample.1, time_conv}, encoder.middle.{0,1,2}, encoder.head.{0,2}, conv1,
    conv2, decoder.conv1, decoder.middle.*, decoder.upsamples.K.*, decoder.head.{0,2}.
    ComfyUI reads dim from decoder.head.0.gamma (real 96; any width >= 1 loads); the
    rest is fixed (see the module docstring). ComfyUI: comfy.ldm.wan.vae.WanVAE,
    VAE.latent_channels 16, spatial ratio 8. 5 frames of 64 x 64 encode to (1, 16, 2, 8, 8).
    """
    if dim <= 0:
        raise ValueError(f"dim must be positive, got {dim}")
    s = _SD(seed, 0.05)
    _wan21_vae(s, dim)
    s.save(path)
    return _info(path, family="wan21_vae", vae_class="comfy.ldm.wan.vae.WanVAE", latent_channels=16,
                 downscale=8, temporal_ratio=4, z_channels=16, dim=dim, dec_dim=dim, needs_detection_patch=False)


def wan21_vae_shapes(*, dim=WAN21_VAE_REAL_DIM):
    """{key: shape} of a Wan 2.1 VAE of width ``dim`` (default: the real release's 96),
    computed without allocating anything."""
    s = _SD(0, 0.05, meta=True)
    _wan21_vae(s, dim)
    return {k: tuple(v.shape) for k, v in s.sd.items()}


def wan22_vae_shapes(*, dim=WAN22_VAE_NATIVE_DIM, dec_dim=WAN22_VAE_NATIVE_DEC_DIM):
    """{key: shape} of a Wan 2.2 VAE at these widths (default: the real, native ones),
    computed without allocating anything."""
    s = _SD(0, 0.05, meta=True)
    _wan22_vae(s, dim, dec_dim)
    return {k: tuple(v.shape) for k, v in s.sd.items()}


def write_wan22_vae(path, *, seed=0):
    """Wan 2.2 VAE (Wan2.2_VAE.pth / wan2.2_vae.safetensors format, the TI2V 5B's VAE):
    z 48, 16x spatial (2x2 pixel patchify -> 12 channels, then 8x), 4x causal temporal.

    Keys: as write_wan21_vae but grouped per stage: encoder.downsamples.I.downsamples.J.*
    and decoder.upsamples.I.upsamples.J.* (J = residual blocks, then the Resample).
    Encoder and decoder dim 8 (~1.05M params) instead of ComfyUI's 160 / 256: detected as
    the Wan 2.2 VAE but loadable only inside ``wan22_vae_detection_patch()``. ComfyUI:
    comfy.ldm.wan.vae2_2.WanVAE, VAE.latent_channels 48, spatial ratio 16.
    5 frames of 64 x 64 encode to (1, 48, 2, 4, 4).
    """
    s = _SD(seed, 0.05)
    _wan22_vae(s, 8, 8)
    s.save(path)
    return _info(path, family="wan22_vae", vae_class="comfy.ldm.wan.vae2_2.WanVAE", latent_channels=48,
                 downscale=16, temporal_ratio=4, z_channels=48, dim=8, dec_dim=8, needs_detection_patch=True)


def _wan22_vae_widths(sd):
    """(encoder dim, decoder dim) of a Wan 2.2 VAE state dict, or None for anything else."""
    try:
        if "decoder.middle.0.residual.0.gamma" not in sd or \
                "decoder.upsamples.0.upsamples.0.residual.2.weight" not in sd:
            return None
        return sd["encoder.conv1.weight"].shape[0], sd["decoder.conv1.weight"].shape[0] // _VAE_DIM_MULT[-1]
    except (TypeError, KeyError, AttributeError):
        return None


@contextlib.contextmanager
def vae_constructor_patch(module, name, widths_of, sized):
    """While comfy.sd.VAE.__init__ loads a state dict for which widths_of(sd) is not None,
    module.<name> (the constructor ComfyUI calls with its hard-coded widths) is
    sized(original, widths, seen): a constructor that records ComfyUI's config in `seen`
    and builds with the tensors' widths. Restores on exit; yields `seen`."""
    import comfy.sd

    original_init, original = comfy.sd.VAE.__init__, getattr(module, name)
    seen = []

    def patched_init(self, sd=None, *args, **kwargs):
        widths = widths_of(sd)
        if widths is None:
            return original_init(self, sd, *args, **kwargs)
        setattr(module, name, sized(original, widths, seen))
        try:
            return original_init(self, sd, *args, **kwargs)
        finally:
            setattr(module, name, original)

    comfy.sd.VAE.__init__ = patched_init
    try:
        yield seen
    finally:
        comfy.sd.VAE.__init__ = original_init


@contextlib.contextmanager
def wan22_vae_detection_patch():
    """Let ComfyUI load a tiny Wan 2.2 VAE: wraps comfy.sd.VAE.__init__ so that, for a
    Wan 2.2 VAE state dict only, the encoder / decoder widths ComfyUI hard-codes (160 /
    256) come from encoder.conv1 / decoder.conv1 instead. Everything else (detection,
    the ddconfig, comfy.ldm.wan.vae2_2.WanVAE itself, weight loading, encode/decode) is
    ComfyUI's own code; works for VAELoader too. Imports ComfyUI lazily; restores on
    exit. Yields a list that collects, per patched load, the ddconfig ComfyUI passed
    (before the widths were replaced).

        with wan22_vae_detection_patch() as configs:
            vae = comfy.sd.VAE(sd=sd)
    """
    import comfy.ldm.wan.vae2_2 as vae2_2

    def sized(original, widths, seen):
        def build(**cfg):
            seen.append(dict(cfg))
            cfg["dim"], cfg["dec_dim"] = widths
            return original(**cfg)
        return build

    with vae_constructor_patch(vae2_2, "WanVAE", _wan22_vae_widths, sized) as seen:
        yield seen


# ---------------------------------------------------------------------------------------

DIT_FILES = {
    "wan21_t2v": "tiny_wan2.1_t2v.safetensors",
    "wan21_i2v": "tiny_wan2.1_i2v.safetensors",
    "wan21_flf2v": "tiny_wan2.1_flf2v.safetensors",
    "wan22_ti2v_5b": "tiny_wan2.2_ti2v_5B.safetensors",
    "wan22_t2v_14b_high": "tiny_wan2.2_t2v_high_noise_14B.safetensors",
    "wan22_t2v_14b_low": "tiny_wan2.2_t2v_low_noise_14B.safetensors",
    "wan22_i2v_14b_high": "tiny_wan2.2_i2v_high_noise_14B.safetensors",
    "wan22_i2v_14b_low": "tiny_wan2.2_i2v_low_noise_14B.safetensors",
}
VAE_FILES = {
    "wan21_vae": "tiny_wan_2.1_vae.safetensors",
    "wan22_vae": "tiny_wan2.2_vae.safetensors",
}


def write_all(models_dir):
    """Write every Wan fixture under models_dir/diffusion_models and models_dir/vae.

    Returns {key: info dict} where info["name"] is the file name as ComfyUI's loader
    nodes list it (UNETLoader unet_name / VAELoader vae_name) and info["path"] the path.
    The Wan 2.2 VAE is the tiny one (load it inside wan22_vae_detection_patch()).
    """
    models_dir = Path(models_dir)
    dm, vae = models_dir / "diffusion_models", models_dir / "vae"
    return {
        "wan21_t2v": write_wan21_t2v_dit(dm / DIT_FILES["wan21_t2v"], seed=0),
        "wan21_i2v": write_wan21_i2v_dit(dm / DIT_FILES["wan21_i2v"], seed=1),
        "wan21_flf2v": write_wan21_flf2v_dit(dm / DIT_FILES["wan21_flf2v"], seed=2),
        "wan22_ti2v_5b": write_wan22_ti2v_5b_dit(dm / DIT_FILES["wan22_ti2v_5b"], seed=3),
        "wan22_t2v_14b_high": write_wan22_14b_dit(dm / DIT_FILES["wan22_t2v_14b_high"], expert="high_noise",
                                                  seed=4),
        "wan22_t2v_14b_low": write_wan22_14b_dit(dm / DIT_FILES["wan22_t2v_14b_low"], expert="low_noise",
                                                 seed=5),
        "wan22_i2v_14b_high": write_wan22_14b_dit(dm / DIT_FILES["wan22_i2v_14b_high"], expert="high_noise",
                                                  task="i2v", seed=6),
        "wan22_i2v_14b_low": write_wan22_14b_dit(dm / DIT_FILES["wan22_i2v_14b_low"], expert="low_noise",
                                                 task="i2v", seed=7),
        "wan21_vae": write_wan21_vae(vae / VAE_FILES["wan21_vae"], seed=10),
        "wan22_vae": write_wan22_vae(vae / VAE_FILES["wan22_vae"], seed=11),
    }

