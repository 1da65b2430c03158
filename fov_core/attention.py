"""Phase-aligned mixed-resolution attention over a packed sequence.

A model's attention sequence is [prefix | packed image tokens | suffix]: prefix = text
tokens for joint-attention models (FLUX), suffix = tokens that are never foveated
(reference latents). One attention group per level present:

    base level b (finest present): prefix + level-b tokens + suffix as queries, every
        token as key, RoPE frame b
    level k > b: level-k queries; keys = prefix + the image tokens on the 2^k lattice +
        suffix, RoPE frame k (image spatial ids / 2^k)

The packed order (layout.py) makes every group's queries a few contiguous runs and the
image keys of a level-k group a prefix of the image tokens, so a group reads slices of
q, k and v, never gathers. No full-size attention is ever formed. Text and reference
queries use the base frame, so an all-level-k map reproduces the native low-resolution
forward exactly.

Frames: q and k arrive rotated by the model's own RoPE in the base frame (ids with image
spatial axes / 2^b). RoPE rotations compose, so a level-k group needs q and k rotated
once more, by the difference of the frames: image rows by (id - origin) (2^-k - 2^-b)
on the spatial axes, every other row by 0 (`frame_delta_ids`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .layout import TokenLayout


@dataclass(frozen=True)
class AttentionGroup:
    level: int
    q_ranges: tuple  # ((start, end), ...) in the joint sequence
    k_end: Optional[int]  # keys [0, k_end) plus the suffix; None = every key

    @property
    def n_q(self) -> int:
        return sum(e - s for s, e in self.q_ranges)


class SequencePlan:
    """Attention groups for one layout inside a sequence [prefix | image | suffix].

    Built from the layout's (lattice class, level) segments and their lengths, without
    sorting or comparing lengths: the lengths may be symbolic (torch.compile with dynamic
    shapes), so one compiled graph serves every fovea with the same set of levels.
    suffix_queries=False: the suffix is only present as keys (a reference KV cache feeds
    cached reference keys/values while the queries stop at the image tokens).
    image_rows: the image part's length when it is padded past the packed tokens (fixed
    sizes for torch.compile): padding rows are queries of the base group whose outputs
    nobody reads, and keys of nobody.
    """

    def __init__(self, segments, lengths, n_prefix: int = 0, n_suffix: int = 0, suffix_queries: bool = True,
                 image_rows: Optional[int] = None):
        levels = sorted({lv for _, lv in segments})
        self.base_level = levels[0]
        self.n_prefix, self.n_suffix = n_prefix, n_suffix
        # image segments in packed order: [level, start, end]; neighbours of one level merged
        runs, pos = [], n_prefix
        for (_, lv), n in zip(segments, lengths):
            if isinstance(n, int) and n == 0:
                continue
            if runs and runs[-1][0] == lv:
                runs[-1][2] = pos + n
            else:
                runs.append([lv, pos, pos + n])
            pos = pos + n
        self.image_start, self.image_end = n_prefix, pos
        self.suffix_start = pos if image_rows is None else n_prefix + image_rows
        self.seq_len = self.suffix_start + n_suffix  # keys
        self.q_len = self.seq_len if suffix_queries else self.suffix_start  # queries
        base = self.base_level
        if n_prefix:  # text queries belong to the base group
            runs = ([[base, 0, runs[0][2]]] + runs[1:]) if runs[0][0] == base else [[base, 0, n_prefix]] + runs
        if image_rows is not None or (n_suffix and suffix_queries):  # padding, suffix: base queries
            runs = (runs[:-1] + [[base, runs[-1][1], self.q_len]]) if runs[-1][0] == base \
                else runs + [[base, pos, self.q_len]]
        groups = []
        for k in levels:
            # image keys of a coarser view: the segments of lattice class >= k, a prefix; the base
            # view sees every image token (not the padding)
            if k == base:
                k_end = None if image_rows is None else pos
            else:
                k_end = n_prefix + sum(n for (c, _), n in zip(segments, lengths) if c >= k)
            groups.append(AttentionGroup(k, tuple((s, e) for lv, s, e in runs if lv == k), k_end))
        self.groups = groups
        # output pieces in sequence order: (start, end, group index)
        self.pieces = tuple((s, e, levels.index(lv)) for lv, s, e in runs)

    @classmethod
    def of(cls, layout: TokenLayout, n_prefix: int = 0, n_suffix: int = 0, suffix_queries: bool = True,
           image_rows: Optional[int] = None):
        return cls(layout.segments, layout.segment_lengths, n_prefix, n_suffix, suffix_queries, image_rows)

    def n_keys(self, group: AttentionGroup) -> int:
        return self.seq_len if group.k_end is None else group.k_end + self.n_suffix

    def frame_delta_ids(self, ids: torch.Tensor, group: AttentionGroup, spatial_axes: Sequence[int],
                        origin: Optional[Sequence[float]] = None) -> torch.Tensor:
        """Ids whose RoPE rotation turns the base frame into `group`'s frame.

        ids: (..., seq_len, A) full-resolution ids of the whole sequence (image rows at
        origin + position). Image rows: (id - origin) (2^-k - 2^-b) on the spatial axes;
        every other entry 0 (the identity rotation).
        """
        b = self.base_level
        out = torch.zeros_like(ids)
        axes = list(spatial_axes)
        img = ids[..., self.image_start : self.image_end, :][..., axes] - _origin(origin, ids, len(axes))
        out[..., self.image_start : self.image_end, axes] = img * (2.0 ** -group.level - 2.0 ** -b)
        return out

    def base_ids(self, ids: torch.Tensor, spatial_axes: Sequence[int],
                 origin: Optional[Sequence[float]] = None) -> torch.Tensor:
        """Full-resolution ids -> the base frame (image spatial ids origin + (id - origin) / 2^b)."""
        b = self.base_level
        if b == 0:
            return ids
        out = ids.clone()
        axes = list(spatial_axes)
        org = _origin(origin, ids, len(axes))
        img = out[..., self.image_start : self.image_end, :]
        img[..., axes] = org + (img[..., axes] - org) / 2.0**b
        return out


def _origin(origin, like: torch.Tensor, n: int) -> torch.Tensor:
    return torch.tensor(list(origin) if origin is not None else [0.0] * n, dtype=like.dtype, device=like.device)


def _merge(ranges) -> tuple:
    out = []
    for s, e in ranges:
        if e <= s:
            continue
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return tuple(out)


def group_keys(x: torch.Tensor, plan: SequencePlan, group: AttentionGroup, dim: int = 2) -> torch.Tensor:
    """Keys (or values, or mask columns) of a group along `dim`: a prefix slice, plus the
    suffix when there is one."""
    if group.k_end is None:
        return x
    head = x.narrow(dim, 0, group.k_end)
    if not plan.n_suffix:
        return head
    return torch.cat((head, x.narrow(dim, plan.suffix_start, plan.n_suffix)), dim=dim)


def phase_aligned_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: SequencePlan,
    attend: Callable,
    rotate: Callable,
) -> torch.Tensor:
    """q, k, v: (B, heads, N, D), rotated in the base frame. Returns (B, heads, q_len, D).

    attend(q_g, k_g, v_g, group, (start, end)) -> (B, heads, end - start, D): the
        model's own attention on one contiguous run of queries.
    rotate(q, k, group_index) -> (q, k) rotated from the base frame into the group's
        frame (called for groups whose level is not the base level).
    """
    outs = [None] * len(plan.pieces)
    for gi, g in enumerate(plan.groups):
        qg, kg = q, k
        if g.level != plan.base_level:
            qg, kg = rotate(q, k, gi)
        kg, vg = group_keys(kg, plan, g), group_keys(v, plan, g)
        for i, (s, e, pgi) in enumerate(plan.pieces):
            if pgi == gi:
                outs[i] = attend(qg[:, :, s:e], kg, vg, g, (s, e))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
