"""Token layout: how a block-consistent level map becomes one packed sequence.

Packed order: levels ascending (full resolution first), raster (t, y, x) within a
level. A level-k token is the aligned 2^k x 2^k block whose top-left token is
(t, y, x); its position id is that top-left in full-resolution token units.

Phase-aligned views (paper, generalized to any set of levels): a query of level k
attends, in its own RoPE frame (spatial ids divided by 2^k; frame/time and text ids
unchanged), to every image token whose position is a multiple of 2^k in y and x.
Those are exactly: all tokens of level >= k (each once, at its top-left), and one
representative per 2^k block of finer tokens (the block's top-left token). Non-image
tokens (text, reference latents) are seen by every query.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import torch

from .rasterize import check_block_consistent, rasterize


class TokenLayout:
    def __init__(self, level_map: torch.Tensor):
        level_map = level_map.to("cpu", torch.long)
        check_block_consistent(level_map)
        self.level_map = level_map
        T, H, W = level_map.shape
        self.shape = (T, H, W)
        self.levels = tuple(sorted(torch.unique(level_map).tolist()))
        self.base_level = self.levels[0]

        ts, ys, xs, lv = [], [], [], []
        self.level_slices = {}
        start = 0
        _, grid_y, grid_x = torch.meshgrid(
            torch.arange(T), torch.arange(H), torch.arange(W), indexing="ij"
        )
        for k in self.levels:
            b = 2**k
            origin = (level_map == k) & (grid_y % b == 0) & (grid_x % b == 0)
            t, y, x = origin.nonzero(as_tuple=True)  # lexicographic = raster order
            ts.append(t), ys.append(y), xs.append(x), lv.append(torch.full_like(t, k))
            self.level_slices[k] = (start, start + t.numel())
            start += t.numel()
        self.t = torch.cat(ts)
        self.y = torch.cat(ys)
        self.x = torch.cat(xs)
        self.level = torch.cat(lv)
        self.n_tokens = start
        self.flat_index = (self.t * H + self.y) * W + self.x

        # keys of each level's view, as indices into the packed image tokens
        self.key_index: dict[int, Optional[torch.Tensor]] = {}
        for k in self.levels:
            b = 2**k
            on_lattice = (self.y % b == 0) & (self.x % b == 0)
            self.key_index[k] = None if bool(on_lattice.all()) else on_lattice.nonzero().squeeze(1)
        self._cache = {}

    # ------------------------------------------------------------------ summaries
    @property
    def full_tokens(self) -> int:
        T, H, W = self.shape
        return T * H * W

    @property
    def token_ratio(self) -> float:
        return self.n_tokens / self.full_tokens

    def counts(self) -> dict[int, int]:
        return {k: e - s for k, (s, e) in self.level_slices.items()}

    def positions(self, level: int = 0) -> torch.Tensor:
        """(L, 3) float ids (t, y, x) of the packed tokens in the RoPE frame of `level`."""
        s = float(2**level)
        return torch.stack([self.t.double(), self.y.double() / s, self.x.double() / s], dim=1)

    def cached(self, key, build):
        """Per-layout memo for derived index tensors (packing, plans, tables)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


class LayoutCache:
    """LRU cache of layouts keyed on (fovea, grid): build once, never per layer or step."""

    def __init__(self, size: int = 16):
        self.size = size
        self._data: OrderedDict = OrderedDict()

    def get(self, fovea, grid) -> TokenLayout:
        key = (fovea.key(), grid)
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        layout = TokenLayout(rasterize(fovea, grid))
        self._data[key] = layout
        while len(self._data) > self.size:
            self._data.popitem(last=False)
        return layout

    def __len__(self):
        return len(self._data)
