"""Split decode and blend of a canvas: one VAE call per level.

Coarsest level K: decode the level-K latent image (canvas[..., ::2^K, ::2^K]) whole;
it is 1/4^K of the native decode. Each finer level k present: decode the level-k
latent image only over the region of level <= k (where it is valid) plus a margin,
upsample by 2^k, and blend it over what the coarser levels gave:

    out = lerp(out, up(decode_k), w_k),   w_k = M_k * clamp(2 * blur(M_k) - 1, 0, 1)

M_k is the pixel mask of the level <= k region, so w_k is exactly 0 outside it and the
seam lies inside the finer region, where both decodes are valid. The feather width is
a fraction of the half-diagonal; blur sigma = width / 2.

The region of a level is covered by one bounding crop, or, when that is larger, by
one equal-size crop per connected part (all decoded as one batch): either way one VAE
call. Everything here depends only on the layout, so callers build a decoder once per
(fovea, grid) and reuse it; blend weights are cached per device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from .canvas import level_view
from .filters import gaussian_blur2d
from .layout import TokenLayout


@dataclass(frozen=True)
class DecodePart:
    level: int
    boxes: Optional[tuple]  # ((y0, y1, x0, x1), ...) in tokens, all the same size; None = whole frame

    def latent(self, canvas: torch.Tensor, patch: int) -> torch.Tensor:
        """The latent this part decodes: the level view, or its crops stacked box-major on
        the batch axis."""
        view = level_view(canvas, self.level)
        if self.boxes is None:
            return view
        s = 2**self.level
        crops = []
        for box in self.boxes:
            y0, y1, x0, x1 = (v * patch // s for v in box)
            crops.append(view[..., y0:y1, x0:x1])
        return crops[0] if len(crops) == 1 else torch.cat(crops, dim=0)


class SplitDecoder:
    def __init__(self, layout: TokenLayout, patch: int, token_px: int, feather: float = 0.03, margin: int = 2):
        self.layout, self.patch, self.token_px = layout, patch, token_px
        self.feather = feather
        levels = layout.levels
        self.parts = [DecodePart(levels[-1], None)]
        for k in reversed(levels[:-1]):
            region = (layout.level_map <= k).any(dim=0)
            self.parts.append(DecodePart(k, crop_boxes(region, margin, 2**k)))
        self._weights = {}

    def decoded_pixels(self) -> float:
        """Decoded pixels relative to one native full decode (the decode cost ratio)."""
        T, H, W = self.layout.shape
        total = 0.0
        for part in self.parts:
            for y0, y1, x0, x1 in part.boxes or ((0, H, 0, W),):
                total += (y1 - y0) * (x1 - x0) / 4**part.level
        return total / (H * W)

    def weights(self, level: int, device="cpu") -> torch.Tensor:
        """(T, H_px, W_px) blend weight of level `level` over the coarser result."""
        key = (level, torch.device(device))
        if key not in self._weights:
            self._weights[key] = self._compute_weights(level).to(device)
        return self._weights[key]

    def _compute_weights(self, level: int) -> torch.Tensor:
        T, H, W = self.layout.shape
        tp = self.token_px
        mask = (self.layout.level_map <= level).float()
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
        """decoded[i]: images (n_boxes * N, h_i, w_i, C) of self.parts[i] (ComfyUI layout,
        box-major). frame_of: (N,) latent frame of each output image (default: all frame
        0, or image n -> latent frame n % T)."""
        T, H, W = self.layout.shape
        tp = self.token_px
        N = decoded[0].shape[0]
        if frame_of is None:
            frame_of = torch.zeros(N, dtype=torch.long) if T == 1 else torch.arange(N) % T
        out = _upsample(decoded[0], 2 ** self.parts[0].level, H * tp, W * tp)
        for part, img in zip(self.parts[1:], decoded[1:]):
            w_all = self.weights(part.level, out.device)[frame_of.to(out.device)]
            boxes = part.boxes or ((0, H, 0, W),)
            bh, bw = (boxes[0][1] - boxes[0][0]) * tp, (boxes[0][3] - boxes[0][2]) * tp  # all boxes one size
            ups = _upsample(img, 2**part.level, bh, bw).split(N)  # every crop in one call
            for box, up in zip(boxes, ups):
                py0, py1, px0, px1 = (v * tp for v in box)
                region = out[:, py0:py1, px0:px1]
                region.lerp_(up.to(region.dtype), w_all[:, py0:py1, px0:px1, None].to(region.dtype))
        return out


def crop_boxes(region: torch.Tensor, margin: int, align: int) -> Optional[tuple]:
    """Equal-size token boxes (y0, y1, x0, x1), aligned to `align`, that cover `region`
    (H, W) grown by `margin` tokens: its bounding box, or one box per connected part
    (8-connected, overlapping boxes merged) when their total is smaller. None = the
    whole frame."""
    H, W = region.shape
    lim_h = H if H % align == 0 else H // align * align  # edge blocks that do not fit stay finer
    lim_w = W if W % align == 0 else W // align * align
    grown = ndi.binary_dilation(region.numpy(), np.ones((3, 3), bool), iterations=margin) if margin else region.numpy()
    labels, n = ndi.label(grown, structure=np.ones((3, 3), int))
    boxes = [_align((sl[0].start, sl[0].stop, sl[1].start, sl[1].stop), align, lim_h, lim_w)
             for sl in ndi.find_objects(labels)]
    boxes = _merge_overlapping(boxes, align, lim_h, lim_w)
    bh = max(b[1] - b[0] for b in boxes)
    bw = max(b[3] - b[2] for b in boxes)
    whole = _align((min(b[0] for b in boxes), max(b[1] for b in boxes),
                    min(b[2] for b in boxes), max(b[3] for b in boxes)), align, lim_h, lim_w)
    if len(boxes) == 1 or len(boxes) * bh * bw >= (whole[1] - whole[0]) * (whole[3] - whole[2]):
        boxes = [whole]
    else:  # grow every box to the common size (more context, same VAE call)
        boxes = [(_fit(b[0], bh, lim_h, align), _fit(b[0], bh, lim_h, align) + bh,
                  _fit(b[2], bw, lim_w, align), _fit(b[2], bw, lim_w, align) + bw) for b in boxes]
    if boxes == [(0, H, 0, W)]:
        return None
    return tuple(boxes)


def _fit(start, size, limit, align):
    """Start of a `size` window containing `start`, inside [0, limit), aligned."""
    return min(start, (limit - size) // align * align)


def _merge_overlapping(boxes, align, lim_h, lim_w):
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = _align((min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])),
                                      align, lim_h, lim_w)
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def _align(box, s, lim_h, lim_w):
    y0, y1, x0, x1 = box
    return (y0 // s * s, min(lim_h, -(-y1 // s) * s), x0 // s * s, min(lim_w, -(-x1 // s) * s))


def _upsample(img: torch.Tensor, factor: int, h: int, w: int) -> torch.Tensor:
    """Bicubic upsample of (N, h', w', C) by `factor`, cropped to (h, w)."""
    if factor == 1:
        out = img
    else:
        x = img.movedim(-1, 1).float()
        x = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False).clamp_(0, 1)
        out = x.movedim(1, -1).to(img.dtype)
    if out.shape[1] < h or out.shape[2] < w:
        raise ValueError(f"decoded part is {tuple(out.shape[1:3])} px after upsampling, expected at least {(h, w)}")
    return out[:, :h, :w]
