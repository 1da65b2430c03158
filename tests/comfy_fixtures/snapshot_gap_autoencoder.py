"""Stand-in for comfy/ldm/models/autoencoder.py, which the shared ComfyUI 0.29.0 snapshot
(../shared/comfyui/comfyui-0.29.0.tar.xz) lacks: its "model files" filter dropped the
only source file under a `models/` folder, so `import comfy.sd` fails there.

Only `.ci/run` uses this file, and only when the unpacked snapshot misses the module: it
copies it to <ComfyUI>/comfy/ldm/models/autoencoder.py in its temporary unpack. A real
ComfyUI checkout (git clone) has the real module and never sees this one.

Written from the interface comfy/sd.py uses (constructor arguments, encode/decode, the
state-dict names it loads) and the public VAE semantics of the LDM and FLUX.2 reference
code, not from ComfyUI's file:
  - Encoder/Decoder come from comfy.ldm.modules.diffusionmodules.model (the snapshot has
    them); the encoder emits mean and log-variance, and encoding returns the mean.
  - AutoencoderKL: 1x1 quant_conv (2 z -> 2 embed) and post_quant_conv (embed -> z);
    with ddconfig["batch_norm_latent"] (FLUX.2) the mean is patchified 2x2 and
    normalized with the stored running statistics (BatchNorm, eps 1e-4, no affine);
    decoding inverts both.
Checked against the real module (ComfyUI git 4f874c5e) on the tiny FLUX.1 and FLUX.2 VAEs
of tiny_models.py: encode and decode agree to 3e-6 (fp32).
"""
from __future__ import annotations

import torch
from einops import rearrange

import comfy.ops
from comfy.ldm.modules.diffusionmodules.model import Decoder, Encoder
from comfy.ldm.util import instantiate_from_config

ops = comfy.ops.disable_weight_init
BN_EPS = 1e-4


class DiagonalGaussianRegularizer(torch.nn.Module):
    """(mean | log-variance) channels -> the mean (deterministic encode)."""

    def forward(self, z):
        return torch.chunk(z, 2, dim=1)[0], {}


class EmptyRegularizer(torch.nn.Module):
    def forward(self, z):
        return z, {}


class AutoencodingEngine(torch.nn.Module):
    def __init__(self, encoder_config=None, decoder_config=None, regularizer_config=None, **kwargs):
        super().__init__()
        self.encoder = instantiate_from_config(encoder_config)
        self.decoder = instantiate_from_config(decoder_config)
        self.regularization = instantiate_from_config(regularizer_config)

    def encode(self, x, return_reg_log=False, unregularized=False):
        z = self.encoder(x)
        if unregularized:
            return z, {}
        z, reg_log = self.regularization(z)
        return (z, reg_log) if return_reg_log else z

    def decode(self, z, **kwargs):
        return self.decoder(z, **kwargs)


class AutoencoderKL(AutoencodingEngine):
    def __init__(self, embed_dim, ddconfig, decoder_ddconfig=None, **kwargs):
        torch.nn.Module.__init__(self)
        ddconfig = dict(ddconfig)
        batch_norm = ddconfig.pop("batch_norm_latent", False)
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**(dict(decoder_ddconfig) if decoder_ddconfig is not None else ddconfig))
        self.regularization = DiagonalGaussianRegularizer()
        z = ddconfig["z_channels"]
        self.quant_conv = ops.Conv2d((2 if ddconfig.get("double_z", True) else 1) * z, 2 * embed_dim, 1)
        self.post_quant_conv = ops.Conv2d(embed_dim, z, 1)
        self.bn = torch.nn.BatchNorm2d(4 * embed_dim, eps=BN_EPS, affine=False) if batch_norm else None

    def encode(self, x, return_reg_log=False, unregularized=False):
        z = self.quant_conv(self.encoder(x))
        if unregularized:
            return z, {}
        z, reg_log = self.regularization(z)
        if self.bn is not None:
            z = rearrange(z, "b c (h ph) (w pw) -> b (c ph pw) h w", ph=2, pw=2)
            mean = self.bn.running_mean.to(z)[None, :, None, None]
            std = torch.sqrt(self.bn.running_var.to(z)[None, :, None, None] + BN_EPS)
            z = (z - mean) / std
        return (z, reg_log) if return_reg_log else z

    def decode(self, z, **kwargs):
        if self.bn is not None:
            mean = self.bn.running_mean.to(z)[None, :, None, None]
            std = torch.sqrt(self.bn.running_var.to(z)[None, :, None, None] + BN_EPS)
            z = rearrange(z * std + mean, "b (c ph pw) h w -> b c (h ph) (w pw)", ph=2, pw=2)
        return self.decoder(self.post_quant_conv(z), **kwargs)
