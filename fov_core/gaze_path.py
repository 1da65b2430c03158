"""Gaze paths for video: keyframes at video-frame indices, interpolated per frame.

Interpolation is monotone piecewise-cubic Hermite (PCHIP, Fritsch-Carlson slopes, the
same rule as scipy's PchipInterpolator): smooth (C1), and it never overshoots the
keyframes, so a radius stays positive and a center stays where the user put it.
Before the first and after the last keyframe the value is held. The canvas widget
implements the identical formula in web/fovea_geometry.js, so what is drawn is what
is generated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .policy import _finite
from .regions import Gaze, _check_center


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def pchip_slopes(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    n = len(xs)
    if n == 1:
        return [0.0]
    h = [xs[i + 1] - xs[i] for i in range(n - 1)]
    delta = [(ys[i + 1] - ys[i]) / h[i] for i in range(n - 1)]
    if n == 2:
        return [delta[0], delta[0]]
    d = [0.0] * n
    for k in range(1, n - 1):
        if _sign(delta[k - 1]) * _sign(delta[k]) <= 0:
            d[k] = 0.0
        else:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def edge(h0, h1, m0, m1):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if _sign(e) != _sign(m0):
            return 0.0
        if _sign(m0) != _sign(m1) and abs(e) > abs(3 * m0):
            return 3 * m0
        return e

    d[0] = edge(h[0], h[1], delta[0], delta[1])
    d[-1] = edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


def pchip_eval(xs: Sequence[float], ys: Sequence[float], d: Sequence[float], x: float) -> float:
    if x <= xs[0]:
        return float(ys[0])
    if x >= xs[-1]:
        return float(ys[-1])
    k = 0
    while xs[k + 1] < x:
        k += 1
    h = xs[k + 1] - xs[k]
    t = (x - xs[k]) / h
    h00 = 2 * t**3 - 3 * t**2 + 1
    h10 = t**3 - 2 * t**2 + t
    h01 = -2 * t**3 + 3 * t**2
    h11 = t**3 - t**2
    return h00 * ys[k] + h10 * h * d[k] + h01 * ys[k + 1] + h11 * h * d[k + 1]


@dataclass(frozen=True)
class GazeKeyframe:
    frame: int
    x: float
    y: float
    radius: float

    def __post_init__(self):
        if isinstance(self.frame, bool) or not isinstance(self.frame, int):
            raise ValueError(f"keyframe frame index must be an integer, got {self.frame!r}")
        _check_center("keyframe", self.x, self.y)
        r = _finite("keyframe radius", self.radius)
        if r <= 0:
            raise ValueError(f"keyframe radius must be > 0, got {r} at frame {self.frame}")


@dataclass(frozen=True)
class GazePath:
    """Keyframed circles over `num_frames` video frames."""

    keyframes: tuple
    num_frames: int

    def __post_init__(self):
        kfs = tuple(self.keyframes)
        object.__setattr__(self, "keyframes", kfs)
        if not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {self.num_frames!r}")
        if not kfs:
            raise ValueError("a gaze path needs at least one keyframe")
        for kf in kfs:
            if not isinstance(kf, GazeKeyframe):
                raise ValueError("keyframes must be GazeKeyframe objects")
            if not 0 <= kf.frame < self.num_frames:
                raise ValueError(
                    f"keyframe at frame {kf.frame} is out of range: the video has frames "
                    f"0 .. {self.num_frames - 1}"
                )
        frames = [kf.frame for kf in kfs]
        if any(b <= a for a, b in zip(frames, frames[1:])):
            raise ValueError(f"keyframes must be in increasing frame order without repeats, got frames {frames}")

    def _curves(self):
        cached = self.__dict__.get("_curves_cache")
        if cached is None:
            xs = [float(kf.frame) for kf in self.keyframes]
            cached = []
            for attr in ("x", "y", "radius"):
                ys = [float(getattr(kf, attr)) for kf in self.keyframes]
                cached.append((xs, ys, pchip_slopes(xs, ys)))
            object.__setattr__(self, "_curves_cache", cached)
        return cached

    def sample(self, frame: float) -> tuple[float, float, float]:
        """(x, y, radius) at a (possibly fractional) video frame."""
        if not math.isfinite(frame):
            raise ValueError(f"frame must be finite, got {frame}")
        return tuple(pchip_eval(xs, ys, d, frame) for xs, ys, d in self._curves())

    def gaze_at(self, frame: float) -> Gaze:
        x, y, r = self.sample(frame)
        return Gaze(x, y, r)
