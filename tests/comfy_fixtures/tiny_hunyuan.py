"""Tiny random-initialised HunyuanVideo checkpoints in the real on-disk key formats.

Every writer produces a ``.safetensors`` file whose keys and tensor shapes follow a format
ComfyUI loads, scaled down so that ComfyUI's own loaders (``comfy.sd.load_diffusion_model``
and ``comfy.sd.VAE``) detect the right model and a forward pass runs on CPU in a fraction
of a second. Companion of tiny_wan.py (same conventions, same helpers).

This module imports only torch and safetensors (via tiny_wan), so the files can be written
where ComfyUI is absent. ``hunyuan15_vae_detection_patch`` imports ComfyUI lazily.

Geometry
--------
Latents are 5-D (B, C, T, H, W); both VAEs are causal with a 4x temporal factor, so T latent
frames <-> 1 + 4 (T - 1) video frames (EmptyHunyuanLatentVideo / EmptyHunyuanVideo15Latent:
((length - 1) // 4) + 1 frames).
    1.0: 16 latent channels at 8x (latent_formats.HunyuanVideo), DiT patch (1, 2, 2): one
        token per latent frame and 2 x 2 latent pixels = 16 x 16 video pixels.
    1.5: 32 latent channels at 16x (latent_formats.HunyuanVideo15), DiT patch (1, 1, 1):
        one token per latent pixel = 16 x 16 video pixels.

What ComfyUI derives from the tensors (comfy/model_detection.py, "Hunyuan Video" branch)
--------------------------------------------------------------------------------------
Detected by ``txt_in.individual_token_refiner.blocks.0.norm1.weight``. Derived:
in_channels and patch_size from img_in.proj.weight (Conv3d: (hidden, in, *patch));
out_channels = final_layer.linear.weight.shape[0] // prod(patch); hidden_size =
img_in.proj.weight.shape[0]; context_in_dim = txt_in.input_embedder.weight.shape[1] (the
text encoder width: 4096 for 1.0's LLaVA-Llama-3, 3584 for 1.5's Qwen2.5-VL; any width
loads); depth / depth_single_blocks = number of double_blocks.N / single_blocks.N;
guidance_embed = any guidance_in.*; byt5 = byt5_in.fc1.weight present; meanflow =
any time_r_in.*; use_cond_type_embedding = cond_type_embedding.weight present;
vision_in_dim = vision_in.proj.0.weight.shape[0].
Hard-coded: num_heads = hidden // 128 (head dim 128, so hidden must be a multiple of 128:
the smallest model has hidden 128 and one head), axes_dim [16, 56, 56], theta 256,
mlp_ratio 4, qkv_bias, vec_in_dim 768 whenever vector_in.* exists (CLIP-L pooled), and the
ByT5Mapper widths (1472 -> 2048 -> 2048 -> hidden).
The supported model is matched on the derived config (comfy/supported_models.py):
    HunyuanVideo             3-D patch                -> model_base.HunyuanVideo (1.0 T2V)
    HunyuanVideoI2V          in_channels 33 (16 noise + 16 image latent + 1 mask)
    HunyuanVideoSkyreelsI2V  in_channels 32
    HunyuanVideo15           vision_in_dim 1152 (SigLIP) -> model_base.HunyuanVideo15: its
        concat_cond fills in_channels - 32 - 1 image-latent channels plus a mask, so the
        T2V and I2V files both have in_channels 65
    HunyuanVideo15_SR_Distilled  vision_in_dim 1152, in_channels 98 (not written here)
All use comfy.ldm.hunyuan_video.model.HunyuanVideo.

Key naming
----------
Written in ComfyUI's module names (double_blocks.N.img_attn.qkv, img_mod.lin,
img_attn.norm.query_norm.weight, txt_in.t_embedder.in_layer, ...), the names ComfyUI
saves and the only names a loadable 1.5 file can have: Tencent's 1.5 release splits q, k
and v (img_attn_q / _k / _v), which ComfyUI has no conversion for. For 1.0,
``naming="tencent"`` writes Tencent's original names (img_attn_qkv, img_mod.linear,
img_attn_q_norm, mlp.fc1, txt_in.c_embedder.linear_1, time_in.mlp.0, ...), which
supported_models.HunyuanVideo.process_unet_state_dict converts on load.
Real sizes: 1.0 hidden 3072 (24 heads), 20 double + 40 single blocks, text 4096, guidance
embedding (the 720p T2V is guidance distilled); 1.5 hidden 2048 (16 heads), 54 double and
0 single blocks, text 3584, byT5, vision 1152, cond_type_embedding, no vector_in, no
guidance embedding. The tiny defaults: 1.0 hidden 256 (2 heads, so a head mix-up shows),
1 + 1 blocks, text 64 (~6.1M parameters, 24 MB); 1.5 hidden 128 (1 head), 2 double blocks,
text 64, byT5 and vision included (~10.8M parameters, 43 MB, of which 7.5M are the
fixed-width byT5 mapper and 1.5M the 1152-wide vision projection).

VAE (HunyuanVideo 1.5; comfy/sd.py, the ``decoder.conv_in.conv.weight`` 32-channel branch)
--------------------------------------------------------------------------------------
comfy.ldm.hunyuan_video.vae_refiner Encoder/Decoder (causal 3-D convs, RMS norms, so any
width builds) with block_out_channels hard-coded to [128, 256, 512, 1024, 1024],
num_res_blocks 2, 16x spatial, 4x temporal, z 32; EmptyRegularizer. Width constraints of
the architecture: the last width is a multiple of 64 (2 z), each downsample's output a
multiple of its pixel-unshuffle factor. ``write_hunyuan15_vae()`` writes widths
(4, 8, 16, 64, 64) (~5M parameters, fp16 like Comfy-Org's file; at the widths ComfyUI
hard-codes the architecture has 1.26G parameters, ``hunyuan15_vae_shapes()`` lists their
shapes without allocating), which ComfyUI detects as this VAE but only instantiates inside
``hunyuan15_vae_detection_patch()`` (which reads the widths from
encoder.down.N.block.0.conv1). Keys: ComfyUI's module names (no conversion exists for this
VAE), without the mid blocks' unused temb_proj (ComfyUI builds it, no checkpoint has it;
it is reported missing and never used).
No 1.0 VAE is written: it is a conv3d AutoencoderKL (GroupNorm, ch hard-coded 128, diffusers
names converted on load), and the stand-in autoencoder the shared ComfyUI 0.29 snapshot
needs (snapshot_gap_autoencoder.py) builds 2-D quant convs only. Its latents (16 channels,
8x, patch 2) have the token geometry of the Wan 2.1 and FLUX.1 VAEs, tested with those.
ComfyUI's VAE.encode takes (frames, H, W, 3) in [0, 1] and returns (1, 32, T, H/16, W/16).

Use
---
    from comfy_fixtures import tiny_hunyuan
    infos = tiny_hunyuan.write_all(tmp_path / "models")
    patcher = comfy.sd.load_diffusion_model(infos["hunyuan_video_t2v"]["path"])
    with tiny_hunyuan.hunyuan15_vae_detection_patch():
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(infos["hunyuan15_vae"]["path"]))
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from .tiny_wan import _SD, _info, vae_constructor_patch

HEAD_DIM = 128          # ComfyUI: num_heads = hidden // 128
FREQ_DIM = 256          # timestep embedders (time_in, guidance_in, txt_in.t_embedder, time_r_in)
VEC_DIM = 768           # vec_in_dim whenever vector_in exists (CLIP-L pooled output)
BYT5_DIMS = (1472, 2048, 2048)  # ByT5Mapper: in, hidden, out (fixed in ComfyUI)
VISION_DIM = 1152       # 1.5's SigLIP width; supported_models.HunyuanVideo15 matches on it
VAE15_NATIVE_WIDTHS = (128, 256, 512, 1024, 1024)
VAE15_Z = 32


def _dit_std(std, hidden):
    """Default weight std 0.1 at hidden 128, scaled by 1/sqrt(width/128): five times tiny_wan's,
    so that attention visibly moves the output (changing one token changes the others by
    ~0.3 at an output std of ~1-2; at 0.02 by ~4e-5, below the invariant tests' tolerance)."""
    return std if std is not None else 0.1 * (HEAD_DIM / hidden) ** 0.5


def _mlp_embedder(s, p, in_dim, hidden):
    s.linear(f"{p}.in_layer", hidden, in_dim)
    s.linear(f"{p}.out_layer", hidden, hidden)


def _layer_norm(s, p, n):
    s.const(f"{p}.weight", (n,), 1.0)
    s.const(f"{p}.bias", (n,), 0.0)


def _hunyuan_dit(s, *, in_channels, out_channels, patch, hidden, depth, depth_single, context_dim, vector,
                 guidance, byt5, vision, meanflow):
    """Keys of comfy.ldm.hunyuan_video.model.HunyuanVideo (ComfyUI's names)."""
    mlp = 4 * hidden
    s.conv("img_in.proj", hidden, in_channels, tuple(patch))
    _mlp_embedder(s, "time_in", FREQ_DIM, hidden)
    if vector:
        _mlp_embedder(s, "vector_in", VEC_DIM, hidden)
    if guidance:
        _mlp_embedder(s, "guidance_in", FREQ_DIM, hidden)
    s.linear("txt_in.input_embedder", hidden, context_dim)
    _mlp_embedder(s, "txt_in.t_embedder", FREQ_DIM, hidden)
    _mlp_embedder(s, "txt_in.c_embedder", context_dim, hidden)
    for i in range(2):  # TokenRefiner: two blocks, hard-coded
        p = f"txt_in.individual_token_refiner.blocks.{i}"
        s.linear(f"{p}.adaLN_modulation.1", 2 * hidden, hidden)
        _layer_norm(s, f"{p}.norm1", hidden)
        s.linear(f"{p}.self_attn.qkv", 3 * hidden, hidden)
        s.linear(f"{p}.self_attn.proj", hidden, hidden)
        _layer_norm(s, f"{p}.norm2", hidden)
        s.linear(f"{p}.mlp.0", mlp, hidden)
        s.linear(f"{p}.mlp.2", hidden, mlp)
    for i in range(depth):
        for stream in ("img", "txt"):
            p = f"double_blocks.{i}.{stream}"
            s.linear(f"{p}_mod.lin", 6 * hidden, hidden)
            s.linear(f"{p}_attn.qkv", 3 * hidden, hidden)
            s.const(f"{p}_attn.norm.query_norm.weight", (HEAD_DIM,), 1.0)
            s.const(f"{p}_attn.norm.key_norm.weight", (HEAD_DIM,), 1.0)
            s.linear(f"{p}_attn.proj", hidden, hidden)
            s.linear(f"{p}_mlp.0", mlp, hidden)
            s.linear(f"{p}_mlp.2", hidden, mlp)
    for i in range(depth_single):
        p = f"single_blocks.{i}"
        s.linear(f"{p}.linear1", 3 * hidden + mlp, hidden)
        s.linear(f"{p}.linear2", hidden, hidden + mlp)
        s.const(f"{p}.norm.query_norm.weight", (HEAD_DIM,), 1.0)
        s.const(f"{p}.norm.key_norm.weight", (HEAD_DIM,), 1.0)
        s.linear(f"{p}.modulation.lin", 3 * hidden, hidden)
    if byt5:
        _layer_norm(s, "byt5_in.layernorm", BYT5_DIMS[0])
        s.linear("byt5_in.fc1", BYT5_DIMS[1], BYT5_DIMS[0])
        s.linear("byt5_in.fc2", BYT5_DIMS[2], BYT5_DIMS[1])
        s.linear("byt5_in.fc3", hidden, BYT5_DIMS[2])
    if meanflow:
        _mlp_embedder(s, "time_r_in", FREQ_DIM, hidden)
    s.linear("final_layer.linear", out_channels * math.prod(patch), hidden)
    s.linear("final_layer.adaLN_modulation.1", 2 * hidden, hidden)
    if vision:
        _layer_norm(s, "vision_in.proj.0", VISION_DIM)
        s.linear("vision_in.proj.1", VISION_DIM, VISION_DIM)
        s.linear("vision_in.proj.3", hidden, VISION_DIM)
        _layer_norm(s, "vision_in.proj.4", hidden)
        s.rand("cond_type_embedding.weight", 3, hidden, std=0.02)


# ComfyUI name -> Tencent's original 1.0 name (inverse of process_unet_state_dict; the MLP
# rule first, so that the embedders' mlp.0 / mlp.2 written after it stay as they are)
_TENCENT_NAMES = (
    ("mlp.0.", "mlp.fc1."), ("mlp.2.", "mlp.fc2."),
    ("txt_in.t_embedder.in_layer.", "txt_in.t_embedder.mlp.0."),
    ("txt_in.t_embedder.out_layer.", "txt_in.t_embedder.mlp.2."),
    ("txt_in.c_embedder.in_layer.", "txt_in.c_embedder.linear_1."),
    ("txt_in.c_embedder.out_layer.", "txt_in.c_embedder.linear_2."),
    ("time_in.in_layer.", "time_in.mlp.0."), ("time_in.out_layer.", "time_in.mlp.2."),
    ("guidance_in.in_layer.", "guidance_in.mlp.0."), ("guidance_in.out_layer.", "guidance_in.mlp.2."),
    ("_mod.lin.", "_mod.linear."), (".modulation.lin.", ".modulation.linear."),
    ("_attn.qkv.", "_attn_qkv."), ("_attn.proj.", "_attn_proj."),
    ("_attn.norm.query_norm.weight", "_attn_q_norm.weight"), ("_attn.norm.key_norm.weight", "_attn_k_norm.weight"),
    (".norm.query_norm.weight", ".q_norm.weight"), (".norm.key_norm.weight", ".k_norm.weight"),
)


def tencent_name(key: str) -> str:
    for comfy_part, tencent_part in _TENCENT_NAMES:
        key = key.replace(comfy_part, tencent_part)
    return key


def write_hunyuan_video_dit(path, *, in_channels=16, hidden=256, depth=1, depth_single=1, context_dim=64,
                            guidance=True, naming="comfy", seed=0, std=None):
    """HunyuanVideo 1.0 (hunyuan_video_t2v_720p format): patch (1, 2, 2), out 16, vector_in
    (768-wide CLIP-L pooled), guidance_in. in_channels 16: T2V (supported_models.HunyuanVideo);
    33: I2V (HunyuanVideoI2V: + 16 image-latent channels + 1 mask); 32: SkyReels I2V.
    naming "comfy" (ComfyUI's names) or "tencent" (the original release's names)."""
    if hidden <= 0 or hidden % HEAD_DIM:
        raise ValueError(f"hidden must be a positive multiple of {HEAD_DIM}, got {hidden}")
    if naming not in ("comfy", "tencent"):
        raise ValueError("naming must be 'comfy' or 'tencent'")
    s = _SD(seed, _dit_std(std, hidden))
    _hunyuan_dit(s, in_channels=in_channels, out_channels=16, patch=(1, 2, 2), hidden=hidden, depth=depth,
                 depth_single=depth_single, context_dim=context_dim, vector=True, guidance=guidance, byt5=False,
                 vision=False, meanflow=False)
    if naming == "tencent":
        s.sd = {tencent_name(k): v for k, v in s.sd.items()}
    s.save(path)
    kind = {16: "HunyuanVideo", 33: "HunyuanVideoI2V", 32: "HunyuanVideoSkyreelsI2V"}.get(in_channels)
    return _info(path, family="hunyuan_video", supported_model=kind, latent_channels=16, patch=2, token_px=16,
                 temporal_ratio=4, hidden=hidden, num_heads=hidden // HEAD_DIM, in_channels=in_channels,
                 context_dim=context_dim, vec_dim=VEC_DIM, guidance_embed=guidance, byt5=False, vision_dim=None)


def write_hunyuan_video15_dit(path, *, hidden=128, depth=2, depth_single=0, context_dim=64, byt5=True,
                              seed=0, std=None):
    """HunyuanVideo 1.5 (hunyuanvideo1.5_720p_t2v / _i2v format; both have this shape):
    patch (1, 1, 1), in 65 (32 noise + 32 image latent + 1 mask), out 32, byt5_in (glyph
    text, fixed widths), vision_in (1152-wide SigLIP tokens), cond_type_embedding; no
    vector_in, no guidance_in. supported_models.HunyuanVideo15, latent_formats.HunyuanVideo15."""
    if hidden <= 0 or hidden % HEAD_DIM:
        raise ValueError(f"hidden must be a positive multiple of {HEAD_DIM}, got {hidden}")
    s = _SD(seed, _dit_std(std, hidden))
    _hunyuan_dit(s, in_channels=65, out_channels=32, patch=(1, 1, 1), hidden=hidden, depth=depth,
                 depth_single=depth_single, context_dim=context_dim, vector=False, guidance=False, byt5=byt5,
                 vision=True, meanflow=False)
    s.save(path)
    return _info(path, family="hunyuan_video15", supported_model="HunyuanVideo15", latent_channels=32, patch=1,
                 token_px=16, temporal_ratio=4, hidden=hidden, num_heads=hidden // HEAD_DIM, in_channels=65,
                 context_dim=context_dim, vec_dim=None, guidance_embed=False, byt5=byt5, vision_dim=VISION_DIM)


# ---------------------------------------------------------------------------------------
# HunyuanVideo 1.5 VAE
# ---------------------------------------------------------------------------------------

def _rms(s, key, n):
    s.const(key, (n, 1, 1, 1), 1.0)


def _resnet(s, p, c_in, c_out):
    _rms(s, f"{p}.norm1.gamma", c_in)
    s.conv(f"{p}.conv1.conv", c_out, c_in, (3, 3, 3))
    _rms(s, f"{p}.norm2.gamma", c_out)
    s.conv(f"{p}.conv2.conv", c_out, c_out, (3, 3, 3))
    if c_in != c_out:
        s.conv(f"{p}.nin_shortcut.conv", c_out, c_in, (1, 1, 1))


def _mid(s, side, c):
    _resnet(s, f"{side}.mid.block_1", c, c)
    _rms(s, f"{side}.mid.attn_1.norm.gamma", c)
    for n in ("q", "k", "v", "proj_out"):
        s.conv(f"{side}.mid.attn_1.{n}", c, c, (1, 1, 1))
    _resnet(s, f"{side}.mid.block_2", c, c)


def _hunyuan15_vae(s, widths, z=VAE15_Z, res_blocks=2, spatial=16, temporal=4):
    depth = (spatial >> 1).bit_length()  # stages with a 2x spatial step (4)
    enc_t = ((spatial // temporal) >> 1).bit_length()  # encoder: temporal steps from this stage on
    dec_t = (temporal >> 1).bit_length()  # decoder: temporal steps before this stage
    s.conv("encoder.conv_in.conv", widths[0], 3, (3, 3, 3))
    ch = widths[0]
    for i, tgt in enumerate(widths):
        for j in range(res_blocks):
            _resnet(s, f"encoder.down.{i}.block.{j}", ch if j == 0 else tgt, tgt)
        ch = tgt
        if i < depth:  # DnSmpl: conv to nxt / factor channels, then pixel-unshuffle
            nxt = widths[i + 1]
            s.conv(f"encoder.down.{i}.downsample.conv.conv", nxt // (8 if i >= enc_t else 4), ch, (3, 3, 3))
            ch = nxt
    _mid(s, "encoder", ch)
    _rms(s, "encoder.norm_out.gamma", ch)
    s.conv("encoder.conv_out.conv", 2 * z, ch, (3, 3, 3))
    rev = list(reversed(widths))
    ch = rev[0]
    s.conv("decoder.conv_in.conv", ch, z, (3, 3, 3))
    _mid(s, "decoder", ch)
    for i, tgt in enumerate(rev):
        for j in range(res_blocks + 1):
            _resnet(s, f"decoder.up.{i}.block.{j}", ch if j == 0 else tgt, tgt)
        ch = tgt
        if i < depth:  # UpSmpl: conv to nxt * factor channels, then pixel-shuffle
            nxt = rev[i + 1]
            s.conv(f"decoder.up.{i}.upsample.conv.conv", nxt * (8 if i < dec_t else 4), ch, (3, 3, 3))
            ch = nxt
    _rms(s, "decoder.norm_out.gamma", ch)
    s.conv("decoder.conv_out.conv", 3, ch, (3, 3, 3))


def hunyuan15_vae_shapes(widths=VAE15_NATIVE_WIDTHS):
    """{key: shape} of a HunyuanVideo 1.5 VAE of these widths (default: the real ones)."""
    s = _SD(0, 0.05, meta=True)
    _hunyuan15_vae(s, tuple(widths))
    return {k: tuple(v.shape) for k, v in s.sd.items()}


def write_hunyuan15_vae(path, *, widths=(4, 8, 16, 64, 64), seed=0, dtype=torch.float16):
    """HunyuanVideo 1.5 VAE (hunyuanvideo15_vae_fp16 format): z 32, 16x spatial, 4x causal
    temporal. Widths other than (128, 256, 512, 1024, 1024) load only inside
    hunyuan15_vae_detection_patch(). 9 frames of 128 x 96 encode to (1, 32, 3, 6, 8)."""
    widths = tuple(widths)
    if len(widths) != 5 or widths[-1] % (2 * VAE15_Z):
        raise ValueError(f"widths must be 5 stage widths ending in a multiple of {2 * VAE15_Z}, got {widths}")
    s = _SD(seed, 0.05)
    _hunyuan15_vae(s, widths)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in s.sd.items()}, str(path))
    return _info(path, family="hunyuan15_vae", latent_channels=VAE15_Z, downscale=16, temporal_ratio=4,
                 widths=widths, needs_detection_patch=widths != VAE15_NATIVE_WIDTHS)


def _vae15_widths(sd):
    """Stage widths of a HunyuanVideo 1.5 VAE state dict, or None for any other VAE."""
    try:
        w = sd["decoder.conv_in.conv.weight"]
        if w.ndim != 5 or w.shape[1] != VAE15_Z or "encoder.down.4.block.0.conv1.conv.weight" not in sd:
            return None
        return [sd[f"encoder.down.{i}.block.0.conv1.conv.weight"].shape[0] for i in range(5)]
    except (TypeError, KeyError, AttributeError):
        return None


@contextlib.contextmanager
def hunyuan15_vae_detection_patch():
    """Let ComfyUI load a tiny HunyuanVideo 1.5 VAE: wraps comfy.sd.VAE.__init__ so that,
    for a 1.5 VAE state dict only, the block_out_channels ComfyUI hard-codes come from the
    tensors (encoder.down.N.block.0.conv1). Everything else (detection, the ddconfig, the
    vae_refiner Encoder/Decoder, weight loading, encode/decode) is ComfyUI's own code;
    works for VAELoader too. Restores on exit; yields the ddconfigs ComfyUI passed."""
    import comfy.sd

    def sized(original, widths, seen):
        def build(**cfg):
            cfg = dict(cfg)
            for part in ("encoder_config", "decoder_config"):
                conf = dict(cfg[part])
                if conf["target"].startswith("comfy.ldm.hunyuan_video.vae_refiner."):
                    seen.append(dict(conf["params"]))
                    conf["params"] = dict(conf["params"], block_out_channels=list(widths))
                cfg[part] = conf
            return original(**cfg)
        return build

    with vae_constructor_patch(comfy.sd, "AutoencodingEngine", _vae15_widths, sized) as seen:
        yield seen


# ---------------------------------------------------------------------------------------

DIT_FILES = {
    "hunyuan_video_t2v": "tiny_hunyuan_video_t2v_720p.safetensors",
    "hunyuan_video_i2v": "tiny_hunyuan_video_i2v_720p.safetensors",
    "hunyuan_video15_t2v": "tiny_hunyuanvideo1.5_720p_t2v.safetensors",
}
VAE_FILES = {"hunyuan15_vae": "tiny_hunyuanvideo15_vae.safetensors"}


def write_all(models_dir, *, seed=0):
    """Write every HunyuanVideo fixture under models_dir/diffusion_models and models_dir/vae;
    returns {key: info} (info["name"]: the name ComfyUI's loader nodes list)."""
    from pathlib import Path

    dm, vae = Path(models_dir) / "diffusion_models", Path(models_dir) / "vae"
    return {
        "hunyuan_video_t2v": write_hunyuan_video_dit(dm / DIT_FILES["hunyuan_video_t2v"], seed=seed + 20),
        "hunyuan_video_i2v": write_hunyuan_video_dit(dm / DIT_FILES["hunyuan_video_i2v"], in_channels=33,
                                                     seed=seed + 21),
        "hunyuan_video15_t2v": write_hunyuan_video15_dit(dm / DIT_FILES["hunyuan_video15_t2v"], seed=seed + 22),
        "hunyuan15_vae": write_hunyuan15_vae(vae / VAE_FILES["hunyuan15_vae"], seed=seed + 23),
    }
