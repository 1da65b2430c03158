"""The MODEL patch: keyed wrappers on a clone of the ModelPatcher.

OUTER_SAMPLE   once per sampling run: initial noise follows the canvas rule (i.i.d.
               representatives, replicated groups), whoever drew it; the result is
               canonicalized; one log line with the token readout.
DIFFUSION_MODEL every forward: the family adapter runs the native model on the packed
               sequence (see adapters/).
All per-run state lives in transformer_options copies; the model object itself is never
touched, so an interrupted or failed run leaves nothing behind.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import torch

import comfy.patcher_extension as pe

from ..fov_core import Fovea, LatentPacking, LayoutCache, SequencePlan, TokenGrid, TokenLayout, format_readout
from ..fov_core import phase_aligned_attention, readout

WRAPPER_KEY = "foveated_diffusion"
RUN_KEY = "foveated_run"
CALL_KEY = "foveated_call"
log = logging.getLogger("foveated")


@dataclass
class RunState:
    """One sampling run (created by the OUTER_SAMPLE wrapper)."""

    logged: bool = False


@dataclass
class CallState:
    """One model forward: what the attention override needs."""

    layout: TokenLayout
    plan: Optional[SequencePlan] = None
    rope: Optional[object] = None  # callable(x, group_index, "q" | "k")
    ids: Optional[torch.Tensor] = None  # (B, N, axes) full-resolution ids of the sequence
    origin: tuple = (0.0, 0.0)


class FoveationPatch:
    def __init__(self, fovea: Fovea, adapter_cls):
        self.fovea = fovea
        self.adapter_cls = adapter_cls
        self.layouts = LayoutCache()
        self._packings = {}

    # ------------------------------------------------------------------ layouts
    def layout_for(self, grid: TokenGrid) -> TokenLayout:
        return self.layouts.get(self.fovea, grid)

    def packing_for(self, layout: TokenLayout, patch: int) -> LatentPacking:
        return layout.cached(("packing", patch), lambda: LatentPacking(layout, patch))

    # ------------------------------------------------------------------ install
    def install(self, model_patcher):
        adapter = self.adapter_cls(model_patcher)
        m = model_patcher.clone()
        for kind in (pe.WrappersMP.OUTER_SAMPLE, pe.WrappersMP.DIFFUSION_MODEL):
            m.remove_wrappers_with_key(kind, WRAPPER_KEY)  # a later Apply Foveation replaces an earlier one
        m.add_wrapper_with_key(pe.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _OuterSample(self, adapter))
        m.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, _DiffusionModel(self, adapter))
        return m


class _OuterSample:
    def __init__(self, patch: FoveationPatch, adapter):
        self.patch, self.adapter = patch, adapter

    def __call__(self, executor, noise, latent_image, *args, **kwargs):
        if getattr(noise, "is_nested", False) or getattr(latent_image, "is_nested", False):
            raise ValueError("Foveation does not support multi-latent (nested) sampling such as audio+video models.")
        grid, patch_size = self.adapter.token_grid(tuple(noise.shape))
        layout = self.patch.layout_for(grid)
        packing = self.patch.packing_for(layout, patch_size)
        noise = packing.canonicalize(noise)
        guider = executor.class_obj
        guider.model_options.setdefault("transformer_options", {})[RUN_KEY] = RunState()
        out = executor(noise, latent_image, *args, **kwargs)
        return packing.canonicalize(out)


class _DiffusionModel:
    def __init__(self, patch: FoveationPatch, adapter):
        self.patch, self.adapter = patch, adapter

    def __call__(self, executor, *args, **kwargs):
        x = args[0]
        grid, patch_size = self.adapter.token_grid(tuple(x.shape))
        layout = self.patch.layout_for(grid)
        topts = _transformer_options(args, kwargs)
        run = topts.get(RUN_KEY)
        if run is not None and not run.logged:
            run.logged = True
            text = format_readout(readout(layout, self.adapter.dims(args, kwargs)))
            log.info("Foveated %s: %s", self.adapter.name, text)
        if layout.levels == (0,):
            return executor(*args, **kwargs)  # all full resolution: exactly native
        packing = self.patch.packing_for(layout, patch_size)
        return self.adapter.forward(executor, args, kwargs, layout, packing)


def _transformer_options(args, kwargs) -> dict:
    if "transformer_options" in kwargs:
        return kwargs["transformer_options"]
    for a in reversed(args):
        if isinstance(a, dict):
            return a
    return {}


def make_attention_override(state: CallState, previous=None):
    """An optimized_attention override: phase-aligned attention over the packed sequence.

    `func` is the attention implementation ComfyUI selected (SDPA, sage, ...); it is
    called once per query level. Calls whose sequence is not the packed one (e.g.
    cross-attention to text) pass straight through.
    """
    def override(func, q, k, v, heads, *args, **kwargs):
        call = (lambda *a, **kw: previous(func, *a, **kw)) if previous is not None else func
        plan = state.plan
        skip_reshape = kwargs.get("skip_reshape", False)
        seq_dim = 2 if skip_reshape else 1
        if plan is None or q.shape[seq_dim] != plan.q_len or k.shape[seq_dim] != plan.seq_len:
            return call(q, k, v, heads, *args, **kwargs)
        out_seq_dim = 2 if kwargs.get("skip_output_reshape", False) else 1
        mask = kwargs.get("mask", None)

        if mask is not None and not (mask.shape[-2] in (1, plan.q_len) and mask.shape[-1] in (1, plan.seq_len)):
            raise ValueError(
                f"an attention mask of shape {tuple(mask.shape)} was made for the full-resolution sequence "
                f"(e.g. by a regional-prompting node); foveation packs the image into {plan.q_len} tokens and "
                f"cannot use it. Remove that node or the foveation."
            )

        def attend(qg, kg, vg, group):
            kw = kwargs
            if mask is not None:
                kw = dict(kwargs)
                m = mask
                if m.shape[-2] == plan.q_len:
                    m = m.index_select(-2, group.q_index().to(m.device))
                if m.shape[-1] == plan.seq_len and group.k_index is not None:
                    m = m.index_select(-1, group.k_index.to(m.device))
                kw["mask"] = m
            return call(qg, kg, vg, heads, *args, **kw)

        return phase_aligned_attention(q, k, v, plan, attend, rope=state.rope, seq_dim=seq_dim, out_seq_dim=out_seq_dim)

    return override
