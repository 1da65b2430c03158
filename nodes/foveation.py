"""The MODEL patch: keyed wrappers on a clone of the ModelPatcher.

OUTER_SAMPLE   once per sampling run: initial noise follows the canvas rule (i.i.d.
               representatives, replicated groups), whoever drew it; the result is
               canonicalized; one log line with the token readout.
PREPARE_SAMPLING the memory estimate ComfyUI loads the model by counts the packed
               tokens, not the full grid, so low-VRAM machines do not offload needlessly.
DIFFUSION_MODEL every forward: the family adapter runs the native model on the packed
               sequence (see adapters/).
All per-run state lives in transformer_options copies; the model object itself is never
touched, so an interrupted or failed run leaves nothing behind.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

import comfy.patcher_extension as pe

from ..fov_core import Fovea, LatentPacking, LayoutCache, SequencePlan, TokenGrid, TokenLayout, format_readout
from ..fov_core import group_keys, phase_aligned_attention, readout

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
    rotate: Optional[Callable] = None  # (q, k, group index) -> q, k in that group's RoPE frame


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
        wrappers = {pe.WrappersMP.OUTER_SAMPLE: _OuterSample(self, adapter),
                    pe.WrappersMP.PREPARE_SAMPLING: _PrepareSampling(self, adapter),
                    pe.WrappersMP.DIFFUSION_MODEL: _DiffusionModel(self, adapter)}
        for kind, wrapper in wrappers.items():
            m.remove_wrappers_with_key(kind, WRAPPER_KEY)  # a later Apply Foveation replaces an earlier one
            m.add_wrapper_with_key(kind, WRAPPER_KEY, wrapper)
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


class _PrepareSampling:
    """Scale the latent shape ComfyUI estimates memory from to the packed token count
    (the estimate is proportional to the latent's area; the pattern of core context windows)."""

    def __init__(self, patch: FoveationPatch, adapter):
        self.patch, self.adapter = patch, adapter

    def __call__(self, executor, model, noise_shape, conds, *args, **kwargs):
        grid, _ = self.adapter.token_grid(tuple(noise_shape))
        layout = self.patch.layout_for(grid)
        shape = list(noise_shape)
        shape[-1] = max(1, math.ceil(shape[-1] * layout.token_ratio))
        return executor(model, shape, conds, *args, **kwargs)


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

    `func` is the attention implementation ComfyUI selected (SDPA, sage, ...); it runs on
    each contiguous run of queries, returning (B, heads, n, D) pieces that are joined once.
    Calls whose sequence is not the packed one (e.g. cross-attention to text) and layouts
    with a single level pass straight through.
    """
    def override(func, q, k, v, heads, *args, **kwargs):
        call = (lambda *a, **kw: previous(func, *a, **kw)) if previous is not None else func
        plan = state.plan
        skip_reshape = kwargs.get("skip_reshape", False)
        seq_dim = 2 if skip_reshape else 1
        if (plan is None or len(plan.groups) == 1 or q.shape[seq_dim] != plan.q_len
                or k.shape[seq_dim] != plan.seq_len):
            return call(q, k, v, heads, *args, **kwargs)
        mask = kwargs.get("mask", None)
        if mask is not None and not (mask.shape[-2] in (1, plan.q_len) and mask.shape[-1] in (1, plan.seq_len)):
            raise ValueError(
                f"an attention mask of shape {tuple(mask.shape)} was made for the full-resolution sequence "
                f"(e.g. by a regional-prompting node); foveation packs the image into {plan.q_len} tokens and "
                f"cannot use it. Remove that node or the foveation."
            )
        if not skip_reshape:  # (B, N, heads * D) -> (B, heads, N, D) views
            q, k, v = (t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
        kw = dict(kwargs, skip_reshape=True, skip_output_reshape=True)

        def attend(qg, kg, vg, group, q_range):
            if mask is not None:
                m = mask
                if m.shape[-2] == plan.q_len:
                    m = m[..., q_range[0] : q_range[1], :]
                if m.shape[-1] == plan.seq_len:
                    m = group_keys(m, plan, group, dim=-1)
                return call(qg, kg, vg, heads, *args, **dict(kw, mask=m))
            return call(qg, kg, vg, heads, *args, **kw)

        out = phase_aligned_attention(q, k, v, plan, attend, state.rotate)
        if kwargs.get("skip_output_reshape", False):
            return out
        return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)

    return override
