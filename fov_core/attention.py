"""Phase-aligned mixed-resolution attention over a packed sequence.

A model's attention sequence is [prefix | packed image tokens | suffix]: prefix = text
tokens for joint-attention models (FLUX), suffix = tokens that are never foveated
(reference latents). One attention call per query level, on contiguous query slices:

    group of the base level b (finest present): prefix + level-b tokens + suffix
        queries, every token as key, RoPE frame b
    group of level k > b: level-k queries, keys = prefix + image tokens on the 2^k
        lattice + suffix, RoPE frame k (image spatial ids / 2^k)

No full-size attention is ever formed. Text and reference queries use the base frame,
so an all-level-k map reproduces the native low-resolution forward exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .layout import TokenLayout


@dataclass
class AttentionGroup:
    level: int
    q_slices: tuple  # ((start, end), ...) in the full sequence
    k_index: Optional[torch.Tensor]  # LongTensor into the full sequence; None = every token

    @property
    def n_q(self) -> int:
        return sum(e - s for s, e in self.q_slices)

    def q_index(self) -> torch.Tensor:
        return torch.cat([torch.arange(s, e) for s, e in self.q_slices])

    def n_k(self, seq_len: int) -> int:
        return seq_len if self.k_index is None else int(self.k_index.numel())


class SequencePlan:
    """Attention groups for one layout inside a sequence [prefix | image | suffix].

    suffix_queries=False: the suffix is only present as keys (a reference KV cache feeds
    cached reference keys/values while the queries stop at the image tokens).
    """

    def __init__(self, layout: TokenLayout, n_prefix: int = 0, n_suffix: int = 0, suffix_queries: bool = True):
        self.layout = layout
        self.n_prefix = n_prefix
        self.n_suffix = n_suffix
        L = layout.n_tokens
        self.image_start, self.image_end = n_prefix, n_prefix + L
        self.seq_len = n_prefix + L + n_suffix  # keys
        self.q_len = self.seq_len if suffix_queries else self.image_end  # queries
        prefix = torch.arange(n_prefix)
        suffix = torch.arange(n_prefix + L, self.seq_len)
        groups = []
        for k in layout.levels:
            s, e = layout.level_slices[k]
            s, e = s + n_prefix, e + n_prefix
            if k == layout.base_level:
                slices = [(0, e)] + ([(self.image_end, self.seq_len)] if n_suffix and suffix_queries else [])
            else:
                slices = [(s, e)]
            ki = layout.key_index[k]
            k_index = None if ki is None else torch.cat([prefix, ki + n_prefix, suffix])
            groups.append(AttentionGroup(k, tuple(slices), k_index))
        self.groups = groups
        pieces = [(s, gi, pi) for gi, g in enumerate(groups) for pi, (s, _) in enumerate(g.q_slices)]
        self._order = [(gi, pi) for _, gi, pi in sorted(pieces)]
        self._device_copies = {}

    @property
    def trivial(self) -> bool:
        """One group seeing every key: plain attention (only the RoPE frame may differ)."""
        return len(self.groups) == 1

    def to(self, device) -> "SequencePlan":
        device = torch.device(device)
        if all(g.k_index is None or g.k_index.device == device for g in self.groups):
            return self
        if device not in self._device_copies:
            clone = object.__new__(SequencePlan)
            clone.__dict__.update(self.__dict__)
            clone.groups = [
                AttentionGroup(g.level, g.q_slices, None if g.k_index is None else g.k_index.to(device))
                for g in self.groups
            ]
            clone._device_copies = {}
            self._device_copies[device] = clone
        return self._device_copies[device]

    def frame_ids(self, ids: torch.Tensor, spatial_axes: Sequence[int], origin: Optional[Sequence[float]] = None):
        """Per group, (query ids, key ids) in the group's RoPE frame.

        ids: (..., N, A) full-resolution position ids of the whole sequence. Only image
        rows change: their spatial ids become origin + (id - origin) / 2^level (origin 0
        unless the model shifts its image ids); text/reference ids are kept.
        """
        out = []
        axes = list(spatial_axes)
        org = torch.tensor(list(origin) if origin is not None else [0.0] * len(axes), dtype=ids.dtype, device=ids.device)
        for g in self.groups:
            framed = ids.clone()
            if g.level:
                img = framed[..., self.image_start : self.image_end, :]
                img[..., axes] = org + (img[..., axes] - org) / (2.0**g.level)
            q_ids = torch.cat([framed[..., s:e, :] for s, e in g.q_slices], dim=-2)
            k_ids = framed if g.k_index is None else framed.index_select(-2, g.k_index.to(framed.device))
            out.append((q_ids, k_ids))
        return out


def _take(x: torch.Tensor, slices, dim: int) -> torch.Tensor:
    if len(slices) == 1:
        s, e = slices[0]
        return x.narrow(dim, s, e - s)
    return torch.cat([x.narrow(dim, s, e - s) for s, e in slices], dim=dim)


def phase_aligned_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: SequencePlan,
    attend: Callable,
    rope: Optional[Callable] = None,
    seq_dim: int = 2,
    out_seq_dim: int = 2,
) -> torch.Tensor:
    """q, k, v hold the whole sequence along `seq_dim` (e.g. (B, heads, N, D)).

    attend(q_g, k_g, v_g, group) -> output of the group's queries, sequence on
        `out_seq_dim` (so a model's own attention function, whatever layout it returns).
    rope(x, group_index, "q" | "k") -> x rotated in that group's frame, or None when
        q and k already carry their rotation.
    """
    plan = plan.to(q.device)
    outs = []
    for gi, g in enumerate(plan.groups):
        qg = _take(q, g.q_slices, seq_dim)
        if g.k_index is None:
            kg, vg = k, v
        else:
            kg, vg = k.index_select(seq_dim, g.k_index), v.index_select(seq_dim, g.k_index)
        if rope is not None:
            qg, kg = rope(qg, gi, "q"), rope(kg, gi, "k")
        og = attend(qg, kg, vg, g)
        if len(g.q_slices) == 1:
            outs.append([og])
        else:
            outs.append(list(og.split([e - s for s, e in g.q_slices], dim=out_seq_dim)))
    if len(plan._order) == 1:
        return outs[0][0]
    return torch.cat([outs[gi][pi] for gi, pi in plan._order], dim=out_seq_dim)


def dense_reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    ids: torch.Tensor,
    token_levels: torch.Tensor,
    spatial_axes: Sequence[int],
    rope_fn: Callable,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Slow reference, one query at a time, straight from the definition.

    q, k, v: (B, H, N, D), un-rotated. ids: (N, A) full-resolution ids. token_levels:
    (N,) level of each image token, -1 for non-image tokens (text, references).
    rope_fn(x, ids) rotates x (..., n, D) by ids (n, A).
    Query i of level f (non-image queries: the finest level present) rotates itself and
    its keys by ids with image spatial axes / 2^f, and sees non-image keys plus image
    keys whose spatial ids are multiples of 2^f.
    """
    B, H, N, D = q.shape
    scale = scale if scale is not None else 1.0 / math.sqrt(D)
    is_img = token_levels >= 0
    base = int(token_levels[is_img].min())
    axes = list(spatial_axes)
    out = torch.empty_like(q)
    for i in range(N):
        f = int(token_levels[i]) if is_img[i] else base
        s = 2**f
        framed = ids.clone().double()
        framed[is_img.nonzero().squeeze(1)[:, None], torch.tensor(axes)[None, :]] /= s
        on_lattice = (ids[:, axes].remainder(s) == 0).all(dim=1)
        allowed = (~is_img) | on_lattice
        qi = rope_fn(q[:, :, i : i + 1], framed[i : i + 1])
        kj = rope_fn(k[:, :, allowed], framed[allowed])
        logits = (qi @ kj.transpose(-1, -2)) * scale
        out[:, :, i : i + 1] = torch.softmax(logits.double(), dim=-1).to(q.dtype) @ v[:, :, allowed]
    return out
