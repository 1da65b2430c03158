"""Tiny random-initialised checkpoints in the real on-disk key formats.

Every writer produces a ``.safetensors`` file whose keys and tensor shapes follow the
format of the real release (Black Forest Labs "original" naming, the one ComfyUI's
``diffusion_models``/``vae`` loaders read), scaled down so that ComfyUI's own loaders
(``comfy.sd.load_diffusion_model`` and ``comfy.sd.VAE``) detect the right model family
and a forward pass runs on CPU in well under a second.

This module imports only torch and safetensors, so it can be imported (and the files
written) where ComfyUI is absent. The ComfyUI-side helper ``chroma_detection_patch``
imports ComfyUI lazily.

What ComfyUI derives from the tensors (comfy/model_detection.py, detect_unet_config)
--------------------------------------------------------------------------------
FLUX.1 / Kontext / Chroma (``image_model`` "flux"/"chroma"):
    axes_dim is fixed at [16, 56, 56] (sum 128) and ``num_heads = hidden // 128``, so
    ``hidden`` must be a multiple of 128; the smallest is 128 with one head.
    hidden = img_in.weight.shape[0] (and txt_in), context_in_dim = txt_in.weight.shape[1],
    vec_in_dim = vector_in.in_layer.weight.shape[1], in_channels =
    img_in.weight.shape[1] // 4 (patch 2), guidance_embed = "guidance_in.in_layer.weight"
    present, depth / depth_single_blocks = number of double_blocks.N / single_blocks.N.
    Fixed: mlp_ratio 4, theta 10000, qkv_bias True, out_channels 16, txt_ids_dims [].
FLUX.2 (``double_stream_modulation_img.lin.weight`` present -> "flux2"):
    axes_dim fixed [32, 32, 32, 32] (sum 128), num_heads = hidden // 128, patch 1,
    in_channels = img_in.weight.shape[1] (128), out_channels fixed 128, mlp_ratio 3
    (SiLU-gated MLP), theta 2000, no biases anywhere, global modulation,
    default_ref_method "index" (ref_index_scale 10), txt_ids_dims [3].
Chroma (``distilled_guidance_layer.norms.0.scale`` present):
    the approximator is NOT derived from the tensors: in_dim 64, hidden_dim 5120,
    n_layers 5 and out_dim 3072 are hard-coded, and out_dim must equal the transformer
    width. So the smallest Chroma that ComfyUI loads unaided has hidden 3072 (24 heads)
    plus a 5 x 5120 approximator: ~620M parameters (~2.5 GB fp32) even at depth 1/1.
    ``write_chroma_dit`` writes a tiny Chroma (hidden 128, approximator 64 wide) that is
    detected as Chroma but needs ``chroma_detection_patch()`` around the load to
    instantiate (see there).

Kontext
-------
FLUX.1 Kontext [dev] has no format of its own: it is a FLUX.1 [dev] checkpoint (same
keys and shapes, guidance_in present, in_channels 16) and ComfyUI detects it as
``supported_models.Flux`` / ``model_base.Flux``. The reference image is not baked into
the weights: it arrives as ``reference_latents`` in the conditioning (ReferenceLatent
node) -> ``model_base.Flux.extra_conds`` -> ``ref_latents`` kwarg, and
``ldm.flux.model.Flux._forward`` appends its tokens after the image tokens, with
``default_ref_method`` "offset" (RoPE index 1, h/w offsets) for FLUX.1 and "index"
(index 10, 20, ...) for FLUX.2. Any FLUX.1/FLUX.2 model accepts ref_latents.
``write_flux1_kontext_dit`` therefore just writes a dev-format file.

VAEs (comfy/sd.py, VAE.__init__, the generic ``decoder.conv_in.weight`` branch)
------------------------------------------------------------------------------
The encoder is fixed: ch 128, ch_mult [1, 2, 4, 4], num_res_blocks 2 (~34M params;
it is not derived from the tensors). Only the decoder width is derived:
``decoder_ch = decoder.conv_in.weight.shape[0] // 4``; GroupNorm(32 groups) makes 32
the smallest decoder ch. z_channels = decoder.conv_in.weight.shape[1].
FLUX.1 ae: 16 latent channels, 8x, no quant convs -> AutoencodingEngine.
FLUX.2 ae: z 32, ``bn.running_mean`` present -> batch_norm_latent, 2x2 patchify, so
ComfyUI's VAE reports latent_channels 128 and downscale 16;
``encoder.quant_conv`` / ``decoder.post_quant_conv`` are renamed and the model is
AutoencoderKL (embed_dim = post_quant_conv.weight.shape[1] = 32).

Use
---
    from comfy_fixtures.tiny_models import write_all, chroma_detection_patch
    infos = write_all(tmp_path / "models")           # ~0.9 s, ~310 MB (VAEs dominate)
    patcher = comfy.sd.load_diffusion_model(infos["flux1_dev"]["path"])
    dm = patcher.model.diffusion_model                # comfy.ldm.flux.model.Flux
    out = dm(x16, t, ctx64, y=y32, guidance=g)        # x16: (B, 16, H, W), ctx64: (B, L, 64)
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

__all__ = [
    "FLUX_PE_DIM",
    "write_flux1_dit",
    "write_flux1_kontext_dit",
    "write_flux2_dit",
    "write_chroma_dit",
    "write_flux_vae",
    "write_flux2_vae",
    "write_all",
    "chroma_detection_patch",
]

FLUX_PE_DIM = 128  # sum(axes_dim) for FLUX.1 [16, 56, 56] and FLUX.2 [32, 32, 32, 32]

# Hard-coded by ComfyUI's detection for Chroma's approximator (see chroma_detection_patch).
CHROMA_APPROX_LAYERS = 5
CHROMA_APPROX_IN = 64


class _SD:
    """Collects tensors drawn from one seeded generator, in insertion order."""

    def __init__(self, seed: int, std: float):
        self.g = torch.Generator().manual_seed(seed)
        self.std = std
        self.sd: dict[str, torch.Tensor] = {}

    def rand(self, key, *shape, std=None):
        t = torch.randn(*shape, generator=self.g, dtype=torch.float32)
        self.sd[key] = t.mul_(self.std if std is None else std)

    def ones(self, key, n):
        self.sd[key] = torch.ones(n, dtype=torch.float32)

    def linear(self, prefix, out_f, in_f, bias=True, std=None):
        self.rand(prefix + ".weight", out_f, in_f, std=std)
        if bias:
            self.rand(prefix + ".bias", out_f, std=std)

    def conv(self, prefix, out_c, in_c, k, bias=True, std=None):
        if std is None:  # fan-in scaled, capped at self.std: keeps activations O(1)
            std = min(self.std, (in_c * k * k) ** -0.5)
        self.rand(prefix + ".weight", out_c, in_c, k, k, std=std)
        if bias:
            self.rand(prefix + ".bias", out_c, std=0.01)

    def group_norm(self, prefix, n):
        self.ones(prefix + ".weight", n)
        self.sd[prefix + ".bias"] = torch.zeros(n, dtype=torch.float32)

    def save(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.sd.items()}, str(path))
        return path


def _check_hidden(hidden):
    if hidden <= 0 or hidden % FLUX_PE_DIM:
        raise ValueError(f"hidden must be a positive multiple of {FLUX_PE_DIM} (num_heads = hidden // {FLUX_PE_DIM}), got {hidden}")


def _dit_std(std, hidden):
    """Default weight std: 0.02 at hidden 128, scaled by 1/sqrt(width) above it so that
    outputs stay O(0.1-1) whatever the width."""
    return std if std is not None else 0.02 * (FLUX_PE_DIM / hidden) ** 0.5


def _mlp_embedder(s, prefix, in_dim, hidden, bias=True):
    s.linear(prefix + ".in_layer", hidden, in_dim, bias=bias)
    s.linear(prefix + ".out_layer", hidden, hidden, bias=bias)


def _qk_norm(s, prefix, head_dim, suffix):
    s.ones(f"{prefix}.query_norm.{suffix}", head_dim)
    s.ones(f"{prefix}.key_norm.{suffix}", head_dim)


def _double_block(s, p, hidden, mlp_hidden, *, per_block_mod, qkv_bias, bias, gated_mlp, norm_suffix):
    head_dim = FLUX_PE_DIM
    for stream in ("img", "txt"):
        if per_block_mod:
            s.linear(f"{p}.{stream}_mod.lin", 6 * hidden, hidden, bias=True)
        s.linear(f"{p}.{stream}_attn.qkv", 3 * hidden, hidden, bias=qkv_bias)
        _qk_norm(s, f"{p}.{stream}_attn.norm", head_dim, norm_suffix)
        s.linear(f"{p}.{stream}_attn.proj", hidden, hidden, bias=bias)
        s.linear(f"{p}.{stream}_mlp.0", mlp_hidden * (2 if gated_mlp else 1), hidden, bias=bias)
        s.linear(f"{p}.{stream}_mlp.2", hidden, mlp_hidden, bias=bias)


def _single_block(s, p, hidden, mlp_hidden, *, per_block_mod, bias, gated_mlp, norm_suffix):
    s.linear(f"{p}.linear1", 3 * hidden + mlp_hidden * (2 if gated_mlp else 1), hidden, bias=bias)
    s.linear(f"{p}.linear2", hidden, hidden + mlp_hidden, bias=bias)
    _qk_norm(s, f"{p}.norm", FLUX_PE_DIM, norm_suffix)
    if per_block_mod:
        s.linear(f"{p}.modulation.lin", 3 * hidden, hidden, bias=True)


def _info(path, **kw):
    path = Path(path)
    return {"path": str(path), "name": path.name, "bytes": os.path.getsize(path), **kw}


def write_flux1_dit(path, *, depth=1, depth_single=1, hidden=128, context_in_dim=64, vec_in_dim=32,
                    guidance=True, in_channels=16, seed=0, std=None):
    """FLUX.1 [dev] (guidance=True) or [schnell] (guidance=False) in BFL key format.

    Keys: img_in, time_in.{in,out}_layer, vector_in.*, guidance_in.* (dev only), txt_in,
    double_blocks.N.{img,txt}_{mod.lin,attn.qkv,attn.norm.{query,key}_norm.scale,
    attn.proj,mlp.0,mlp.2}, single_blocks.N.{linear1,linear2,norm.*,modulation.lin},
    final_layer.{linear,adaLN_modulation.1}. Real model: hidden 3072 (24 heads),
    depth 19/38, context_in_dim 4096 (T5-XXL), vec_in_dim 768 (CLIP-L pooled).
    ComfyUI: supported_models.Flux (dev) / FluxSchnell, model_base.Flux,
    ldm.flux.model.Flux, latent_formats.Flux (16 ch), patch 2.
    in_channels=16 is the plain model; 96 would be Fill/inpaint (FluxInpaint),
    32 a Canny/Depth control model. Returns an info dict.
    """
    _check_hidden(hidden)
    s = _SD(seed, _dit_std(std, hidden))
    p = 2
    mlp_hidden = 4 * hidden
    s.linear("img_in", hidden, in_channels * p * p)
    _mlp_embedder(s, "time_in", 256, hidden)
    if vec_in_dim:
        _mlp_embedder(s, "vector_in", vec_in_dim, hidden)
    if guidance:
        _mlp_embedder(s, "guidance_in", 256, hidden)
    s.linear("txt_in", hidden, context_in_dim)
    for i in range(depth):
        _double_block(s, f"double_blocks.{i}", hidden, mlp_hidden, per_block_mod=True, qkv_bias=True,
                      bias=True, gated_mlp=False, norm_suffix="scale")
    for i in range(depth_single):
        _single_block(s, f"single_blocks.{i}", hidden, mlp_hidden, per_block_mod=True, bias=True,
                      gated_mlp=False, norm_suffix="scale")
    s.linear("final_layer.linear", 16 * p * p, hidden)
    s.linear("final_layer.adaLN_modulation.1", 2 * hidden, hidden)
    s.save(path)
    return _info(path, family="flux1", model_base="Flux",
                 supported_model="Flux" if guidance else "FluxSchnell",
                 hidden=hidden, num_heads=hidden // FLUX_PE_DIM, depth=depth, depth_single_blocks=depth_single,
                 context_in_dim=context_in_dim, vec_in_dim=vec_in_dim or None, guidance_embed=bool(guidance),
                 in_channels=in_channels, latent_channels=16, patch_size=p)


def write_flux1_kontext_dit(path, **kw):
    """FLUX.1 Kontext [dev]: identical format to FLUX.1 [dev] (see module docstring);
    ComfyUI detects it as supported_models.Flux and feeds the reference image through
    conditioning ``reference_latents``. Same arguments as write_flux1_dit."""
    kw.setdefault("guidance", True)
    info = write_flux1_dit(path, **kw)
    info["family"] = "flux1_kontext"
    return info


def write_flux2_dit(path, *, depth=1, depth_single=1, hidden=128, context_in_dim=64, guidance=False,
                    in_channels=128, seed=0, std=None):
    """FLUX.2 in BFL key format; guidance=False is [klein] (distilled and base),
    guidance=True is [dev] (which has guidance_in).

    Keys: img_in, time_in, [guidance_in], txt_in (all bias-free),
    double_stream_modulation_{img,txt}.lin, single_stream_modulation.lin,
    double_blocks.N.{img,txt}_{attn.qkv,attn.norm.*_norm.scale,attn.proj,mlp.0,mlp.2}
    (mlp.0 is 2*3*hidden wide: SiLU-gated), single_blocks.N.{linear1,linear2,norm.*},
    final_layer.{linear,adaLN_modulation.1}. Real klein-4B: hidden 3072 (24 heads),
    depth 5/20, context 7680 (3 stacked Qwen3-4B layers); klein-9B: hidden 4096,
    depth 8/24, context 12288; dev: hidden 6144, 8/48, context 15360 (Mistral).
    ComfyUI: supported_models.Flux2, model_base.Flux2, ldm.flux.model.Flux,
    latent_formats.Flux2 (128 ch = 32 VAE channels patchified 2x2 at /16), patch 1.
    """
    _check_hidden(hidden)
    s = _SD(seed, _dit_std(std, hidden))
    mlp_hidden = 3 * hidden
    s.linear("img_in", hidden, in_channels, bias=False)
    _mlp_embedder(s, "time_in", 256, hidden, bias=False)
    if guidance:
        _mlp_embedder(s, "guidance_in", 256, hidden, bias=False)
    s.linear("txt_in", hidden, context_in_dim, bias=False)
    s.linear("double_stream_modulation_img.lin", 6 * hidden, hidden, bias=False)
    s.linear("double_stream_modulation_txt.lin", 6 * hidden, hidden, bias=False)
    s.linear("single_stream_modulation.lin", 3 * hidden, hidden, bias=False)
    for i in range(depth):
        _double_block(s, f"double_blocks.{i}", hidden, mlp_hidden, per_block_mod=False, qkv_bias=False,
                      bias=False, gated_mlp=True, norm_suffix="scale")
    for i in range(depth_single):
        _single_block(s, f"single_blocks.{i}", hidden, mlp_hidden, per_block_mod=False, bias=False,
                      gated_mlp=True, norm_suffix="scale")
    s.linear("final_layer.linear", 128, hidden, bias=False)
    s.linear("final_layer.adaLN_modulation.1", 2 * hidden, hidden, bias=False)
    s.save(path)
    return _info(path, family="flux2", model_base="Flux2", supported_model="Flux2",
                 hidden=hidden, num_heads=hidden // FLUX_PE_DIM, depth=depth, depth_single_blocks=depth_single,
                 context_in_dim=context_in_dim, vec_in_dim=None, guidance_embed=bool(guidance),
                 in_channels=in_channels, latent_channels=128, patch_size=1)


def write_chroma_dit(path, *, depth=1, depth_single=1, hidden=128, context_in_dim=64,
                     approximator_hidden=64, seed=0, std=None):
    """Chroma in its release key format (.scale norms, no time_in/vector_in/guidance_in,
    no per-block modulation; a ``distilled_guidance_layer`` approximator makes all
    modulations from (timestep, guidance, block index)).

    Keys: img_in, txt_in, distilled_guidance_layer.{in_proj, layers.K.{in,out}_layer,
    norms.K.scale, out_proj} (K < 5), double_blocks.N.{img,txt}_{attn.*,mlp.0,mlp.2},
    single_blocks.N.{linear1,linear2,norm.*}, final_layer.linear.
    Real model: hidden 3072, depth 19/38, context 4096 (T5-XXL, unpadded), approximator
    64 -> 5120 x5 -> 3072.

    The default, hidden 128 with a 64 wide approximator (~1.2 MB), is detected by ComfyUI as
    supported_models.Chroma, but comfy.sd.load_diffusion_model only succeeds inside
    ``chroma_detection_patch()``, which reads the approximator width from the tensors
    (ComfyUI alone instantiates only hidden 3072 and approximator 5120).
    """
    _check_hidden(hidden)
    if 3 * depth_single + 12 * depth + 2 > 344:
        raise ValueError("Chroma's modulation index has 344 slots: 3*single + 12*double + 2 must fit")
    s = _SD(seed, _dit_std(std, hidden))
    mlp_hidden = 4 * hidden
    s.linear("img_in", hidden, 64)
    s.linear("txt_in", hidden, context_in_dim)
    a = "distilled_guidance_layer"
    s.linear(f"{a}.in_proj", approximator_hidden, CHROMA_APPROX_IN)
    for k in range(CHROMA_APPROX_LAYERS):
        _mlp_embedder(s, f"{a}.layers.{k}", approximator_hidden, approximator_hidden)
    for k in range(CHROMA_APPROX_LAYERS):
        s.ones(f"{a}.norms.{k}.scale", approximator_hidden)
    s.linear(f"{a}.out_proj", hidden, approximator_hidden)
    for i in range(depth):
        _double_block(s, f"double_blocks.{i}", hidden, mlp_hidden, per_block_mod=False, qkv_bias=True,
                      bias=True, gated_mlp=False, norm_suffix="scale")
    for i in range(depth_single):
        _single_block(s, f"single_blocks.{i}", hidden, mlp_hidden, per_block_mod=False, bias=True,
                      gated_mlp=False, norm_suffix="scale")
    s.linear("final_layer.linear", 64, hidden)
    s.save(path)
    return _info(path, family="chroma", model_base="Chroma", supported_model="Chroma",
                 hidden=hidden, num_heads=hidden // FLUX_PE_DIM, depth=depth, depth_single_blocks=depth_single,
                 context_in_dim=context_in_dim, vec_in_dim=None, guidance_embed=None,
                 approximator_hidden=approximator_hidden, in_channels=16, latent_channels=16, patch_size=2)


@contextlib.contextmanager
def chroma_detection_patch():
    """Let ComfyUI load a tiny Chroma: wraps comfy.model_detection.detect_unet_config so
    that, for image_model "chroma" only, the approximator in_dim / hidden_dim / n_layers /
    out_dim come from the tensor shapes instead of the hard-coded 64/5120/5/3072.
    Everything else (detection, supported_models.Chroma, model_base.Chroma, weight
    loading) is ComfyUI's own code. Imports ComfyUI lazily; restores on exit.

        with chroma_detection_patch():
            patcher = comfy.sd.load_diffusion_model(path)
    """
    import comfy.model_detection as md

    original = md.detect_unet_config

    def patched(state_dict, key_prefix, metadata=None):
        cfg = original(state_dict, key_prefix, metadata=metadata)
        if cfg is not None and cfg.get("image_model") == "chroma":
            a = f"{key_prefix}distilled_guidance_layer."
            w_in = state_dict.get(a + "in_proj.weight")
            w_out = state_dict.get(a + "out_proj.weight")
            if w_in is not None and w_out is not None:
                n = 0
                while f"{a}layers.{n}.in_layer.weight" in state_dict:
                    n += 1
                cfg["in_dim"] = w_in.shape[1]
                cfg["hidden_dim"] = w_in.shape[0]
                cfg["out_dim"] = w_out.shape[0]
                cfg["n_layers"] = n
        return cfg

    md.detect_unet_config = patched
    try:
        yield
    finally:
        md.detect_unet_config = original


def _resnet(s, p, c_in, c_out):
    s.group_norm(p + ".norm1", c_in)
    s.conv(p + ".conv1", c_out, c_in, 3)
    s.group_norm(p + ".norm2", c_out)
    s.conv(p + ".conv2", c_out, c_out, 3)
    if c_in != c_out:
        s.conv(p + ".nin_shortcut", c_out, c_in, 1)


def _attn(s, p, c):
    s.group_norm(p + ".norm", c)
    for n in ("q", "k", "v", "proj_out"):
        s.conv(f"{p}.{n}", c, c, 1)


_VAE_CH_MULT = (1, 2, 4, 4)  # fixed by ComfyUI for this VAE family
_VAE_ENC_CH = 128            # fixed by ComfyUI (encoder width is not read from the tensors)
_VAE_RES_BLOCKS = 2          # fixed by ComfyUI


def _vae_encoder(s, z_channels):
    ch, mult, nrb = _VAE_ENC_CH, _VAE_CH_MULT, _VAE_RES_BLOCKS
    s.conv("encoder.conv_in", ch, 3, 3)
    in_mult = (1,) + mult
    block_in = ch
    for i, m in enumerate(mult):
        block_in = ch * in_mult[i]
        block_out = ch * m
        for j in range(nrb):
            _resnet(s, f"encoder.down.{i}.block.{j}", block_in, block_out)
            block_in = block_out
        if i != len(mult) - 1:
            s.conv(f"encoder.down.{i}.downsample.conv", block_in, block_in, 3)
    _resnet(s, "encoder.mid.block_1", block_in, block_in)
    _attn(s, "encoder.mid.attn_1", block_in)
    _resnet(s, "encoder.mid.block_2", block_in, block_in)
    s.group_norm("encoder.norm_out", block_in)
    s.conv("encoder.conv_out", 2 * z_channels, block_in, 3)


def _vae_decoder(s, z_channels, ch):
    mult, nrb = _VAE_CH_MULT, _VAE_RES_BLOCKS
    block_in = ch * mult[-1]
    s.conv("decoder.conv_in", block_in, z_channels, 3)
    _resnet(s, "decoder.mid.block_1", block_in, block_in)
    _attn(s, "decoder.mid.attn_1", block_in)
    _resnet(s, "decoder.mid.block_2", block_in, block_in)
    for i in reversed(range(len(mult))):
        block_out = ch * mult[i]
        for j in range(nrb + 1):
            _resnet(s, f"decoder.up.{i}.block.{j}", block_in, block_out)
            block_in = block_out
        if i != 0:
            s.conv(f"decoder.up.{i}.upsample.conv", block_in, block_in, 3)
    s.group_norm("decoder.norm_out", block_in)
    s.conv("decoder.conv_out", 3, block_in, 3)


def _check_decoder_ch(decoder_ch):
    if decoder_ch <= 0 or decoder_ch % 32:
        raise ValueError(f"decoder_ch must be a positive multiple of 32 (GroupNorm with 32 groups), got {decoder_ch}")


def write_flux_vae(path, *, decoder_ch=32, seed=0, std=0.05):
    """FLUX.1 ae.safetensors format (also used by Chroma, Kontext): 16 latent channels,
    8x down/up-scale, no quant_conv/post_quant_conv.

    Encoder width is fixed by ComfyUI (ch 128, ~34M params, ~130 MB fp32); the decoder
    is ``decoder_ch`` wide (real: 128; minimum 32). A 1x16x32x32 latent decodes to
    256x256. ComfyUI: VAE.latent_channels 16, downscale_ratio 8, AutoencodingEngine.
    """
    _check_decoder_ch(decoder_ch)
    s = _SD(seed, std)
    _vae_encoder(s, 16)
    _vae_decoder(s, 16, decoder_ch)
    s.save(path)
    return _info(path, family="flux1_vae", latent_channels=16, downscale=8, z_channels=16,
                 decoder_ch=decoder_ch, encoder_ch=_VAE_ENC_CH)


def write_flux2_vae(path, *, decoder_ch=32, seed=0, std=0.05):
    """FLUX.2 VAE format: z 32 channels at /8, encoder.quant_conv (64->64, 1x1),
    decoder.post_quant_conv (32->32, 1x1), and a latent BatchNorm (bn.running_mean /
    bn.running_var / bn.num_batches_tracked over 128 = 32 x 2 x 2 patchified channels).

    ComfyUI: VAE.latent_channels 128, downscale_ratio 16 (the 2x2 patchify happens inside
    the VAE), AutoencoderKL with batch_norm_latent. A 1x128x16x16 latent decodes to
    256x256. Encoder width fixed by ComfyUI (ch 128); decoder ``decoder_ch`` wide.
    """
    _check_decoder_ch(decoder_ch)
    s = _SD(seed, std)
    _vae_encoder(s, 32)
    s.conv("encoder.quant_conv", 64, 64, 1)
    s.conv("decoder.post_quant_conv", 32, 32, 1)
    _vae_decoder(s, 32, decoder_ch)
    s.rand("bn.running_mean", 128, std=0.1)
    s.sd["bn.running_var"] = 1.0 + 0.5 * torch.rand(128, generator=s.g, dtype=torch.float32)
    s.sd["bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
    s.save(path)
    return _info(path, family="flux2_vae", latent_channels=128, downscale=16, z_channels=32,
                 decoder_ch=decoder_ch, encoder_ch=_VAE_ENC_CH)


DIT_FILES = {
    "flux1_dev": "tiny_flux1_dev.safetensors",
    "flux1_schnell": "tiny_flux1_schnell.safetensors",
    "flux1_kontext": "tiny_flux1_kontext_dev.safetensors",
    "flux2_klein": "tiny_flux2_klein.safetensors",
    "chroma": "tiny_chroma.safetensors",
}
VAE_FILES = {
    "flux_vae": "tiny_flux_ae.safetensors",
    "flux2_vae": "tiny_flux2_ae.safetensors",
}


def write_all(models_dir):
    """Write every fixture under models_dir/diffusion_models and models_dir/vae (the Chroma
    one needs chroma_detection_patch() to load).

    Returns {key: info dict} where info["name"] is the file name as ComfyUI's loader
    nodes list it (UNETLoader unet_name / VAELoader vae_name) and info["path"] the path.
    """
    models_dir = Path(models_dir)
    dm, vae = models_dir / "diffusion_models", models_dir / "vae"
    return {
        "flux1_dev": write_flux1_dit(dm / DIT_FILES["flux1_dev"], guidance=True, seed=0),
        "flux1_schnell": write_flux1_dit(dm / DIT_FILES["flux1_schnell"], guidance=False, seed=1),
        "flux1_kontext": write_flux1_kontext_dit(dm / DIT_FILES["flux1_kontext"], seed=2),
        "flux2_klein": write_flux2_dit(dm / DIT_FILES["flux2_klein"], seed=3),
        "flux_vae": write_flux_vae(vae / VAE_FILES["flux_vae"], seed=10),
        "flux2_vae": write_flux2_vae(vae / VAE_FILES["flux2_vae"], seed=11),
        "chroma": write_chroma_dit(dm / DIT_FILES["chroma"], seed=4),
    }

