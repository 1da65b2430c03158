"""The model geometries the benchmark runs: random-initialised checkpoints in the real
formats at full width (depth is an option), and what a forward of each needs."""
from __future__ import annotations

import torch


class Flux2Klein:
    """FLUX.2 [klein] 4B: hidden 3072 (24 heads), SwiGLU 9216, 5 + 20 blocks, 512 text
    tokens of width 7680, 128-channel latents at 1/16, patch 1 (16 px tokens)."""

    name, key = "FLUX.2 [klein] 4B", "flux2"
    hidden, text_tokens, context_dim, channels, patch = 3072, 512, 7680, 128, 1

    def write_model(self, path, hidden, depth, single):
        from comfy_fixtures import tiny_models

        tiny_models.write_flux2_dit(path, hidden=hidden, context_in_dim=self.context_dim, depth=depth,
                                    depth_single=single)

    def write_vae(self, path, width):
        from comfy_fixtures import tiny_models

        tiny_models.write_flux2_vae(path, decoder_ch=width)

    def latent_shape(self, width, height, frames):
        return (1, self.channels, height // 16, width // 16)

    def grid(self, fc, shape):
        return fc.TokenGrid(1, shape[-2], shape[-1])

    def strip_shape(self, n_tokens):
        """A native latent holding n tokens: the same-token ceiling."""
        return (1, self.channels, 1, n_tokens)


class Wan21:
    """Wan 2.1 T2V 1.3B: dim 1536 (12 heads), FFN 8960, 30 blocks, cross-attention to 512
    text tokens of width 4096, 16-channel latents at 1/8 in space and 1/4 in time, patch
    (1, 2, 2) (16 px tokens)."""

    name, key = "Wan 2.1 1.3B", "wan21"
    hidden, ffn, text_tokens, context_dim, channels, patch = 1536, 8960, 512, 4096, 16, 2

    def write_model(self, path, hidden, depth, single):
        from comfy_fixtures import tiny_wan

        tiny_wan.write_wan21_t2v_dit(path, dim=hidden, ffn_dim=self.ffn if hidden == self.hidden else 2 * hidden,
                                     num_layers=depth)

    def write_vae(self, path, width):
        from comfy_fixtures import tiny_wan

        tiny_wan.write_wan21_vae(path, dim=width)

    def latent_shape(self, width, height, frames):
        return (1, self.channels, 1 + (frames - 1) // 4, height // 8, width // 8)

    def grid(self, fc, shape):
        return fc.TokenGrid(shape[2], shape[-2] // 2, shape[-1] // 2, frame_stride=4)

    def strip_shape(self, n_tokens):
        return (1, self.channels, 1, 2, 2 * n_tokens)


FAMILIES = {f.key: f for f in (Flux2Klein(), Wan21())}
