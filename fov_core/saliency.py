"""Saliency: a weight-free saliency map, and the paper's rule from a map to a fovea.

Paper rule (DeepGaze IIE map in the paper; any map here): smooth the map, keep the
region >= 0.3 x peak, take its weighted centroid as the center and the radius that
covers 90% of that region's saliency mass, clipped to [0.2, 0.5] of the half-diagonal.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .filters import box_blur2d, gaussian_blur2d
from .regions import Gaze


def spectral_residual_saliency(image: torch.Tensor, work_size: int = 64) -> torch.Tensor:
    """Spectral-residual saliency (Hou & Zhang, CVPR 2007); needs no weights.

    image: (H, W, 3) or (H, W) floats in [0, 1] (ComfyUI IMAGE layout, one frame).
    Returns an (H, W) map in [0, 1].
      A = log |FFT(I)|, R = A - box3(A), S = |IFFT(exp(R + i phase))|^2, blurred.
    """
    if image.ndim == 3:
        if image.shape[-1] not in (1, 3, 4):
            raise ValueError(f"image must be (H, W, C) with 1, 3 or 4 channels, got {tuple(image.shape)}")
        gray = image[..., :3].float().mean(dim=-1)
    elif image.ndim == 2:
        gray = image.float()
    else:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {tuple(image.shape)}")
    if not torch.isfinite(gray).all():
        raise ValueError("image contains NaN or infinite values")
    H, W = gray.shape
    scale = work_size / max(H, W)
    h, w = max(8, round(H * scale)), max(8, round(W * scale))
    small = F.interpolate(gray[None, None], size=(h, w), mode="area")[0, 0].double()
    spec = torch.fft.fft2(small)
    log_amp = torch.log(spec.abs() + 1e-9)
    residual = log_amp - box_blur2d(log_amp, 3)
    sal = torch.fft.ifft2(torch.exp(residual + 1j * torch.angle(spec))).abs() ** 2
    sal = gaussian_blur2d(sal, 0.04 * max(h, w))
    sal = F.interpolate(sal[None, None].float(), size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    sal = sal - sal.min()
    peak = sal.max()
    return sal / peak if peak > 0 else sal


def gaze_from_saliency(
    saliency: torch.Tensor,
    threshold: float = 0.3,
    coverage: float = 0.9,
    r_min: float = 0.2,
    r_max: float = 0.5,
    smooth: float = 0.04,
) -> Gaze:
    """The paper's rule. saliency: (H, W) non-negative map of any size.
    smooth: Gaussian sigma as a fraction of the map's shorter side."""
    if saliency.ndim != 2:
        raise ValueError(f"saliency map must be (H, W), got shape {tuple(saliency.shape)}")
    s = saliency.detach().to("cpu", torch.float64)
    if not torch.isfinite(s).all():
        raise ValueError("saliency map contains NaN or infinite values")
    if (s < 0).any():
        raise ValueError("saliency map has negative values; it must be a non-negative weight map")
    if not 0 < threshold < 1 or not 0 < coverage <= 1:
        raise ValueError(f"threshold must be in (0, 1) and coverage in (0, 1], got {threshold}, {coverage}")
    if not 0 < r_min <= r_max:
        raise ValueError(f"need 0 < r_min <= r_max, got {r_min}, {r_max}")
    H, W = s.shape
    s = gaussian_blur2d(s, smooth * min(H, W))
    peak = float(s.max())
    if peak <= 0:
        raise ValueError("saliency map is empty (all zero); there is nothing to place the fovea on")
    dense = torch.where(s >= threshold * peak, s, torch.zeros_like(s))
    total = dense.sum()
    ys = torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
    xs = torch.arange(W, dtype=torch.float64)[None, :].expand(H, W)
    cy = float((dense * ys).sum() / total)
    cx = float((dense * xs).sum() / total)
    inside = dense > 0
    dist = torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)[inside]
    mass = dense[inside]
    order = torch.argsort(dist)
    cum = torch.cumsum(mass[order], 0)
    hit = int(torch.searchsorted(cum, coverage * total).clamp(max=cum.numel() - 1))
    radius_px = float(dist[order][hit])
    half_diag = 0.5 * math.hypot(H, W)
    r = min(max(radius_px / half_diag, r_min), r_max)
    return Gaze((cx + 0.5) / W, (cy + 0.5) / H, r)
