"""A tiny reference RoPE DiT, so the invariants are testable without ComfyUI.

JointDiT: FLUX-like joint text + image attention over one sequence
    [text | image | references], multi-axis RoPE (t, y, x), patch size p.
VideoDiT: Wan-like 3D RoPE self-attention over image tokens only, plus
    cross-attention to text (no RoPE), on (T, H, W) grids.

Each model runs three ways: native (full-resolution tokens, one dense attention),
foveated (fov_core packing + phase-aligned attention) and dense-reference (fov_core
packing + the slow per-query reference attention).
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from fov_core import LatentPacking, SequencePlan, TokenLayout, phase_aligned_attention

SPATIAL_AXES = (1, 2)


def rope_tables(ids: torch.Tensor, axes_dim, theta: float = 10000.0) -> torch.Tensor:
    """(..., n, A) ids -> (..., n, D/2, 2, 2) rotation matrices (FLUX layout)."""
    mats = []
    for i, d in enumerate(axes_dim):
        scale = torch.arange(0, d, 2, dtype=torch.float64) / d
        omega = 1.0 / theta**scale
        ang = ids[..., i].double()[..., None] * omega
        cos, sin = torch.cos(ang), torch.sin(ang)
        mats.append(torch.stack([cos, -sin, sin, cos], dim=-1).reshape(*ang.shape, 2, 2))
    return torch.cat(mats, dim=-3)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x: (B, H, n, D); table: (n, D/2, 2, 2) or (B, n, D/2, 2, 2)."""
    if table.ndim == 5:
        table = table[:, None]
    x_ = x.double().reshape(*x.shape[:-1], -1, 1, 2)
    out = table[..., 0] * x_[..., 0] + table[..., 1] * x_[..., 1]
    return out.reshape(x.shape).to(x.dtype)


def sdpa(q, k, v, group=None, q_range=None):
    return F.scaled_dot_product_attention(q, k, v)


def dense_reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    ids: torch.Tensor,
    token_levels: torch.Tensor,
    spatial_axes: Sequence[int],
    rope_fn: Callable,
    scale: Optional[float] = None,
    key_bias: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Slow reference, one query at a time, straight from the definition.

    q, k, v: (B, H, N, D), un-rotated. ids: (N, A) full-resolution ids. token_levels:
    (N,) level of each image token, -1 for non-image tokens (text, references).
    rope_fn(x, ids) rotates x (..., n, D) by ids (n, A). key_bias: optional (N,) additive
    logit of every key (an attention mask over the keys, e.g. padded text).
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
        if key_bias is not None:
            logits = logits.double() + key_bias[allowed].double()
        out[:, :, i : i + 1] = torch.softmax(logits.double(), dim=-1).to(q.dtype) @ v[:, :, allowed]
    return out


def dense_reference_attention_frames(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    frames: dict,
    token_levels: torch.Tensor,
    on_lattice: dict,
    rope_fn: Callable,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """dense_reference_attention for models whose frames are not "spatial ids / 2^f"
    (Qwen-Image centres its ids on each grid and moves its text ids with the grid size).

    q, k, v: (B, H, N, D), un-rotated. frames[f]: (N, A) ids of the whole sequence in the
    frame of level f (e.g. what the native forward builds for the 1/2^f latent).
    token_levels: (N,) level of each image token, -1 for tokens every query sees (text,
    references), -2 for tokens no query sees (padding). on_lattice[f]: (N,) bool, image
    tokens whose position is a multiple of 2^f. Query i of level f (others: the finest
    level present) rotates itself and its keys by frames[f] and sees the -1 tokens plus the
    image tokens on the 2^f lattice.
    """
    B, H, N, D = q.shape
    scale = scale if scale is not None else 1.0 / math.sqrt(D)
    is_img = token_levels >= 0
    base = int(token_levels[is_img].min())
    out = torch.empty_like(q)
    for i in range(N):
        f = int(token_levels[i]) if is_img[i] else base
        allowed = (token_levels == -1) | (is_img & on_lattice[f])
        qi = rope_fn(q[:, :, i : i + 1], frames[f][i : i + 1])
        kj = rope_fn(k[:, :, allowed], frames[f][allowed])
        logits = (qi @ kj.transpose(-1, -2)) * scale
        out[:, :, i : i + 1] = torch.softmax(logits.double(), dim=-1).to(q.dtype) @ v[:, :, allowed]
    return out


def phase_aligned(plan: SequencePlan, ids: torch.Tensor, axes_dim):
    """Fast path as a model runs it: q and k rotated natively in the base frame, then
    phase-aligned attention rotating each coarser group by the frame difference."""
    base = rope_tables(plan.base_ids(ids, SPATIAL_AXES), axes_dim)
    deltas = [rope_tables(plan.frame_delta_ids(ids, g, SPATIAL_AXES), axes_dim) for g in plan.groups]

    def rotate(q, k, gi):
        return apply_rope(q, deltas[gi]), apply_rope(k, deltas[gi])

    return lambda q, k, v: phase_aligned_attention(apply_rope(q, base), apply_rope(k, base), v, plan, sdpa, rotate)


class _Block(nn.Module):
    def __init__(self, hidden, heads, cross=False):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
        self.cross = cross
        if cross:
            self.normc = nn.LayerNorm(hidden)
            self.cq = nn.Linear(hidden, hidden)
            self.ckv = nn.Linear(hidden, 2 * hidden)
            self.co = nn.Linear(hidden, hidden)

    def _split(self, t):
        B, N, C = t.shape
        return t.view(B, N, self.heads, C // self.heads).transpose(1, 2)

    def forward(self, x, attention, ctx=None):
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        a = attention(self._split(q), self._split(k), self._split(v))
        x = x + self.proj(a.transpose(1, 2).reshape(B, N, C))
        if self.cross:
            cq = self._split(self.cq(self.normc(x)))
            ck, cv = (self._split(t) for t in self.ckv(ctx).chunk(2, dim=-1))
            x = x + self.co(F.scaled_dot_product_attention(cq, ck, cv).transpose(1, 2).reshape(B, N, C))
        return x + self.mlp(self.norm2(x))


class _TinyDiT(nn.Module):
    axes_dim = (4, 6, 6)

    def __init__(self, channels=4, patch=2, hidden=32, heads=2, depth=2, ctx_dim=8, cross=False, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.channels, self.patch = channels, patch
        self.img_in = nn.Linear(channels * patch * patch, hidden)
        self.txt_in = nn.Linear(ctx_dim, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, heads, cross) for _ in range(depth))
        self.out = nn.Linear(hidden, channels * patch * patch)
        with torch.no_grad():
            for prm in self.parameters():
                prm.copy_(torch.randn(prm.shape, generator=g) * 0.3)

    # -------------------------------------------------------------- helpers
    def patchify(self, latent):
        """(B, C, [T,] H*p, W*p) -> (B, T*H*W, C*p*p) raster tokens, and (T, H, W)."""
        p = self.patch
        if latent.ndim == 4:
            latent = latent.unsqueeze(2)
        B, C, T, Hl, Wl = latent.shape
        H, W = Hl // p, Wl // p
        t = latent.reshape(B, C, T, H, p, W, p).permute(0, 2, 3, 5, 1, 4, 6)
        return t.reshape(B, T * H * W, C * p * p), (T, H, W)

    def unpatchify(self, tokens, thw, video):
        p = self.patch
        T, H, W = thw
        B = tokens.shape[0]
        x = tokens.view(B, T, H, W, -1, p, p).permute(0, 4, 1, 2, 5, 3, 6)
        x = x.reshape(B, -1, T, H * p, W * p)
        return x if video else x[:, :, 0]

    @staticmethod
    def grid_ids(T, H, W, t0=0.0):
        t, y, x = torch.meshgrid(torch.arange(T), torch.arange(H), torch.arange(W), indexing="ij")
        return torch.stack([t.double() + t0, y.double(), x.double()], -1).reshape(-1, 3)


class JointDiT(_TinyDiT):
    """FLUX-like: one sequence [text | image | refs] with joint attention."""

    def _run(self, img_tokens, img_ids, txt, refs, attention):
        B = img_tokens.shape[0]
        n_txt = txt.shape[1]
        txt_ids = torch.zeros(n_txt, 3, dtype=torch.float64)
        txt_ids[:, 0] = torch.arange(n_txt, dtype=torch.float64) * 0.5  # non-trivial text ids
        parts, ids = [self.txt_in(txt), self.img_in(img_tokens)], [txt_ids, img_ids]
        n_ref = 0
        if refs is not None:
            ref_tok, (rT, rH, rW) = self.patchify(refs)
            parts.append(self.img_in(ref_tok))
            ids.append(self.grid_ids(rT, rH, rW, t0=1.0))
            n_ref = ref_tok.shape[1]
        x = torch.cat(parts, dim=1)
        ids = torch.cat(ids)
        att = attention(ids, n_txt, n_ref)
        for blk in self.blocks:
            x = blk(x, att)
        return self.out(x[:, n_txt : n_txt + img_tokens.shape[1]])

    def native(self, latent, txt, refs=None):
        tokens, thw = self.patchify(latent)
        ids = self.grid_ids(*thw)

        def attention(ids_all, n_txt, n_ref):
            table = rope_tables(ids_all, self.axes_dim)
            return lambda q, k, v: sdpa(apply_rope(q, table), apply_rope(k, table), v)

        out = self._run(tokens, ids, txt, refs, attention)
        return self.unpatchify(out, thw, latent.ndim == 5)

    def foveated(self, canvas, txt, layout: TokenLayout, refs=None, reference=False):
        packing = LatentPacking(layout, self.patch)
        tokens = packing.pack(canvas)
        ids = layout.positions(0)

        def attention(ids_all, n_txt, n_ref):
            if reference:
                lv = torch.full((ids_all.shape[0],), -1, dtype=torch.long)
                lv[n_txt : n_txt + layout.n_tokens] = layout.level
                return lambda q, k, v: dense_reference_attention(
                    q, k, v, ids_all, lv, SPATIAL_AXES, lambda x, i: apply_rope(x, rope_tables(i, self.axes_dim))
                )
            return phase_aligned(SequencePlan.of(layout, n_txt, n_ref), ids_all, self.axes_dim)

        out = self._run(tokens, ids, txt, refs, attention)
        return packing.unpack(out, video=canvas.ndim == 5)


class VideoDiT(_TinyDiT):
    """Wan-like: 3D RoPE self-attention over image tokens, cross-attention to text."""

    def __init__(self, **kw):
        kw.setdefault("cross", True)
        super().__init__(**kw)

    def _run(self, img_tokens, ids, txt, attention):
        x = self.img_in(img_tokens)
        ctx = self.txt_in(txt)
        for blk in self.blocks:
            x = blk(x, attention, ctx)
        return self.out(x)

    def native(self, latent, txt):
        tokens, thw = self.patchify(latent)
        table = rope_tables(self.grid_ids(*thw), self.axes_dim)
        att = lambda q, k, v: sdpa(apply_rope(q, table), apply_rope(k, table), v)  # noqa: E731
        return self.unpatchify(self._run(tokens, None, txt, att), thw, latent.ndim == 5)

    def foveated(self, canvas, txt, layout: TokenLayout, reference=False):
        packing = LatentPacking(layout, self.patch)
        tokens = packing.pack(canvas)
        ids = layout.positions(0)
        if reference:
            att = lambda q, k, v: dense_reference_attention(  # noqa: E731
                q, k, v, ids, layout.level, SPATIAL_AXES, lambda x, i: apply_rope(x, rope_tables(i, self.axes_dim))
            )
        else:
            att = phase_aligned(SequencePlan.of(layout), ids, self.axes_dim)
        out = self._run(tokens, ids, txt, att)
        return packing.unpack(out, video=canvas.ndim == 5)
