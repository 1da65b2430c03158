"""Small image filters shared by saliency and blending (pure torch, CPU friendly)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, dtype=torch.float32, device="cpu") -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype=dtype, device=device)


def gaussian_blur2d(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (..., H, W) with replicate padding. sigma in pixels."""
    if sigma <= 0:
        return x
    shape = x.shape
    y = x.reshape(-1, 1, shape[-2], shape[-1])
    g = gaussian_kernel1d(sigma, y.dtype, y.device)
    r = g.numel() // 2
    # reflect/replicate padding needs pad < size; fall back to repeated replicate steps
    y = F.pad(y, (0, 0, r, r), mode="replicate")
    y = F.conv2d(y, g.view(1, 1, -1, 1))
    y = F.pad(y, (r, r, 0, 0), mode="replicate")
    y = F.conv2d(y, g.view(1, 1, 1, -1))
    return y.reshape(shape)


def box_blur2d(x: torch.Tensor, size: int) -> torch.Tensor:
    shape = x.shape
    y = x.reshape(-1, 1, shape[-2], shape[-1])
    r = size // 2
    y = F.pad(y, (r, r, r, r), mode="replicate")
    y = F.avg_pool2d(y, size, stride=1)
    return y.reshape(shape)
