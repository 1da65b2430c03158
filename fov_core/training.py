"""Foveated training (post-training a LoRA): training images, random foveae, the loss.

Paper (Chao et al., "Foveated training"; the facts marked (code) come from its release):
- Target: z_fov = Merge(E(x), E(downsample(x)), M): the full-resolution encode in the fovea,
  the encode of the image downsampled by 2^k in the level-k periphery (`canvas.merge_levels`,
  `canvas.downsample_image`), never a pooled full-resolution latent.
- Noise i.i.d. N(0, 1) per packed token (`LatentPacking.noise`), one sigma per sample, the
  flow-matching pair x_t = (1 - sigma) x0 + sigma eps, velocity v = eps - x0.
- Loss: the velocity MSE over the L packed tokens, so a level-k token counts once, not once
  per full-resolution position it covers (`packed_velocity_loss`).
- Foveae (code, `_create_random_foveation_mask`): a random circle per sample, center
  uniform in [-0.3, 0.3]^2 around the image center (image coordinates [-0.5, 0.5], i.e.
  x, y in [0.2, 0.8] here), radius uniform in [0.2, 0.5] of the half-diagonal; or a fixed
  fovea per image from its saliency map or its object boxes.

Pure PyTorch; the ComfyUI side (nodes/lora_training.py) runs the model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .canvas import LatentPacking
from .fovea import Fovea
from .policy import LevelPolicy
from .regions import Box, Gaze
from .saliency import gaze_from_saliency, spectral_residual_saliency

CENTER_RANGE = 0.3  # (code) circle centers: image center +- 0.3 of the image size, per axis
RADIUS_RANGE = (0.2, 0.5)  # (code) circle radii, fractions of the half-diagonal
FOVEA_MODES = ("random circles", "saliency", "boxes")


# ----------------------------------------------------------------------------- foveae
def random_circle(generator: torch.Generator, center_range: float = CENTER_RANGE,
                  radius_range: tuple = RADIUS_RANGE) -> Gaze:
    """The paper's random training fovea: a circle with a uniform center in
    [0.5 - c, 0.5 + c]^2 (normalized image coordinates) and a uniform radius in
    radius_range (fraction of the half-diagonal)."""
    u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
    x = 0.5 + (2.0 * u[0] - 1.0) * center_range
    y = 0.5 + (2.0 * u[1] - 1.0) * center_range
    r = radius_range[0] + u[2] * (radius_range[1] - radius_range[0])
    return Gaze(x, y, r)


def saliency_gaze(image: torch.Tensor) -> Gaze:
    """The paper's saliency fovea of one (H, W, C) image: spectral-residual saliency (no
    weights; the paper used DeepGaze IIE) through the paper's rule (saliency.py)."""
    return gaze_from_saliency(spectral_residual_saliency(image))


@dataclass(frozen=True)
class TrainingFoveae:
    """Where each training sample keeps full resolution.

    mode "random circles": a new random circle per sample (every step, every image).
    mode "saliency" / "boxes": the fixed regions of each image (`regions[i]`); an image
    without regions (no detection) gets a random circle per sample instead.
    """

    mode: str
    policy: LevelPolicy
    regions: tuple = ()  # per image: a tuple of regions, or None
    feather: float = 0.03

    def __post_init__(self):
        if self.mode not in FOVEA_MODES:
            raise ValueError(f"fovea mode must be one of {list(FOVEA_MODES)}, got {self.mode!r}")
        object.__setattr__(self, "regions", tuple(None if r is None else tuple(r) for r in self.regions))

    def fixed(self, index: int) -> Optional[Fovea]:
        """The image's fixed fovea, or None when it is drawn per sample."""
        if self.mode == "random circles" or index >= len(self.regions) or not self.regions[index]:
            return None
        return Fovea(self.regions[index], self.policy, self.feather)

    def draw(self, index: int, generator: torch.Generator) -> Fovea:
        fixed = self.fixed(index)
        if fixed is not None:
            return fixed
        return Fovea((random_circle(generator),), self.policy, self.feather)


def boxes_in_fitted_image(boxes: Sequence[Box], fit: "ImageFit") -> list:
    """Boxes in normalized coordinates of the original image, mapped into the fitted
    (scaled and center-cropped) image; boxes that fall outside it are dropped."""
    out = []
    for b in boxes:
        x0, x1 = fit.map_x(b.x0), fit.map_x(b.x1)
        y0, y1 = fit.map_y(b.y0), fit.map_y(b.y1)
        if x1 <= 0 or y1 <= 0 or x0 >= 1 or y0 >= 1 or x1 <= x0 or y1 <= y0:
            continue
        out.append(Box(x0, y0, x1, y1))
    return out


# ----------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImageFit:
    """How a training image was fitted: scaled to (scaled_h, scaled_w), then cropped to
    (height, width) at (top, left)."""

    src_h: int
    src_w: int
    scaled_h: int
    scaled_w: int
    top: int
    left: int
    height: int
    width: int

    def map_x(self, x: float) -> float:
        return (x * self.scaled_w - self.left) / self.width

    def map_y(self, y: float) -> float:
        return (y * self.scaled_h - self.top) / self.height


def plan_fit(height: int, width: int, resolution: int, token_px: int = 16) -> ImageFit:
    """Scale an image down (never up) to at most resolution^2 pixels keeping its aspect
    ratio (resolution 0: keep the size), then center-crop it to whole tokens."""
    if resolution and height * width > resolution * resolution:
        s = resolution / math.sqrt(height * width)
        sh, sw = max(1, round(height * s)), max(1, round(width * s))
    else:
        sh, sw = height, width
    h, w = sh // token_px * token_px, sw // token_px * token_px
    return ImageFit(height, width, sh, sw, (sh - h) // 2, (sw - w) // 2, h, w)


def fit_image(image: torch.Tensor, fit: ImageFit) -> torch.Tensor:
    """Apply `plan_fit`'s plan to one (H, W, C) image in [0, 1]."""
    img = image
    if (fit.scaled_h, fit.scaled_w) != (fit.src_h, fit.src_w):
        img = F.interpolate(img.movedim(-1, 0)[None].float(), size=(fit.scaled_h, fit.scaled_w), mode="bicubic",
                            antialias=True).clamp(0, 1)[0].movedim(0, -1)
    return img[fit.top : fit.top + fit.height, fit.left : fit.left + fit.width]


def min_side_px(policy: LevelPolicy, token_px: int = 16) -> int:
    """The smallest image side that holds one block of the coarsest level."""
    return token_px * 2**policy.periphery


# ----------------------------------------------------------------------------- loss
def packed_velocity_loss(packing: LatentPacking, x0_pred: torch.Tensor, x0: torch.Tensor,
                         sigma: torch.Tensor) -> torch.Tensor:
    """Flow-matching velocity MSE over the packed tokens.

    With x_t = (1 - sigma) x0 + sigma eps, a model predicting the velocity v_pred gives the
    denoised x0_pred = x_t - sigma v_pred (ComfyUI's CONST sampling), so
    v_pred - v = (x0 - x0_pred) / sigma exactly, with v = eps - x0. The canvases are read
    at their packed tokens (one representative per token, `LatentPacking.pack`): every
    token of the packed sequence counts once.
    x0_pred, x0: canvases (B, C, H, W); sigma: (B,).
    """
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1))).to(torch.float32)
    err = packing.pack((x0.float() - x0_pred.float()) / s)
    return err.square().mean()
