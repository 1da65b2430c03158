"""The Fovea: what the user chose (regions, gaze path, level policy, feather), the unit
the nodes pass along and layouts are cached by. The regions live in regions.py, the
level policy in policy.py."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

from .policy import LevelPolicy, _finite
from .regions import MaskRegion


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
                    h.update(r.mask.contiguous().numpy())  # the buffer itself, not a copy
                else:
                    h.update(repr(r).encode())
            if self.path is not None:
                h.update(repr(self.path).encode())
            cached = h.hexdigest()
            object.__setattr__(self, "_key", cached)
        return cached
