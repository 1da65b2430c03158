"""FLUX.1 (dev, schnell, Kontext, Fill) and FLUX.2 ([klein], [dev]): comfy.ldm.flux.model.Flux.

Native path kept: Flux._forward (reference latents, timestep-zero references, txt ids),
forward_orig, the blocks and their RoPE all run unchanged. The adapter
  1. lays the packed tokens out as a strip latent (B, C, p, L*p) for _forward;
  2. adds a "post_input" patch that replaces the strip's image ids by the tokens' true
     positions in the base frame (honouring rope_options), so the model's own RoPE
     rotates q and k once per layer as it always does;
  3. sets the attention override that runs phase-aligned attention; a coarser group
     rotates q and k once more, by the frame difference (fov_core.attention).
Everything that depends only on the layout and the sequence shape (plan, id tensors,
RoPE difference tables) is built once on the device and cached on the layout.
"""
from __future__ import annotations

import torch

import comfy.ldm.flux.math as flux_math
import comfy.ldm.flux.model as flux_model

from ...fov_core import DiTDims, SequencePlan
from ..foveation import CallState
from .base import FamilyAdapter

SPATIAL_AXES = (1, 2)


def rope_options_affine(topts):
    """(origin, scale) of the spatial ids per rope_options (LongCat-style shifts)."""
    ro = topts.get("rope_options") or {}
    origin = (float(ro.get("shift_y", 0.0)), float(ro.get("shift_x", 0.0)))
    scale = (float(ro.get("scale_y", 1.0)), float(ro.get("scale_x", 1.0)))
    return origin, scale


def image_ids(layout, origin, scale, device):
    """(L, 2) spatial ids (y, x) of the packed tokens in the base frame, on `device`."""
    def build():
        pos = torch.stack((layout.y, layout.x), dim=1).to(torch.float32)
        ids = pos * torch.tensor(scale) / 2.0**layout.base_level + torch.tensor(origin)
        return ids.to(device)

    return layout.cached(("image_ids", origin, scale, str(device)), build)


def install_plan(state: CallState, pe_embedder, n_prefix: int, n_suffix: int, suffix_queries: bool,
                 origin, scale, n_axes: int, batch: int, device):
    """The call's attention plan and, per coarser group, the RoPE table of the frame
    difference (shape of the model's own pe), cached on the layout."""
    layout = state.layout
    plan = layout.cached(("plan", n_prefix, n_suffix, suffix_queries),
                         lambda: SequencePlan(layout, n_prefix, n_suffix, suffix_queries))

    def build_tables():
        full = torch.zeros((batch, plan.seq_len, n_axes), dtype=torch.float32, device=device)
        pos = torch.stack((layout.y, layout.x), dim=1).to(device, torch.float32)
        full[:, plan.image_start : plan.image_end, list(SPATIAL_AXES)] = pos * torch.tensor(scale, device=device)
        # frame_delta_ids reads (id - origin): origin cancels, so the rows carry pos * scale
        return [None if g.level == layout.base_level else pe_embedder(plan.frame_delta_ids(full, g, SPATIAL_AXES))
                for g in plan.groups]

    key = ("rope_delta", n_prefix, n_suffix, suffix_queries, scale, n_axes, batch, str(device),
           pe_embedder.theta, tuple(pe_embedder.axes_dim))
    tables = layout.cached(key, build_tables)
    state.plan = plan
    state.rotate = lambda q, k, gi: flux_math.apply_rope(q, k, tables[gi])


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
        yx = image_ids(layout, origin, scale, x.device)

        def post_input(pa):
            img_ids, txt_ids = pa["img_ids"], pa["txt_ids"]
            if img_ids is None:
                return pa
            img_ids = img_ids.clone()
            img_ids[:, :L, 1:3] = yx
            if refs and ref_method == "uxo":  # offsets derived from the strip's 1 x L grid
                img_ids[:, L:, 1] += H - 1
                img_ids[:, L:, 2] += W - L
            n_txt, n_suffix = txt_ids.shape[1], img_ids.shape[1] - L
            # a reference KV cache (core FluxKVCache) drops the reference tokens from img after
            # its first step and appends their cached keys/values inside attention
            suffix_q = pa["img"].shape[1] - L
            if suffix_q not in (0, n_suffix):
                raise ValueError(f"unexpected image sequence of {pa['img'].shape[1]} tokens for {L} packed "
                                 f"tokens and {n_suffix} reference tokens")
            install_plan(state, dm.pe_embedder, n_txt, n_suffix, suffix_q == n_suffix, origin, scale,
                         img_ids.shape[-1], img_ids.shape[0], img_ids.device)
            return dict(pa, img_ids=img_ids)

        patches = {k: list(v) if isinstance(v, list) else v for k, v in topts.get("patches", {}).items()}
        patches["post_input"] = patches.get("post_input", []) + [post_input]
        topts["patches"] = patches
        return self.run_on_strip(executor, args, kwargs, 7, topts, state, packing)
