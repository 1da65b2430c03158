"""Tiny random-initialised Qwen-Image and Z-Image checkpoints in the real on-disk key formats.

Companion of tiny_models.py (FLUX / Chroma) and tiny_wan.py; same conventions: every
writer produces a ``.safetensors`` file whose keys follow the real release's format (the
naming of Comfy-Org's repackaged ``split_files/diffusion_models`` files, which is also
ComfyUI's module naming), scaled down, loaded by ComfyUI's own
``comfy.sd.load_diffusion_model`` (UNETLoader). Imports only torch and safetensors; the
detection patches import ComfyUI lazily.

Qwen-Image (comfy/model_detection.py: ``txt_norm.weight`` present -> "qwen_image")
------------------------------------------------------------------------------
Derived from the tensors: in_channels = img_in.weight.shape[1] (64 = 16 latent channels
x 2 x 2), num_layers = number of transformer_blocks.N, "index_timestep_zero" reference
method when ``__index_timestep_zero__`` is present (Qwen-Image-Edit-2511), Layered when
``time_text_embed.addition_t_embedding.weight`` is present. NOT derived (the
QwenImageTransformer2DModel defaults): attention_head_dim 128, num_attention_heads 24
(width 3072), joint_attention_dim 3584 (the Qwen2.5-VL 7B width), axes_dims_rope
(16, 56, 56), patch 2, out_channels 16. So the smallest natively loadable Qwen-Image is
3072 wide (~0.4 B parameters for one block). The tiny one keeps the head dim 128 and the
real RoPE axes but has 2 heads (width 256) and a 64-wide text input; load it inside
``qwen_detection_patch()``, which reads num_attention_heads = img_in.weight.shape[0] // 128
and joint_attention_dim = txt_norm.weight.shape[0] from the tensors (for a real-size file
it changes nothing). Qwen-Image-Edit (2509) has the text-to-image format; its reference
images arrive as ``ref_latents`` (TextEncodeQwenImageEdit / ReferenceLatent).
ComfyUI: supported_models.QwenImage, model_base.QwenImage, latent_formats.Wan21
(16 channels, the Wan 2.1 VAE used on single images: latents (B, 16, 1, H/8, W/8)).

Z-Image (``cap_embedder.1.weight`` and ``noise_refiner.0.attention.k_norm.weight`` ->
"lumina2"; width 3840 -> the Z-Image settings)
------------------------------------------------------------------------------
Derived: dim = cap_embedder.1.weight.shape[0], cap_feat_dim = its shape[1], n_layers =
number of layers.N, pad_tokens_multiple 32 when ``cap_pad_token`` is present. Only a
3840-wide model gets the Z-Image settings (30 heads of 128, axes (32, 48, 48), rope
theta 256, SwiGLU 8/3, z_image_modulation, time_scale 1000); n_refiner_layers is fixed at
2 (two noise-refiner and two context-refiner blocks) -> ~0.9 B parameters at least. The
tiny one is 256 wide (2 heads of 128: the real head dim and axes; 256 is the smallest
width whose adaLN input min(dim, 256) matches the 256-wide timestep embedding) with one
main layer; load it inside ``zimage_detection_patch()``, which gives a lumina2 model of
another width the Z-Image settings (n_heads = dim // 128) when its blocks carry Z-Image's
modulation (``layers.0.adaLN_modulation.0.weight``, no SiLU in front). It is then built
by supported_models.Lumina2 (ZImage matches width 3840 only): the same model_base.Lumina2 /
comfy.ldm.lumina.model.NextDiT class, latent_formats.Flux (the FLUX.1 VAE), patch 2.
"""
from __future__ import annotations

import contextlib

import torch

from .tiny_models import _SD, _info

__all__ = ["write_qwen_image_dit", "write_zimage_dit", "write_all", "qwen_detection_patch",
           "zimage_detection_patch"]
HEAD_DIM = 128
DIT_FILES = {
    "qwen_image": "tiny_qwen_image.safetensors",
    "qwen_image_edit_2511": "tiny_qwen_image_edit_2511.safetensors",
    "z_image": "tiny_z_image.safetensors",
}


def _qwen_block(s, p, dim):
    for stream in ("img", "txt"):
        s.linear(f"{p}.{stream}_mod.1", 6 * dim, dim)
        s.linear(f"{p}.{stream}_mlp.net.0.proj", 4 * dim, dim)
        s.linear(f"{p}.{stream}_mlp.net.2", dim, 4 * dim)
    for name in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"):
        s.linear(f"{p}.attn.{name}", dim, dim)
    for name in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
        s.ones(f"{p}.attn.{name}.weight", HEAD_DIM)


def write_qwen_image_dit(path, *, heads=2, num_layers=2, context_dim=64, edit_2511=False, seed=0, std=0.05):
    """Qwen-Image (2512) / Qwen-Image-Edit (2509; edit_2511=True adds the 2511 marker).

    Keys: img_in, txt_norm, txt_in, time_text_embed.timestep_embedder.linear_{1,2},
    transformer_blocks.N.{img,txt}_mod.1, .attn.{to_q,to_k,to_v,add_q_proj,add_k_proj,
    add_v_proj,to_out.0,to_add_out}, .attn.norm_{q,k,added_q,added_k}, .{img,txt}_mlp.net.
    {0.proj,2}, norm_out.linear, proj_out. Real model: 24 heads (3072), 60 blocks, text 3584.
    """
    dim = heads * HEAD_DIM
    s = _SD(seed, std)
    s.linear("img_in", dim, 64)
    s.ones("txt_norm.weight", context_dim)
    s.linear("txt_in", dim, context_dim)
    s.linear("time_text_embed.timestep_embedder.linear_1", dim, 256)
    s.linear("time_text_embed.timestep_embedder.linear_2", dim, dim)
    for i in range(num_layers):
        _qwen_block(s, f"transformer_blocks.{i}", dim)
    s.linear("norm_out.linear", 2 * dim, dim)
    s.linear("proj_out", 64, dim)
    if edit_2511:
        s.sd["__index_timestep_zero__"] = torch.zeros(0)
    s.save(path)
    return _info(path, family="qwen_image", heads=heads, hidden=dim, num_layers=num_layers, context_dim=context_dim,
                 latent_channels=16, patch_size=2, token_px=16,
                 default_ref_method="index_timestep_zero" if edit_2511 else "index")


def _zimage_block(s, p, dim, ffn, modulation):
    s.linear(f"{p}.attention.qkv", 3 * dim, dim, bias=False)
    s.linear(f"{p}.attention.out", dim, dim, bias=False)
    s.ones(f"{p}.attention.q_norm.weight", HEAD_DIM)
    s.ones(f"{p}.attention.k_norm.weight", HEAD_DIM)
    for name in ("w1", "w3"):
        s.linear(f"{p}.feed_forward.{name}", ffn, dim, bias=False)
    s.linear(f"{p}.feed_forward.w2", dim, ffn, bias=False)
    for name in ("attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2"):
        s.ones(f"{p}.{name}.weight", dim)
    if modulation:
        s.linear(f"{p}.adaLN_modulation.0", 4 * dim, min(dim, 256))


def write_zimage_dit(path, *, dim=256, n_layers=1, cap_feat_dim=64, seed=0, std=0.05):
    """Z-Image (Turbo and base share the format) in ComfyUI's key naming.

    Keys: x_embedder, x_pad_token, cap_pad_token, cap_embedder.{0,1}, t_embedder.mlp.{0,2},
    {noise_refiner,context_refiner,layers}.N.{attention.{qkv,out,q_norm,k_norm},
    attention_norm{1,2}, ffn_norm{1,2}, feed_forward.w{1,2,3}, adaLN_modulation.0 (not in
    context_refiner)}, final_layer.{linear,adaLN_modulation.1}. Real model: dim 3840
    (30 heads), 30 layers, cap_feat_dim 2560 (Qwen3 4B), SwiGLU 10240.
    """
    if dim < 256 or dim % HEAD_DIM:
        raise ValueError(f"dim must be a multiple of {HEAD_DIM} and at least 256, got {dim}")
    ffn = 256 * -(-int(dim * 8.0 / 3.0) // 256)  # FeedForward: int(8/3 dim), rounded up to multiple_of 256
    s = _SD(seed, std)
    s.linear("x_embedder", dim, 64)
    s.rand("x_pad_token", 1, dim)
    s.rand("cap_pad_token", 1, dim)
    s.ones("cap_embedder.0.weight", cap_feat_dim)
    s.linear("cap_embedder.1", dim, cap_feat_dim)
    s.linear("t_embedder.mlp.0", min(dim, 1024), 256)
    s.linear("t_embedder.mlp.2", 256, min(dim, 1024))
    for i in range(2):
        _zimage_block(s, f"noise_refiner.{i}", dim, ffn, True)
        _zimage_block(s, f"context_refiner.{i}", dim, ffn, False)
    for i in range(n_layers):
        _zimage_block(s, f"layers.{i}", dim, ffn, True)
    s.linear("final_layer.linear", 64, dim)
    s.linear("final_layer.adaLN_modulation.1", dim, min(dim, 256))
    s.save(path)
    return _info(path, family="z_image", hidden=dim, heads=dim // HEAD_DIM, n_layers=n_layers, ffn=ffn,
                 context_dim=cap_feat_dim, latent_channels=16, patch_size=2, token_px=16, pad_tokens_multiple=32)


def write_all(models_dir, *, seed=0):
    """Write the fixtures under models_dir/diffusion_models; {key: info} as tiny_models.write_all.
    The VAEs are tiny_wan's wan21_vae (Qwen-Image) and tiny_models' flux_vae (Z-Image)."""
    from pathlib import Path

    dm = Path(models_dir) / "diffusion_models"
    return {
        "qwen_image": write_qwen_image_dit(dm / DIT_FILES["qwen_image"], seed=seed + 20),
        "qwen_image_edit_2511": write_qwen_image_dit(dm / DIT_FILES["qwen_image_edit_2511"], edit_2511=True,
                                                     seed=seed + 21),
        "z_image": write_zimage_dit(dm / DIT_FILES["z_image"], seed=seed + 22),
    }


@contextlib.contextmanager
def _wrap_detection(adjust):
    import comfy.model_detection as md

    original = md.detect_unet_config

    def patched(state_dict, key_prefix, metadata=None):
        cfg = original(state_dict, key_prefix, metadata=metadata)
        if cfg is not None:
            adjust(cfg, state_dict, key_prefix)
        return cfg

    md.detect_unet_config = patched
    try:
        yield
    finally:
        md.detect_unet_config = original


def qwen_detection_patch():
    """Let ComfyUI load a tiny Qwen-Image: for image_model "qwen_image" only, the head count
    and the text width come from the tensors instead of the defaults 24 and 3584. Everything
    else is ComfyUI's own code. Restores on exit."""
    def adjust(cfg, sd, prefix):
        if cfg.get("image_model") == "qwen_image":
            cfg["num_attention_heads"] = sd[f"{prefix}img_in.weight"].shape[0] // HEAD_DIM
            cfg["joint_attention_dim"] = sd[f"{prefix}txt_norm.weight"].shape[0]

    return _wrap_detection(adjust)


def zimage_detection_patch():
    """Let ComfyUI load a tiny Z-Image: a "lumina2" model of another width than 3840 whose
    blocks carry Z-Image's modulation gets ComfyUI's Z-Image settings (the ones
    model_detection gives width 3840) with n_heads = dim // 128. Restores on exit."""
    def adjust(cfg, sd, prefix):
        if (cfg.get("image_model") == "lumina2" and cfg["dim"] not in (2304, 3840)
                and f"{prefix}layers.0.adaLN_modulation.0.weight" in sd):
            heads = cfg["dim"] // HEAD_DIM
            cfg.update(n_heads=heads, n_kv_heads=heads, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512],
                       rope_theta=256.0, ffn_dim_multiplier=8.0 / 3.0, z_image_modulation=True, time_scale=1000.0)
            if f"{prefix}cap_pad_token" in sd:
                cfg["pad_tokens_multiple"] = 32

    return _wrap_detection(adjust)
