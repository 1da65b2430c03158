"""Progressive resolution on the canvas: Spectral Progressive Diffusion (SPD) stages as
token layouts, and progressive foveation (resolution that grows over time AND space).

The sampler's latent keeps its full size throughout ("canvas", canvas.py). A stage at
scale 2^-k is the layout whose tokens are level k, or coarser where the final layout is
coarser:
    level of a token in stage i = max(final level, k_i),
so plain SPD (final layout all full resolution) runs all-level-k layouts, which the model
reads exactly as the native forward on the 1/2^k latent (DESIGN.md invariant 2); with a
fovea as the final layout the periphery never gets finer than the fovea allows.

A switch from stage i to i+1 at time t (fov_core.spectral, fov_core.schedule):
  - the stage-i latent (the level view canvas[..., ::2^k_i, ::2^k_i]) is spectrally
    expanded to scale 2^-k_{i+1}, arriving at t~ = r t / (1 + (r - 1) t);
  - tokens whose level drops take the expanded values;
  - tokens that keep their level (the periphery of a fovea) are brought from t to t~ by
    forward noising, x(t~) = a x(t) + sqrt(t~^2 - a^2 t^2) eps, a = (1 - t~) / (1 - t),
    so every token is at one noise level again (fov_core.spectral.forward_noise).
Scales are powers of two (stages are token levels); the latent's token grid must be
divisible by the coarsest block.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import torch

from .canvas import LatentPacking, level_view
from .rasterize import assign_levels
from .spectral import forward_noise, spectral_expand


def stage_level(scale: float) -> int:
    """k with scale = 2^-k (stages are token levels)."""
    k = round(-math.log2(scale))
    if not 0 < scale <= 1 or abs(2.0**-k - scale) > 1e-9:
        raise ValueError(f"progressive scales are powers of two, like 0.25, 0.5 and 1 (each stage is a token "
                         f"level); got {scale:g}")
    return k


def stage_level_maps(final: torch.Tensor, scales: Sequence[float]) -> List[torch.Tensor]:
    """Level map of every stage: max(final level, stage level), made block consistent
    (the final map and every stage level are; their maximum keeps whole blocks)."""
    T, H, W = final.shape
    coarsest = 2 ** stage_level(scales[0])
    if H % coarsest or W % coarsest:
        raise ValueError(
            f"the latent is {H}x{W} tokens; progressive resolution from scale {scales[0]:g} needs a token grid "
            f"divisible by {coarsest}: use an image whose sides are multiples of {coarsest} tokens "
            f"({coarsest} x 16 px for most models)")
    maps = []
    for s in scales:
        k = stage_level(s)
        desired = torch.clamp(final, min=k)
        maps.append(assign_levels(desired, sorted(set(desired.unique().tolist()) | {0})))
    return maps


def switch_canvas(canvas: torch.Tensor, src: LatentPacking, dst: LatentPacking, scale_from: float,
                  scale_to: float, t: float, expansion_noise: torch.Tensor, eps: torch.Tensor,
                  transform: str = "dct"):
    """The canvas of stage `dst` at t~ from the canvas of stage `src` at t (module docstring).

    expansion_noise: N(0, 1) for the expanded latent (shape of the stage-`scale_to` latent);
    eps: N(0, 1) shaped like the canvas, for the tokens that keep their level (unused when
    every token gets finer). Returns (canvas, t~), the canvas canonical for `dst`.
    """
    k_from, k_to = stage_level(scale_from), stage_level(scale_to)
    low = level_view(canvas, k_from).contiguous()
    expanded, t_new = spectral_expand(low, expansion_noise, t, transform)
    s = 2**k_to
    Hl, Wl = canvas.shape[-2:]
    full = expanded.repeat_interleave(s, -2).repeat_interleave(s, -1)[..., :Hl, :Wl]
    finer = dst.pixel_levels(canvas.device) < src.pixel_levels(canvas.device)  # (T, Hl, Wl)
    if canvas.ndim == 4:
        finer = finer[0]
    if bool(finer.all()):
        return dst.canonicalize(full.to(canvas.dtype)), t_new
    kept = forward_noise(canvas, t, t_new, eps)
    return dst.canonicalize(torch.where(finer, full.to(canvas.dtype), kept)), t_new
