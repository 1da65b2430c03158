"""Resolution-independent fovea descriptions.

Coordinates are normalized image coordinates: x in [0, 1] from left to right, y in
[0, 1] from top to bottom, (0.5, 0.5) is the image center. Sizes are fractions of the
image's half-diagonal (the paper's convention: radius 1.0 from the center reaches the
corners), so a circle stays a circle on screen whatever the aspect ratio.

A region answers one question for a concrete grid: which level does each token
*want* (0 = full resolution). `rasterize.rasterize` combines regions (the finest wish
wins) and makes the result block-consistent.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Optional, Union

import torch

from .grid import TokenGrid

MAX_LEVEL = 3  # 1/8 periphery; coarser blocks would exceed most latents


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def _check_center(kind: str, x: float, y: float) -> None:
    _finite(f"{kind} x", x)
    _finite(f"{kind} y", y)
    if not (-0.5 <= x <= 1.5 and -0.5 <= y <= 1.5):
        raise ValueError(
            f"{kind} center ({x:.3g}, {y:.3g}) is far outside the image. Centers are "
            f"normalized: (0, 0) is the top-left corner, (1, 1) the bottom-right; keep "
            f"them within [-0.5, 1.5]."
        )


# ----------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class LevelPolicy:
    """Which levels exist and where rings lie.

    levels: ascending, starting at 0. (0, 1) = 1/2 periphery, (0, 2) = 1/4 periphery,
        (0, 1, 2) = rings full / 1/2 / 1/4.
    ring_scales: one outer boundary per intermediate level, as a multiple of each
        region's own size (a circle of radius r: the 1/2 ring ends at r * scale).
    """

    levels: tuple = (0, 1)
    ring_scales: tuple = ()

    def __post_init__(self):
        levels = tuple(int(k) for k in self.levels)
        if len(levels) < 2 or levels[0] != 0 or any(b <= a for a, b in zip(levels, levels[1:])):
            raise ValueError(
                f"levels must start at 0 (full resolution) and increase, e.g. (0, 1), "
                f"(0, 2) or (0, 1, 2); got {self.levels}"
            )
        if levels[-1] > MAX_LEVEL:
            raise ValueError(f"the coarsest level is 1/{2 ** MAX_LEVEL}; got 1/{2 ** levels[-1]}")
        scales = tuple(_finite("ring scale", s) for s in self.ring_scales)
        if len(scales) != len(levels) - 2:
            raise ValueError(
                f"{len(levels) - 2} ring scale(s) needed for levels {levels}, got {len(scales)}"
            )
        prev = 1.0
        for s in scales:
            if s <= prev:
                raise ValueError(f"ring scales must be > 1 and increasing, got {scales}")
            prev = s
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "ring_scales", scales)

    @classmethod
    def half(cls) -> "LevelPolicy":
        return cls((0, 1))

    @classmethod
    def quarter(cls) -> "LevelPolicy":
        return cls((0, 2))

    @classmethod
    def rings(cls, scale: float = 2.0) -> "LevelPolicy":
        return cls((0, 1, 2), (scale,))

    @property
    def periphery(self) -> int:
        return self.levels[-1]

    def level_for_rho(self, rho: torch.Tensor) -> torch.Tensor:
        """Level wanted at normalized eccentricity rho (rho <= 1 inside the region)."""
        out = torch.full(rho.shape, self.periphery, dtype=torch.long, device=rho.device)
        bounds = (1.0,) + self.ring_scales
        # innermost last so it wins
        for level, bound in reversed(list(zip(self.levels[:-1], bounds))):
            out = torch.where(rho <= bound, torch.full_like(out, level), out)
        return out


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
                f"the image; normalized coordinates run from 0 to 1"
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
    """An arbitrary mask of any size: (H, W) or (F, H, W), values >= 0.5 are fovea.

    F = 1 applies to every frame; for video F may equal the number of video frames
    (each latent frame takes the union of the frames it covers) or latent frames.
    Rings around a mask extend by (scale - 1) x the mask's equivalent radius
    sqrt(area / pi).
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
        m = m.detach().to("cpu", torch.float32)
        if not torch.isfinite(m).all():
            raise ValueError("mask contains NaN or infinite values; clean it (e.g. with a mask threshold) first")
        if not (m >= self.threshold).any():
            raise ValueError(
                f"mask is empty: no value reaches {self.threshold}. Paint or select the region "
                f"to keep at full resolution."
            )
        object.__setattr__(self, "mask", m)

    def _frame_mask(self, fc: FrameCoords) -> torch.Tensor:
        m = self.mask
        nf, grid = m.shape[0], fc.grid
        if nf == 1:
            sel = m[0:1]
        elif nf == grid.video_frames and grid.frame_stride > 1:
            sel = m[list(fc.grid.video_frames_of(fc.frame))]
        elif nf == grid.frames:
            sel = m[fc.frame : fc.frame + 1]
        elif grid.frames == 1:
            raise ValueError(
                f"this fovea's mask has {nf} frames (a video mask) but the model generates a single image; "
                f"give one mask"
            )
        else:
            raise ValueError(
                f"mask has {nf} frames but the video has {grid.video_frames} frames "
                f"({grid.frames} latent frames); give 1 mask, or one per frame"
            )
        inside = (sel >= self.threshold).float().amax(dim=0, keepdim=True)
        # max-pool to the token grid: a token is fovea if any mask pixel in it is
        pooled = torch.nn.functional.adaptive_max_pool2d(inside[None], (grid.height, grid.width))
        return pooled[0, 0] > 0.5

    def desired_levels(self, fc: FrameCoords, policy: LevelPolicy) -> torch.Tensor:
        inside = self._frame_mask(fc)
        rho = torch.full(inside.shape, math.inf, dtype=torch.float64)
        rho[inside] = 0.0
        if len(policy.levels) > 2 and inside.any():
            tp = fc.grid.token_px
            pts_in = torch.stack([fc.xs[inside], fc.ys[inside]], dim=-1)
            pts = torch.stack([fc.xs.reshape(-1), fc.ys.reshape(-1)], dim=-1)
            dist = torch.cdist(pts, pts_in).amin(dim=1).reshape(inside.shape)
            r_eq = math.sqrt(float(inside.sum()) * tp * tp / math.pi)
            rho = torch.where(inside, rho, 1.0 + dist / r_eq)
        return policy.level_for_rho(rho)


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


Region = Union[Gaze, Box, MaskRegion, AcuityGaze]


# ----------------------------------------------------------------------------- fovea
@dataclass(frozen=True, eq=False)
class Fovea:
    """What the user chose: regions (union), an optional per-frame gaze path, the level
    policy and the blend feather (transition width as a fraction of the half-diagonal,
    placed inside the full-resolution region)."""

    regions: tuple = ()
    policy: LevelPolicy = field(default_factory=LevelPolicy)
    feather: float = 0.03
    path: Optional["GazePath"] = None  # noqa: F821 (gaze_path.GazePath)

    def __post_init__(self):
        object.__setattr__(self, "regions", tuple(self.regions))
        if not self.regions and self.path is None:
            raise ValueError("a fovea needs at least one region (gaze, box, mask) or a gaze path")
        f = _finite("feather", self.feather)
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"feather must be between 0 and 1 (fraction of the half-diagonal), got {f}")
        if not isinstance(self.policy, LevelPolicy):
            raise ValueError("policy must be a LevelPolicy")

    def with_policy(self, policy: LevelPolicy) -> "Fovea":
        return Fovea(self.regions, policy, self.feather, self.path)

    def union(self, other: "Fovea") -> "Fovea":
        if self.path is not None and other.path is not None:
            raise ValueError("only one gaze path per fovea")
        return Fovea(self.regions + other.regions, self.policy, self.feather, self.path or other.path)

    def key(self) -> str:
        """Stable content digest, used to cache layouts."""
        cached = self.__dict__.get("_key")
        if cached is None:
            h = hashlib.sha1()
            h.update(repr((self.policy, self.feather)).encode())
            for r in self.regions:
                if isinstance(r, MaskRegion):
                    h.update(b"mask")
                    h.update(repr((tuple(r.mask.shape), r.threshold)).encode())
                    h.update(r.mask.numpy().tobytes())
                else:
                    h.update(repr(r).encode())
            if self.path is not None:
                h.update(repr(self.path).encode())
            cached = h.hexdigest()
            object.__setattr__(self, "_key", cached)
        return cached
