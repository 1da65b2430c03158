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
  fovea per image from its saliency map or its object boxes. Video: "a random path per
  video" (the paper does not say how it is drawn; `random_gaze_path` is our rule).
- Video clips (Wan): 1 + 4k frames (the VAE's temporal stride), the downsampled image is
  spatial only (the frame axis is never scaled), as at inference.

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
from .gaze_path import GazeKeyframe, GazePath
from .regions import Box, Gaze
from .saliency import gaze_from_saliency, spectral_residual_saliency

CENTER_RANGE = 0.3  # (code) circle centers: image center +- 0.3 of the image size, per axis
RADIUS_RANGE = (0.2, 0.5)  # (code) circle radii, fractions of the half-diagonal
FOVEA_MODES = ("random circles", "saliency", "boxes", "random gaze paths")
VIDEO_ONLY_MODES = ("random gaze paths",)
IMAGE_ONLY_MODES = ("boxes",)
PATH_KEYFRAMES = 3  # a training gaze path: keyframes at the first, middle and last frame
MAX_CLIP_FRAMES = 81  # video frames a training clip keeps at most (Wan's native length, the paper's clips)


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


def keyframe_indices(num_frames: int, keyframes: int = PATH_KEYFRAMES) -> list:
    """`keyframes` video frames spread evenly over a clip, first and last included."""
    if num_frames == 1:
        return [0]
    return sorted({round(i * (num_frames - 1) / (keyframes - 1)) for i in range(keyframes)})


def _path(gazes: dict, num_frames: int) -> GazePath:
    return GazePath(tuple(GazeKeyframe(f, g.x, g.y, g.radius) for f, g in sorted(gazes.items())), num_frames)


def random_gaze_path(generator: torch.Generator, num_frames: int) -> GazePath:
    """A random gaze path over a clip: a `random_circle` at each of `keyframe_indices`,
    interpolated as every gaze path is (PCHIP: smooth, no overshoot)."""
    return _path({f: random_circle(generator) for f in keyframe_indices(num_frames)}, num_frames)


def saliency_path(frames: torch.Tensor) -> GazePath:
    """The saliency fovea of a clip (T, H, W, C): `saliency_gaze` of each keyframe, so the
    fovea follows the salient region."""
    n = int(frames.shape[0])
    return _path({f: saliency_gaze(frames[f]) for f in keyframe_indices(n)}, n)


def clip_frames(available: int, stride: int, max_frames: int = MAX_CLIP_FRAMES) -> int:
    """Video frames a training clip keeps: the most of the form 1 + stride * k that the clip
    holds, at most max_frames (the VAE turns 1 + stride * k frames into 1 + k latent frames)."""
    n = min(int(available), int(max_frames))
    return 1 + (n - 1) // stride * stride


def check_fovea_mode(mode: str, video: bool) -> None:
    """A clear error for a mode that does not exist or does not fit images / clips."""
    if mode not in FOVEA_MODES:
        raise ValueError(f"fovea mode must be one of {list(FOVEA_MODES)}, got {mode!r}")
    wrong = VIDEO_ONLY_MODES if not video else IMAGE_ONLY_MODES
    if mode in wrong:
        fits = [m for m in FOVEA_MODES if m not in wrong]
        what = "video clips (a video model such as Wan)" if not video else "images"
        raise ValueError(f"fovea mode {mode!r} is for {what}; this model trains on "
                         f"{'clips' if video else 'images'}: use one of {fits}")


@dataclass(frozen=True)
class TrainingFoveae:
    """Where each training sample keeps full resolution.

    mode "random circles": a new random circle per sample (every step, every image; on a
    clip it stays put). mode "random gaze paths" (clips only): a new `random_gaze_path` (a
    circle on a one-frame clip, where a path has nothing to follow).
    mode "saliency" / "boxes": the fixed regions of each image, or a clip's GazePath
    (`regions[i]`); an image without regions (no detection) gets a random circle per
    sample instead.
    frames: per sample its video frames (clips), or () for images.
    """

    mode: str
    policy: LevelPolicy
    regions: tuple = ()  # per sample: a tuple of regions, a GazePath, or None
    feather: float = 0.03
    frames: tuple = ()

    def __post_init__(self):
        check_fovea_mode(self.mode, bool(self.frames))
        object.__setattr__(self, "regions", tuple(r if r is None or isinstance(r, GazePath) else tuple(r)
                                                  for r in self.regions))

    def fixed(self, index: int) -> Optional[Fovea]:
        """The sample's fixed fovea, or None when it is drawn per sample."""
        if self.mode not in ("saliency", "boxes") or index >= len(self.regions) or not self.regions[index]:
            return None
        r = self.regions[index]
        if isinstance(r, GazePath):
            return Fovea((), self.policy, self.feather, path=r)
        return Fovea(r, self.policy, self.feather)

    def draw(self, index: int, generator: torch.Generator) -> Fovea:
        fixed = self.fixed(index)
        if fixed is not None:
            return fixed
        if self.mode == "random gaze paths" and self.frames[index] > 1:  # (a one-frame clip: a circle)
            return Fovea((), self.policy, self.feather, path=random_gaze_path(generator, self.frames[index]))
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
    """Apply `plan_fit`'s plan to one (H, W, C) image or (T, H, W, C) clip in [0, 1]."""
    img = image if image.ndim == 4 else image[None]
    if (fit.scaled_h, fit.scaled_w) != (fit.src_h, fit.src_w):
        img = F.interpolate(img.movedim(-1, 1).float(), size=(fit.scaled_h, fit.scaled_w), mode="bicubic",
                            antialias=True).clamp(0, 1).movedim(1, -1)
    img = img[:, fit.top : fit.top + fit.height, fit.left : fit.left + fit.width]
    return img if image.ndim == 4 else img[0]


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
