"""The level policy (which levels a fovea uses, where the rings around each region end)
and the number check every fovea description shares."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MAX_LEVEL = 3  # 1/8 periphery; coarser blocks would exceed most latents


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


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
