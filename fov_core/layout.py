"""Token layout: how a block-consistent level map becomes one packed sequence.

A level-k token is the aligned 2^k x 2^k block whose top-left token is (t, y, x); its
position id is that top-left in full-resolution token units.

Phase-aligned views (paper, generalized to any set of levels): a query of level k
attends, in its own RoPE frame (spatial ids divided by 2^k; frame/time and text ids
unchanged), to every image token whose position is a multiple of 2^k in y and x: all
tokens of level >= k (each once, at its top-left), and one representative per 2^k
block of finer tokens (the block's top-left token). Non-image tokens (text, reference
latents) are seen by every query; queries of the finest level b see every key.

Packed order (chosen so attention needs slices, not gathers): the lattice class of a
token is the largest level k present with y and x multiples of 2^k. Tokens are sorted
by class, coarsest first, so the keys of every level-k view (the tokens of class >= k)
are a PREFIX of the packed image tokens. Within a class the levels are ordered so that
each level's queries stay one contiguous run where possible: in the top class the
finest level comes first (next to a text prefix), then the class's own level and the
others descending, and last the level that continues into the next class (the largest
level below the class); in a lower class its own level first. Raster (t, y, x) order
inside each (class, level) segment. With two levels every level is one run; with rings
(0, 1, 2) only the finest level has two runs.
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from .rasterize import assign_levels, check_block_consistent, rasterize


def _level_order(cls: int, levels: tuple, top: bool) -> list:
    """Order of the levels inside lattice class `cls` (see module docstring)."""
    below = [k for k in levels if k < cls]
    straddle = below[-1] if below else None
    base = levels[0]
    rest = [k for k in reversed(below) if k != straddle and not (top and k == base)]
    order = [cls] + rest + ([straddle] if straddle is not None and not (top and straddle == base) else [])
    if top and base != cls:
        order = [base] + order
    return order


class TokenLayout:
    def __init__(self, level_map: torch.Tensor):
        level_map = level_map.to("cpu", torch.long)
        check_block_consistent(level_map)
        self.level_map = level_map
        T, H, W = level_map.shape
        self.shape = (T, H, W)
        self.levels = tuple(sorted(torch.unique(level_map).tolist()))
        self.base_level = self.levels[0]

        t, y, x = torch.meshgrid(torch.arange(T), torch.arange(H), torch.arange(W), indexing="ij")
        lv = level_map
        block = 2**lv
        origin = (y % block == 0) & (x % block == 0)  # one token per block: its top-left
        t, y, x, lv = t[origin], y[origin], x[origin], lv[origin]  # raster order
        cls = torch.full_like(lv, self.base_level)
        for k in self.levels[1:]:
            cls = torch.where((y % 2**k == 0) & (x % 2**k == 0), torch.full_like(cls, k), cls)
        top = self.levels[-1]
        rank = torch.empty_like(lv)
        for c in self.levels:
            for r, k in enumerate(_level_order(c, self.levels, top=c == top)):
                rank[(cls == c) & (lv == k)] = r
        key = ((top - cls) * len(self.levels) + rank) * (T * H * W) + (t * H + y) * W + x
        order = torch.argsort(key)
        self.t, self.y, self.x, self.level = t[order], y[order], x[order], lv[order]
        self.lattice_class = cls[order]
        self.n_tokens = int(order.numel())
        self.flat_index = (self.t * H + self.y) * W + self.x

        # (lattice class, level) segments of the packed order: the structure depends only on
        # the set of levels, the lengths on the fovea
        seg = self.lattice_class * (top + 1) + self.level
        change = torch.ones(self.n_tokens, dtype=torch.bool)
        change[1:] = seg[1:] != seg[:-1]
        starts = change.nonzero().squeeze(1).tolist() + [self.n_tokens]
        self.segments = tuple((int(self.lattice_class[s]), int(self.level[s])) for s in starts[:-1])
        self.segment_lengths = tuple(e - s for s, e in zip(starts[:-1], starts[1:]))
        self._cache = {}

    @property
    def runs(self) -> dict:
        """Per level, its contiguous runs (start, end) in the packed order."""
        runs, pos = {k: [] for k in self.levels}, 0
        for (_, lv), n in zip(self.segments, self.segment_lengths):
            if runs[lv] and runs[lv][-1][1] == pos:
                runs[lv][-1] = (runs[lv][-1][0], pos + n)
            else:
                runs[lv].append((pos, pos + n))
            pos += n
        return runs

    @property
    def lattice_count(self) -> dict:
        """Per level k, the number of image tokens on the 2^k lattice: the length of the
        prefix that is the level-k view's keys."""
        return {k: sum(n for (c, _), n in zip(self.segments, self.segment_lengths) if c >= k) for k in self.levels}

    # ------------------------------------------------------------------ summaries
    @property
    def full_tokens(self) -> int:
        T, H, W = self.shape
        return T * H * W

    @property
    def token_ratio(self) -> float:
        return self.n_tokens / self.full_tokens

    def counts(self) -> dict[int, int]:
        return {k: sum(e - s for s, e in self.runs[k]) for k in self.levels}

    def positions(self, level: int = 0) -> torch.Tensor:
        """(L, 3) float ids (t, y, x) of the packed tokens in the RoPE frame of `level`."""
        s = float(2**level)
        return torch.stack([self.t.double(), self.y.double() / s, self.x.double() / s], dim=1)

    def with_full_resolution(self, full: torch.Tensor) -> "TokenLayout":
        """This layout with the `full` tokens ((T, H, W) bool) at full resolution. The block
        rules split a coarse block that touches them only as finely as needed, so every
        token's level only drops: a latent that is canonical for this layout outside `full`
        is canonical for the result (finer blocks of a constant block are constant)."""
        full = full.to("cpu", torch.bool)
        if not full.any():
            return self
        return self.cached(("full", full.numpy().tobytes()),
                           lambda: TokenLayout(assign_levels(torch.where(full, 0, self.level_map), self.levels)))

    def cached(self, key, build):
        """Per-layout memo for derived tensors (packing, plans, RoPE tables), freed with it."""
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
