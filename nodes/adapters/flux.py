"""FLUX.1 (dev, schnell, Kontext, Fill) and FLUX.2 ([klein], [dev]): comfy.ldm.flux.model.Flux.

Native path kept: Flux._forward (reference latents, timestep-zero references, txt ids),
forward_orig and every block run unchanged. The adapter
  1. lays the packed tokens out as a strip latent (B, C, p, L*p) for _forward;
  2. adds a "post_input" patch that records the native text/reference ids, replaces the
     strip's image ids by the true full-resolution positions (honouring rope_options),
     builds one RoPE table per attention group with the model's own pe_embedder, and
     returns img_ids=None so the blocks skip their single-frame RoPE;
  3. sets the attention override that runs phase-aligned attention with those tables.
"""
from __future__ import annotations

import torch

import comfy.ldm.flux.math as flux_math
import comfy.ldm.flux.model as flux_model

from ...fov_core import DiTDims, SequencePlan
from ..foveation import CallState
from .base import FamilyAdapter

SPATIAL_AXES = (1, 2)


def rope_for_tables(tables):
    def rope(x, gi, which):
        # query slices are views into the joint sequence; the fused CUDA RoPE kernels expect
        # dense tensors, as the native path gives them (a no-op when already contiguous)
        return flux_math.apply_rope1(x.contiguous(), tables[gi][0 if which == "q" else 1])

    return rope


def rope_options_affine(topts):
    """(origin, scale) of the spatial ids per rope_options (LongCat-style shifts)."""
    ro = topts.get("rope_options") or {}
    origin = (float(ro.get("shift_y", 0.0)), float(ro.get("shift_x", 0.0)))
    scale = (float(ro.get("scale_y", 1.0)), float(ro.get("scale_x", 1.0)))
    return origin, scale


def build_plan_and_rope(state: CallState, pe_embedder, ids: torch.Tensor, n_prefix: int, n_suffix: int, origin,
                        suffix_queries: bool = True):
    """Attention plan and per-group RoPE tables for this call, cached on the layout: the
    tables are rebuilt only when the sequence's ids change (new text length or refs)."""
    layout = state.layout
    plan = layout.cached(("plan", n_prefix, n_suffix, suffix_queries),
                         lambda: SequencePlan(layout, n_prefix, n_suffix, suffix_queries))
    plan = plan.to(ids.device)
    key = ("rope", n_prefix, n_suffix, suffix_queries, tuple(origin), tuple(ids.shape), str(ids.device),
           pe_embedder.theta, tuple(pe_embedder.axes_dim))
    entry = layout._cache.get(key)
    if entry is None or not torch.equal(entry[0], ids):
        tables = [(pe_embedder(q_ids), pe_embedder(k_ids))
                  for q_ids, k_ids in plan.frame_ids(ids, SPATIAL_AXES, origin=origin)]
        entry = (ids.clone(), tables)
        layout._cache[key] = entry
    state.plan = plan
    state.ids, state.origin = ids, origin
    state.rope = rope_for_tables(entry[1])


class FluxAdapter(FamilyAdapter):
    name = "FLUX"

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        return type(diffusion_model) is flux_model.Flux

    def __init__(self, model_patcher):
        super().__init__(model_patcher)
        self.name = "FLUX.2" if self.diffusion_model.params.global_modulation else "FLUX.1"

    def dims(self, args, kwargs):
        prm = self.diffusion_model.params
        context = args[2] if len(args) > 2 else kwargs.get("context")
        refs = args[5] if len(args) > 5 else kwargs.get("ref_latents")
        p = self.patch_size
        n_ref = sum((r.shape[-2] // p) * (r.shape[-1] // p) for r in refs) if refs else 0
        return DiTDims(
            hidden=prm.hidden_size,
            mlp_hidden=int(prm.hidden_size * prm.mlp_ratio),
            blocks=prm.depth + prm.depth_single_blocks,
            text_tokens=int(context.shape[1]) if context is not None else 0,
            gated_mlp=bool(prm.mlp_silu_act or prm.yak_mlp),
            extra_tokens=n_ref,
        )

    def forward(self, executor, args, kwargs, layout, packing):
        # Flux.forward(x, timestep, context, y, guidance, ref_latents, control, transformer_options, **kw)
        x = args[0]
        control = args[6] if len(args) > 6 else kwargs.get("control")
        if control is not None:
            raise ValueError("Foveation does not support ControlNet on FLUX yet; remove the ControlNet or the foveation.")
        topts = self.transformer_options(args, kwargs, 7)
        refs = args[5] if len(args) > 5 else kwargs.get("ref_latents")
        dm = self.running_model(executor)
        ref_method = kwargs.get("ref_latents_method", dm.params.default_ref_method)
        H, W = layout.shape[1:]
        L = layout.n_tokens

        state = CallState(layout)
        origin, scale = rope_options_affine(topts)
        t_y = layout.y.to(x.device, torch.float32) * scale[0] + origin[0]
        t_x = layout.x.to(x.device, torch.float32) * scale[1] + origin[1]

        def post_input(pa):
            img_ids, txt_ids = pa["img_ids"], pa["txt_ids"]
            if img_ids is None:
                return pa
            n_txt = txt_ids.shape[1]
            ids = torch.cat((txt_ids, img_ids), dim=1).clone()
            img = ids[:, n_txt : n_txt + L]
            img[..., 1] = t_y
            img[..., 2] = t_x
            if refs and ref_method == "uxo":  # offsets derived from the strip's 1 x L grid
                ids[:, n_txt + L :, 1] += H - 1
                ids[:, n_txt + L :, 2] += W - L
            n_suffix = ids.shape[1] - n_txt - L
            # a reference KV cache (core FluxKVCache) drops the reference tokens from img after
            # its first step and appends their cached keys/values inside attention
            suffix_q = pa["img"].shape[1] - L
            if suffix_q not in (0, n_suffix):
                raise ValueError(f"unexpected image sequence of {pa['img'].shape[1]} tokens for {L} packed "
                                 f"tokens and {n_suffix} reference tokens")
            build_plan_and_rope(state, dm.pe_embedder, ids, n_txt, n_suffix, origin, suffix_q == n_suffix)
            out = dict(pa)
            out["img_ids"] = None  # the blocks skip their own RoPE; the override applies ours
            return out

        patches = {k: list(v) if isinstance(v, list) else v for k, v in topts.get("patches", {}).items()}
        patches["post_input"] = patches.get("post_input", []) + [post_input]
        topts["patches"] = patches
        return self.run_on_strip(executor, args, kwargs, 7, topts, state, packing)
