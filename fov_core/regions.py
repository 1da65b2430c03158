"""Fovea regions: resolution-independent descriptions of where the viewer looks.

Coordinates are normalized image coordinates: x in [0, 1] from left to right, y in
[0, 1] from top to bottom, (0.5, 0.5) is the image center. Sizes are fractions of the
image's half-diagonal (the paper's convention: radius 1.0 from the center reaches the
corners), so a circle stays a circle on screen whatever the aspect ratio.

A region answers one question for a concrete grid: which level does each token
*want* (0 = full resolution). `rasterize.rasterize` combines regions (the finest wish
wins) and makes the result block-consistent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import scipy.ndimage as ndi
import torch

from .grid import TokenGrid
from .policy import LevelPolicy, _finite


def _check_center(kind: str, x: float, y: float) -> None:
    _finite(f"{kind} x", x)
    _finite(f"{kind} y", y)
    if not (-0.5 <= x <= 1.5 and -0.5 <= y <= 1.5):
        raise ValueError(
            f"{kind} center ({x:.3g}, {y:.3g}) is far outside the image. Centers are "
            f"normalized: (0, 0) is the top-left corner, (1, 1) the bottom-right; keep "
            f"them within [-0.5, 1.5]."
        )


# ----------------------------------------------------------------------------- frames
@dataclass
class FrameCoords:
    """Token centers of one latent frame, in image pixels."""

    grid: TokenGrid
    frame: int
    xs: torch.Tensor  # (H, W)
    ys: torch.Tensor  # (H, W)

    @classmethod
    def build(cls, grid: TokenGrid, frame: int) -> "FrameCoords":
        tp = grid.token_px
        ys = (torch.arange(grid.height, dtype=torch.float64) + 0.5) * tp
        xs = (torch.arange(grid.width, dtype=torch.float64) + 0.5) * tp
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return cls(grid, frame, xx, yy)

    @property
    def image_hw(self) -> tuple[int, int]:
        return self.grid.image_size

    @property
    def half_diag(self) -> float:
        h, w = self.image_hw
        return 0.5 * math.sqrt(h * h + w * w)  # exact for integer sizes; the widget computes the same

    def token_at(self, x: float, y: float) -> Optional[tuple[int, int]]:
        """Token containing normalized point (x, y) (the right and bottom edges belong to the
        last token), or None if the point lies outside the image."""
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return None
        return min(int(y * self.grid.height), self.grid.height - 1), min(int(x * self.grid.width), self.grid.width - 1)


# ----------------------------------------------------------------------------- regions
@dataclass(frozen=True)
class Gaze:
    """A circle or ellipse around a gaze point.

    radius: semi-axis along the ellipse's own x axis, as a fraction of the half-diagonal.
    aspect: the other semi-axis divided by `radius` (1 = circle).
    rotation: degrees, clockwise on screen.
    """

    x: float
    y: float
    radius: float
    aspect: float = 1.0
    rotation: float = 0.0

    def __post_init__(self):
        _check_center("gaze", self.x, self.y)
        r = _finite("gaze radius", self.radius)
        if r <= 0:
            raise ValueError(f"gaze radius must be > 0 (a fraction of the half-diagonal, e.g. 0.3), got {r}")
        a = _finite("gaze aspect", self.aspect)
        if a <= 0:
            raise ValueError(f"gaze aspect must be > 0 (1 = circle), got {a}")
        _finite("gaze rotation", self.rotation)

    def rho(self, fc: FrameCoords) -> torch.Tensor:
        h, w = fc.image_hw
        a = self.radius * fc.half_diag
        b = a * self.aspect
        dx = fc.xs - self.x * w
        dy = fc.ys - self.y * h
        th = math.radians(self.rotation)
        u = dx * math.cos(th) + dy * math.sin(th)
        v = -dx * math.sin(th) + dy * math.cos(th)
        return torch.sqrt((u / a) ** 2 + (v / b) ** 2)

    def desired_levels(self, fc: FrameCoords, policy: LevelPolicy) -> torch.Tensor:
        out = policy.level_for_rho(self.rho(fc))
        tok = fc.token_at(self.x, self.y)
        if tok is not None:  # a fovea smaller than a token still keeps its own token
            out[tok] = 0
        return out


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, normalized corners (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self):
        for n in ("x0", "y0", "x1", "y1"):
            _finite(f"box {n}", getattr(self, n))
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(
                f"box must have x1 > x0 and y1 > y0 (normalized corners), got "
                f"({self.x0:.3g}, {self.y0:.3g}) - ({self.x1:.3g}, {self.y1:.3g})"
            )
        if self.x1 <= 0 or self.y1 <= 0 or self.x0 >= 1 or self.y0 >= 1:
            raise ValueError(
                f"box ({self.x0:.3g}, {self.y0:.3g}) - ({self.x1:.3g}, {self.y1:.3g}) lies outside "
                f"the image (normalized coordinates run from 0 to 1); move it onto the image"
            )

    def rho(self, fc: FrameCoords) -> torch.Tensor:
        h, w = fc.image_hw
        cx, cy = (self.x0 + self.x1) / 2 * w, (self.y0 + self.y1) / 2 * h
        hw, hh = (self.x1 - self.x0) / 2 * w, (self.y1 - self.y0) / 2 * h
        return torch.maximum((fc.xs - cx).abs() / hw, (fc.ys - cy).abs() / hh)

    def desired_levels(self, fc: FrameCoords, policy: LevelPolicy) -> torch.Tensor:
        out = policy.level_for_rho(self.rho(fc))
        tok = fc.token_at(min(max((self.x0 + self.x1) / 2, 0.0), 1.0), min(max((self.y0 + self.y1) / 2, 0.0), 1.0))
        if tok is not None:
            out[tok] = 0
        return out


@dataclass(frozen=True, eq=False)
class MaskRegion:
    """An arbitrary mask of any size: (H, W) or (F, H, W), values >= threshold are fovea.

    A token is fovea if any mask pixel in it is. F = 1 applies to every frame; for video
    F may equal the number of video frames (each latent frame takes the union of the
    frames it covers) or latent frames; a frame whose mask is empty is all periphery.
    Rings around a mask extend by (scale - 1) x the mask's equivalent radius
    sqrt(area / pi), measured from the nearest fovea token center.
    The mask is kept as given (not copied) when it is a float32 CPU tensor, as a MASK is.
    """

    mask: torch.Tensor
    threshold: float = 0.5

    def __post_init__(self):
        m = self.mask
        if not isinstance(m, torch.Tensor):
            raise ValueError(f"mask must be a tensor, got {type(m).__name__}")
        if m.ndim == 2:
            m = m.unsqueeze(0)
        if m.ndim != 3 or m.shape[-1] == 0 or m.shape[-2] == 0 or m.shape[0] == 0:
            raise ValueError(f"mask must have shape (H, W) or (frames, H, W), got {tuple(self.mask.shape)}")
        threshold = _finite("mask threshold", self.threshold)
        m = m.detach().to("cpu", torch.float32)
        lo, hi = (float(v) for v in torch.aminmax(m))  # one pass, no mask-sized temporary; NaN propagates
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("mask contains NaN or infinite values; clean it (e.g. with a mask threshold) first")
        if hi < threshold:
            raise ValueError(
                f"mask is empty: no value reaches the threshold {threshold:.3g} (its largest value is {hi:.3g}). "
                f"Paint or select the region to keep at full resolution, or lower the threshold."
            )
        object.__setattr__(self, "mask", m)
        object.__setattr__(self, "threshold", threshold)

    def _frame_mask(self, fc: FrameCoords) -> torch.Tensor:
        """(H, W) bool on the token grid: the tokens of latent frame fc.frame that are fovea."""
        m = self.mask
        nf, grid = m.shape[0], fc.grid
        if nf == 1:
            sel = m
        elif nf == grid.video_frames and grid.frame_stride > 1:
            frames = grid.video_frames_of(fc.frame)
            sel = m[frames.start : frames.stop]
        elif nf == grid.frames:
            sel = m[fc.frame : fc.frame + 1]
        elif grid.frames == 1:
            raise ValueError(
                f"this fovea's mask has {nf} frames (a video mask) but the model generates a single image; "
                f"give one mask"
            )
        else:
            per_latent = f" or {grid.frames} (one per latent frame)" if grid.frame_stride > 1 else ""
            raise ValueError(
                f"the mask has {nf} frames but the video has {grid.video_frames} frames ({grid.frames} latent "
                f"frames); give 1 mask (used for every frame), {grid.video_frames} (one per video frame){per_latent}"
            )
        # max-pool the values (a view of the mask) to the token grid, then threshold: no mask-sized copy
        pooled = torch.nn.functional.adaptive_max_pool2d(sel, (grid.height, grid.width))
        return pooled.amax(dim=0) >= self.threshold

    def rho(self, fc: FrameCoords) -> torch.Tensor:
        """0 on fovea tokens; elsewhere 1 + (distance in pixels to the nearest fovea token
        center) / the equivalent radius; infinite in a frame without fovea."""
        inside = self._frame_mask(fc)
        if not inside.any():
            return torch.full(inside.shape, math.inf, dtype=torch.float64)
        tp = fc.grid.token_px
        # exact Euclidean distance transform on the token grid (spacing token_px): O(tokens)
        dist = torch.from_numpy(ndi.distance_transform_edt(~inside.numpy(), sampling=tp))
        r_eq = math.sqrt(float(inside.sum()) * tp * tp / math.pi)
        return torch.where(inside, 0.0, 1.0 + dist / r_eq)

    def desired_levels(self, fc: FrameCoords, policy: LevelPolicy) -> torch.Tensor:
        return policy.level_for_rho(self.rho(fc))


@dataclass(frozen=True)
class AcuityGaze:
    """Levels from human acuity around a gaze point (rings from viewing geometry).

    The minimum angle of resolution grows linearly with eccentricity e (degrees):
        MAR(e) = mar0 * (1 + e / e2)
    A level-k region samples the image every 2^k pixels; it is fine where that pitch
    is still below acuity: 2^k * pixel_angle <= MAR(e), i.e.
        k(e) = floor(log2(MAR(e) / pixel_angle)), at least 0.
    display_width_cm: physical width the image is shown at; distance_cm: eye to screen.
    """

    x: float
    y: float
    display_width_cm: float = 60.0
    distance_cm: float = 60.0
    mar0_arcmin: float = 1.0
    e2_deg: float = 2.3

    def __post_init__(self):
        _check_center("gaze", self.x, self.y)
        for n in ("display_width_cm", "distance_cm", "mar0_arcmin", "e2_deg"):
            v = _finite(n, getattr(self, n))
            if v <= 0:
                raise ValueError(f"{n} must be > 0, got {v}")

    def eccentricity_deg(self, fc: FrameCoords) -> torch.Tensor:
        h, w = fc.image_hw
        cm = self.display_width_cm / w
        d = self.distance_cm
        px, py = (fc.xs - w / 2) * cm, (fc.ys - h / 2) * cm
        gx, gy = (self.x * w - w / 2) * cm, (self.y * h - h / 2) * cm
        dot = px * gx + py * gy + d * d
        norm = torch.sqrt(px**2 + py**2 + d * d) * math.sqrt(gx**2 + gy**2 + d * d)
        return torch.rad2deg(torch.arccos((dot / norm).clamp(-1.0, 1.0)))

    def pixel_angle_deg(self, fc: FrameCoords) -> float:
        return math.degrees(math.atan(self.display_width_cm / fc.image_hw[1] / self.distance_cm))

    def desired_levels(self, fc: FrameCoords, policy: LevelPolicy) -> torch.Tensor:
        mar = self.mar0_arcmin / 60.0 * (1.0 + self.eccentricity_deg(fc) / self.e2_deg)
        k = torch.floor(torch.log2(mar / self.pixel_angle_deg(fc))).clamp(min=0).long()
        tok = fc.token_at(self.x, self.y)
        if tok is not None:
            k[tok] = 0
        return k


