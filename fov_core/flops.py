"""Analytic FLOP count of a DiT step, native vs foveated, and the readout users see.

Per block (double and single FLUX blocks cost the same per token):
    linear MACs per token  = 4 h^2 (q, k, v, out) + m_f h m (MLP; m_f = 3 gated, 2 plain)
                             + 2 h^2 if the block has cross-attention (q, out of it)
    self-attention MACs    = 2 h * sum over query groups (n_q * n_k)   (QK^T and AV)
    cross-attention MACs   = 2 h * n_image * n_context  (+ 2 h^2 n_context for its k, v)
FLOPs = 2 x MACs. The ideal speedup is native FLOPs / foveated FLOPs: what a perfectly
efficient implementation would reach.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .attention import SequencePlan
from .layout import TokenLayout


@dataclass(frozen=True)
class DiTDims:
    hidden: int
    mlp_hidden: int
    blocks: int
    text_tokens: int = 0  # joint-attention prefix (FLUX); 0 for cross-attention models
    gated_mlp: bool = False
    context_tokens: int = 0  # cross-attention context length (Wan); 0 if none
    extra_tokens: int = 0  # never-foveated tokens in the sequence (reference latents)

    def linear_macs_per_token(self) -> int:
        h, m = self.hidden, self.mlp_hidden
        lin = 4 * h * h + (3 if self.gated_mlp else 2) * h * m
        if self.context_tokens:
            lin += 2 * h * h
        return lin


def step_flops(dims: DiTDims, layout: Optional[TokenLayout], full_tokens: Optional[int] = None) -> float:
    """FLOPs of one model forward (batch 1). layout=None: the native full-resolution run."""
    h = dims.hidden
    if layout is None:
        n_img = full_tokens
        n_seq = dims.text_tokens + n_img + dims.extra_tokens
        attn_pairs = n_seq * n_seq
    else:
        n_img = layout.n_tokens
        plan = SequencePlan.of(layout, dims.text_tokens, dims.extra_tokens)
        n_seq = plan.seq_len
        attn_pairs = sum(g.n_q * plan.n_keys(g) for g in plan.groups)
    macs = n_seq * dims.linear_macs_per_token() + 2 * h * attn_pairs
    if dims.context_tokens:
        macs += 2 * h * n_img * dims.context_tokens + 2 * h * h * dims.context_tokens
    return 2.0 * macs * dims.blocks


def readout(layout: TokenLayout, dims: Optional[DiTDims] = None) -> dict:
    """What the user sees: tokens kept, ratio and FLOP-ideal speedup."""
    out = {
        "tokens": layout.n_tokens,
        "full_tokens": layout.full_tokens,
        "token_ratio": layout.token_ratio,
        "per_level": layout.counts(),
    }
    if dims is not None:
        native = step_flops(dims, None, layout.full_tokens)
        fov = step_flops(dims, layout)
        out["ideal_speedup"] = native / fov
        out["native_tflops"] = native / 1e12
        out["foveated_tflops"] = fov / 1e12
    return out


def format_readout(r: dict) -> str:
    levels = ", ".join(f"1/{2 ** k}: {n}" if k else f"full: {n}" for k, n in sorted(r["per_level"].items()))
    text = f"{r['tokens']}/{r['full_tokens']} tokens ({100 * r['token_ratio']:.1f}%; {levels})"
    if "ideal_speedup" in r:
        text += f", FLOP-ideal speedup {r['ideal_speedup']:.2f}x"
    return text
