"""Split decode and blend of a canvas.

Coarsest level K: decode the level-K latent image (canvas[..., ::2^K, ::2^K]) whole;
it is 1/4^K of the native decode. Each finer level k present: decode the level-k
latent image only over the bounding box of the region of level <= k (where it is
valid) plus a margin, upsample by 2^k, and blend it over what the coarser levels gave:

    out = lerp(out, up(decode_k), w_k),   w_k = M_k * clamp(2 * blur(M_k) - 1, 0, 1)

M_k is the pixel mask of the level <= k region, so w_k is exactly 0 outside it and the
seam lies inside the finer region, where both decodes are valid. The feather width is
a fraction of the half-diagonal; blur sigma = width / 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .canvas import level_view
from .filters import gaussian_blur2d
from .layout import TokenLayout


@dataclass
class DecodePart:
    level: int
    token_box: Optional[tuple]  # (y0, y1, x0, x1) in tokens, None = whole frame

    def latent_crop(self, canvas: torch.Tensor, patch: int) -> torch.Tensor:
        """The latent this part decodes: the level view, cropped to the box."""
        view = level_view(canvas, self.level)
        if self.token_box is None:
            return view
        s = 2**self.level
        y0, y1, x0, x1 = (v * patch // s for v in self.token_box)
        return view[..., y0:y1, x0:x1]


class SplitDecoder:
    def __init__(self, layout: TokenLayout, patch: int, token_px: int, feather: float = 0.03, margin: int = 2):
        self.layout, self.patch, self.token_px = layout, patch, token_px
        self.feather = feather
        levels = layout.levels
        self.parts = [DecodePart(levels[-1], None)]
        for k in reversed(levels[:-1]):
            region = (layout.level_map <= k).any(dim=0)
            for box in region_boxes(region, margin, 2**k):
                self.parts.append(DecodePart(k, box))
        self._weights = {}

    def decoded_pixels(self) -> float:
        """Decoded pixels relative to one native full decode (the decode cost ratio)."""
        T, H, W = self.layout.shape
        total = 0.0
        for part in self.parts:
            y0, y1, x0, x1 = part.token_box or (0, H, 0, W)
            total += (y1 - y0) * (x1 - x0) / 4**part.level
        return total / (H * W)

    def weights(self, level: int, device="cpu") -> torch.Tensor:
        """(T, H_px, W_px) blend weight of level `level` over the coarser result."""
        key = (level, torch.device(device))
        if key not in self._weights:
            self._weights[key] = self._compute_weights(level, device)
        return self._weights[key]

    def _compute_weights(self, level: int, device) -> torch.Tensor:
        T, H, W = self.layout.shape
        tp = self.token_px
        mask = (self.layout.level_map <= level).float().to(device)
        full = mask.repeat_interleave(tp, 1).repeat_interleave(tp, 2)
        width = self.feather * 0.5 * math.hypot(H * tp, W * tp)
        if width <= 0:
            return full
        # blur at 4 px per token (smooth enough), then upsample
        q = max(1, tp // 4)
        coarse = mask.repeat_interleave(tp // q, 1).repeat_interleave(tp // q, 2)
        blurred = gaussian_blur2d(coarse, width / 2 / q)
        blurred = F.interpolate(blurred[:, None], size=full.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return full * (2 * blurred - 1).clamp(0, 1)

    def compose(self, decoded: list, frame_of: Optional[torch.Tensor] = None) -> torch.Tensor:
        """decoded[i]: images (N, h_i, w_i, C) of self.parts[i] (ComfyUI layout).
        frame_of: (N,) latent frame of each output image (default: all frame 0, or
        image n -> latent frame n when N == T)."""
        T, H, W = self.layout.shape
        tp = self.token_px
        first = decoded[0]
        N = first.shape[0]
        if frame_of is None:
            frame_of = torch.zeros(N, dtype=torch.long) if T == 1 else torch.arange(N) % T
        out = _upsample(first, 2 ** self.parts[0].level, H * tp, W * tp)
        for part, img in zip(self.parts[1:], decoded[1:]):
            y0, y1, x0, x1 = part.token_box or (0, H, 0, W)
            py0, py1, px0, px1 = y0 * tp, y1 * tp, x0 * tp, x1 * tp
            up = _upsample(img, 2**part.level, py1 - py0, px1 - px0)
            w = self.weights(part.level, out.device)[frame_of.to(out.device)][:, py0:py1, px0:px1, None]
            region = out[:, py0:py1, px0:px1]
            out[:, py0:py1, px0:px1] = region + (up.to(region.dtype) - region) * w.to(region.dtype)
        return out


def region_boxes(region: torch.Tensor, margin: int, align: int) -> list:
    """Boxes (y0, y1, x0, x1) in tokens that cover `region` (H, W) plus `margin` tokens,
    aligned to `align`: one per connected part, merged where they overlap, or a single
    bounding box when that is smaller. None = the whole frame."""
    H, W = region.shape
    grown = F.max_pool2d(region.float()[None, None], 2 * margin + 1, stride=1, padding=margin)[0, 0] > 0
    labels = _components(grown)
    boxes = []
    for lab in range(1, int(labels.max()) + 1):
        ys, xs = (labels == lab).nonzero(as_tuple=True)
        boxes.append(_align((int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1), align, H, W))
    merged = True
    while merged:  # merge overlapping boxes (their union box) until none overlap
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = _align((min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])), align, H, W)
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    area = lambda b: (b[1] - b[0]) * (b[3] - b[2])  # noqa: E731
    ys, xs = grown.nonzero(as_tuple=True)
    whole = _align((int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1), align, H, W)
    if sum(map(area, boxes)) >= area(whole):
        boxes = [whole]
    return [None if b == (0, H, 0, W) else b for b in boxes]


def _align(box, s, H, W):
    y0, y1, x0, x1 = box
    return (y0 // s * s, min(H // s * s if H % s else H, -(-y1 // s) * s),
            x0 // s * s, min(W // s * s if W % s else W, -(-x1 // s) * s))


def _components(mask: torch.Tensor) -> torch.Tensor:
    """8-connected component labels (0 = background) by iterative max-propagation."""
    H, W = mask.shape
    ids = torch.arange(1, H * W + 1, dtype=torch.float32).reshape(H, W) * mask
    while True:
        grown = F.max_pool2d(ids[None, None], 3, stride=1, padding=1)[0, 0] * mask
        if torch.equal(grown, ids):
            break
        ids = grown
    uniq = torch.unique(ids[mask])
    out = torch.zeros((H, W), dtype=torch.long)
    for i, u in enumerate(uniq.tolist(), start=1):
        out[ids == u] = i
    return out


def _upsample(img: torch.Tensor, factor: int, h: int, w: int) -> torch.Tensor:
    """Bicubic upsample of (N, h', w', C) by `factor`, cropped to (h, w)."""
    if factor == 1:
        out = img.clone()
    else:
        x = img.movedim(-1, 1).float()
        x = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)
        out = x.movedim(1, -1).to(img.dtype)
    if out.shape[1] < h or out.shape[2] < w:
        raise ValueError(f"decoded part is {tuple(out.shape[1:3])} px after upsampling, expected at least {(h, w)}")
    return out[:, :h, :w]
