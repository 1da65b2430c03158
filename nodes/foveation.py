"""The MODEL patch: keyed wrappers on a clone of the ModelPatcher.

OUTER_SAMPLE     once per sampling run, before any step: refuses ControlNets; initial
                 noise follows the canvas rule (i.i.d. representatives, replicated
                 groups), whoever drew it; the result is canonicalized, and what an
                 inpainting mask keeps comes back from the input latent bit for bit.
PREPARE_SAMPLING the memory estimate ComfyUI loads the model by counts the packed
                 tokens, not the full grid, so low-VRAM machines do not offload needlessly.
APPLY_MODEL      every model call, outside the diffusion model: prepares the call
                 (`ModelCall`: device tensors cached per layout and sequence shape) and hands
                 it to the diffusion model as the keyword argument `foveation`; one log line
                 per run.
DIFFUSION_MODEL  inside the diffusion model: with a `foveation` argument, packs the canvas
                 into the strip of tokens, lets the family adapter run the native model on it
                 (see adapters/) and writes the prediction back onto the canvas; without one
                 it does nothing.
Why a keyword argument: TorchCompileModel compiles the diffusion model with guards on
everything but transformer_options, so what the compiled code depends on must arrive as
an argument. A native and a foveated call then never share a compiled graph, and every
length of the layout is the size of a tensor the compiled graph takes as dynamic. Only
the strip's length cannot be dynamic (Flux.process_img builds ids with torch.linspace,
which torch.compile specializes to every length), so under torch.compile the strip is
padded to the next of COMPILE_BUCKETS fixed lengths: moving the gaze reuses the graph of
its bucket (padding rows are computed and dropped; on average 1/64 of the full tokens).
All per-run state lives in transformer_options copies; the model object itself is never
touched, so an interrupted or failed run leaves nothing behind.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

import comfy.patcher_extension as pe

from ..fov_core import Fovea, LatentPacking, LayoutCache, SequencePlan, TokenGrid, TokenLayout, format_readout
from ..fov_core import group_keys, pack_strip, phase_aligned_attention, readout, unpack_strip

WRAPPER_KEY = "foveated_diffusion"
RUN_KEY = "foveated_run"
FOVEATION_KWARG = "foveation"
COMPILE_BUCKETS = 32  # under torch.compile, packed lengths are padded to multiples of full / 32 (>= 64)
log = logging.getLogger("foveated")


@dataclass
class RunState:
    """One sampling run (created by the OUTER_SAMPLE wrapper)."""

    logged: bool = False
    stage: int = -1  # progressive resolution: the stage the sampler is in (-1: the last)


@dataclass
class ModelCall:
    """What a foveated forward needs, built outside the diffusion model from the layout and
    the sequence shape. Lengths are tensor sizes (`lengths[i]` is an empty (n_i, 0) tensor
    for layout segment i; the strip's length is the size of `element_index`), so under
    torch.compile they are symbolic."""

    adapter: object
    patch: int  # latent pixels per token edge
    element_index: torch.Tensor  # canvas pixel read by each strip element (LatentPacking)
    source_index: torch.Tensor  # strip element each canvas pixel copies
    segments: tuple  # ((lattice class, level), ...) of the packed order
    lengths: tuple  # per segment, a (length, 0) tensor
    n_suffix: int  # never-foveated tokens after the image (reference latents)
    image_rows: Optional[int]  # the strip's length when padded (torch.compile), else None
    tensors: dict = field(default_factory=dict)  # the family's device tensors (ids, RoPE tables)
    values: dict = field(default_factory=dict)  # the family's plain settings

    def plan(self, n_prefix: int, suffix_queries: bool = True) -> SequencePlan:
        return SequencePlan(self.segments, [t.shape[0] for t in self.lengths], n_prefix, self.n_suffix,
                            suffix_queries, self.image_rows)


def control_error(family: str) -> str:
    return (f"Foveation does not support ControlNet on {family} yet: its residuals are made for the full-resolution "
            f"tokens. Remove the ControlNet (Apply ControlNet) or the foveation (Apply Foveation).")


def compiled(transformer_options) -> bool:
    """Whether the diffusion model runs under core's torch.compile wrapper (TorchCompileModel)."""
    from comfy_api.torch_helpers.torch_compile import COMPILE_KEY

    return COMPILE_KEY in transformer_options.get("wrappers", {}).get(pe.WrappersMP.APPLY_MODEL, {})


def strip_rows(layout: TokenLayout, padded: bool) -> Optional[int]:
    """The strip's length under torch.compile: the packed length padded to its bucket."""
    if not padded:
        return None
    bucket = max(64, -(-layout.full_tokens // COMPILE_BUCKETS))
    return -(-layout.n_tokens // bucket) * bucket


@dataclass
class CallState:
    """One model forward: what the attention override needs (filled in by the adapter)."""

    plan: Optional[SequencePlan] = None
    rotate: Optional[Callable] = None  # (q, k, group index) -> q, k in that group's RoPE frame


def mark_dynamic(t: torch.Tensor, *dims) -> torch.Tensor:
    """Let torch.compile treat these sizes as symbolic from the first compile (no effect in
    eager mode)."""
    for d in dims:
        torch._dynamo.maybe_mark_dynamic(t, d)
    return t


class FoveationPatch:
    """The MODEL patch of a fovea. Subclasses (progressive.py) change the layout between
    stages of one sampling run; `stage` -1 is the last stage."""

    def __init__(self, fovea: Fovea, adapter_cls):
        self.fovea = fovea
        self.adapter_cls = adapter_cls
        self.layouts = LayoutCache()

    # ------------------------------------------------------------------ layouts
    def layout_for(self, grid: TokenGrid, stage: int = -1) -> TokenLayout:
        return self.layouts.get(self.fovea, grid)

    def packing_for(self, layout: TokenLayout, patch: int) -> LatentPacking:
        return layout.cached(("packing", patch), lambda: LatentPacking(layout, patch))

    def start(self, noise: torch.Tensor, packing: LatentPacking) -> torch.Tensor:
        """The sampler's initial noise: i.i.d. representatives, replicated over groups."""
        return packing.canonicalize(noise)

    # ------------------------------------------------------------------ install
    def wrappers(self, adapter) -> dict:
        return {pe.WrappersMP.OUTER_SAMPLE: _OuterSample(self, adapter),
                pe.WrappersMP.PREPARE_SAMPLING: _PrepareSampling(self, adapter),
                pe.WrappersMP.APPLY_MODEL: _ApplyModel(self, adapter),
                pe.WrappersMP.DIFFUSION_MODEL: diffusion_model_wrapper}

    def install(self, model_patcher):
        adapter = self.adapter_cls(model_patcher)
        m = model_patcher.clone()
        for kind in WRAPPER_KINDS:  # a later Apply Foveation / Progressive Resolution replaces an earlier one
            m.remove_wrappers_with_key(kind, WRAPPER_KEY)
        for kind, wrapper in self.wrappers(adapter).items():
            m.add_wrapper_with_key(kind, WRAPPER_KEY, wrapper)
        return m


WRAPPER_KINDS = (pe.WrappersMP.OUTER_SAMPLE, pe.WrappersMP.PREPARE_SAMPLING, pe.WrappersMP.SAMPLER_SAMPLE,
                 pe.WrappersMP.APPLY_MODEL, pe.WrappersMP.DIFFUSION_MODEL)


class _OuterSample:
    def __init__(self, patch: FoveationPatch, adapter):
        self.patch, self.adapter = patch, adapter

    def __call__(self, executor, noise, latent_image, *args, **kwargs):
        # CFGGuider.outer_sample(noise, latent_image, sampler, sigmas, denoise_mask=None, ...)
        if getattr(noise, "is_nested", False) or getattr(latent_image, "is_nested", False):
            raise ValueError("Foveation does not support multi-latent (nested) sampling such as audio+video models.")
        guider = executor.class_obj
        if any(c.get("control") is not None for conds in guider.conds.values() for c in conds):
            raise ValueError(control_error(self.adapter.name))
        grid, p = self.adapter.token_grid(tuple(noise.shape))
        noise = self.patch.start(noise, self.patch.packing_for(self.patch.layout_for(grid, 0), p))
        guider.model_options.setdefault("transformer_options", {})[RUN_KEY] = RunState()
        out = executor(noise, latent_image, *args, **kwargs)
        out = self.patch.packing_for(self.patch.layout_for(grid), p).canonicalize(out)
        mask = args[2] if len(args) > 2 else kwargs.get("denoise_mask")
        if mask is not None:  # ComfyUI's own inpainting rule (KSamplerX0Inpaint), after canonicalizing
            mask = mask.to(out)
            out = out * mask + latent_image.to(out) * (1.0 - mask)
        return out


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


class _ApplyModel:
    """BaseModel.apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **kw)."""

    def __init__(self, patch: FoveationPatch, adapter):
        self.patch, self.adapter = patch, adapter

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},
                 **kwargs):
        grid, patch_size = self.adapter.token_grid(tuple(x.shape))
        run = transformer_options.get(RUN_KEY)
        layout = self.patch.layout_for(grid, run.stage if run is not None else -1)
        if run is not None and not run.logged:
            run.logged = True
            text = format_readout(readout(layout, self.adapter.dims(c_crossattn, kwargs)))
            log.info("Foveated %s: %s", self.adapter.name, text)
        if layout.levels == (0,):  # all full resolution: exactly native
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        if control is not None:  # (sampling refuses them first; this guards direct calls)
            raise ValueError(control_error(self.adapter.name))
        packing = self.patch.packing_for(layout, patch_size)
        call = self.adapter.prepare(executor.class_obj.diffusion_model, layout, packing, x, c_crossattn,
                                    transformer_options, kwargs, strip_rows(layout, compiled(transformer_options)))
        if c_concat is not None:  # e.g. FLUX.1 Fill's mask and image channels: their low-resolution values
            c_concat = packing.group_means(c_concat.to(x.device))
        return executor(x, t, c_concat, c_crossattn, control, transformer_options, **{**kwargs, FOVEATION_KWARG: call})


def diffusion_model_wrapper(executor, *args, **kwargs):
    """DIFFUSION_MODEL wrapper: with a ModelCall, the family adapter runs the model on the
    packed strip; the prediction is written back onto the canvas."""
    call = kwargs.pop(FOVEATION_KWARG, None)
    if call is None:
        return executor(*args, **kwargs)
    x = args[0]
    strip = pack_strip(x, call.element_index, call.patch)
    out = call.adapter.forward(executor, (strip,) + tuple(args[1:]), kwargs, call)
    return unpack_strip(out, call.source_index, (x.shape[0], out.shape[1]) + tuple(x.shape[2:]))


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
