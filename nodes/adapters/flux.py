"""FLUX.1 (dev, schnell, Kontext, Fill) and FLUX.2 ([klein], [dev]): comfy.ldm.flux.model.Flux.

Native path kept: Flux._forward (reference latents, timestep-zero references, txt ids),
forward_orig, the blocks and their RoPE all run unchanged on the strip latent
(B, C, p, L*p) the APPLY_MODEL wrapper packed. The adapter
  1. adds a "post_input" patch that replaces the strip's image ids by the tokens' true
     positions in the base frame (honouring rope_options), so the model's own RoPE
     rotates q and k once per layer as it always does;
  2. sets the attention override that runs phase-aligned attention; a coarser group
     rotates q and k once more, by the frame difference (fov_core.attention).
What depends only on the layout and the sequence shape (image ids, RoPE difference
tables) is built by prepare() once on the device and cached on the layout.
"""
from __future__ import annotations

import torch

import comfy.ldm.flux.math as flux_math
import comfy.ldm.flux.model as flux_model

from ...fov_core import DiTDims, SequencePlan
from ..foveation import CallState, ModelCall, mark_dynamic
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
        return mark_dynamic(ids.to(device), 0)

    return layout.cached(("image_ids", origin, scale, str(device)), build)


def rope_difference_tables(layout, pe_embedder, n_prefix: int, n_suffix: int, image_rows, scale, n_axes: int,
                           batch: int, device):
    """Per attention group, the RoPE table (the model's own pe layout) that turns the base
    frame into the group's frame; None for the base group. Cached on the layout."""
    def build():
        plan = SequencePlan.of(layout, n_prefix, n_suffix, image_rows=image_rows)
        full = torch.zeros((batch, plan.seq_len, n_axes), dtype=torch.float32, device=device)
        pos = torch.stack((layout.y, layout.x), dim=1).to(device, torch.float32)
        full[:, plan.image_start : plan.image_end, list(SPATIAL_AXES)] = pos * torch.tensor(scale, device=device)
        # frame_delta_ids reads (id - origin): origin cancels, so the rows carry pos * scale
        return tuple(None if g.level == plan.base_level
                     else mark_dynamic(pe_embedder(plan.frame_delta_ids(full, g, SPATIAL_AXES)), 2)
                     for g in plan.groups)

    key = ("rope_delta", n_prefix, n_suffix, image_rows, scale, n_axes, batch, str(device), pe_embedder.theta,
           tuple(pe_embedder.axes_dim))
    return layout.cached(key, build)


def install_plan(state: CallState, call: ModelCall, n_prefix, suffix_queries: bool):
    """The call's attention plan and the rotation of each coarser group into its frame."""
    tables = call.tensors["rope_delta"]
    state.plan = call.plan(n_prefix, suffix_queries)
    state.rotate = lambda q, k, gi: flux_math.apply_rope(q, k, tables[gi])


# The paper's image LoRA targets (diffusers FLUX.2 names) in ComfyUI's FLUX module names:
# to_q/k/v -> img_attn.qkv (fused), to_out.0 -> img_attn.proj, add_q/k/v_proj -> txt_attn.qkv,
# to_add_out -> txt_attn.proj, ff.linear_in/out -> img_mlp.0/2, ff_context.linear_in/out ->
# txt_mlp.0/2, to_qkv_mlp_proj -> single_blocks.N.linear1. The same names exist in FLUX.1,
# FLUX.2 and Chroma. (The paper's "to_out.0" misses the single blocks' output, linear2.)
FLUX_LORA_TARGETS = ("img_attn.qkv", "img_attn.proj", "txt_attn.qkv", "txt_attn.proj", "img_mlp.0", "img_mlp.2",
                     "txt_mlp.0", "txt_mlp.2", "linear1")


class FluxAdapter(FamilyAdapter):
    name = "FLUX"
    lora_targets = FLUX_LORA_TARGETS

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        return type(diffusion_model) is flux_model.Flux

    def __init__(self, model_patcher):
        super().__init__(model_patcher)
        self.name = "FLUX.2" if self.diffusion_model.params.global_modulation else "FLUX.1"

    def n_reference_tokens(self, kwargs) -> int:
        p = self.patch_size
        return sum((r.shape[-2] // p) * (r.shape[-1] // p) for r in kwargs.get("ref_latents") or ())

    def dims(self, context, kwargs):
        prm = self.diffusion_model.params
        return DiTDims(
            hidden=prm.hidden_size,
            mlp_hidden=int(prm.hidden_size * prm.mlp_ratio),
            blocks=prm.depth + prm.depth_single_blocks,
            text_tokens=int(context.shape[1]) if context is not None else 0,
            gated_mlp=bool(prm.mlp_silu_act or prm.yak_mlp),
            extra_tokens=self.n_reference_tokens(kwargs),
        )

    def prepare(self, diffusion_model, layout, packing, x, context, transformer_options, kwargs, image_rows):
        origin, scale = rope_options_affine(transformer_options)
        n_txt, n_ref = int(context.shape[1]), self.n_reference_tokens(kwargs)
        pe = diffusion_model.pe_embedder
        tables = rope_difference_tables(layout, pe, n_txt, n_ref, image_rows, scale, len(pe.axes_dim), x.shape[0],
                                        x.device)
        return self.model_call(layout, packing, x.device, image_rows, n_ref, values={"grid": layout.shape[1:]},
                               tensors={"image_ids": image_ids(layout, origin, scale, x.device), "rope_delta": tables})

    def forward(self, executor, args, kwargs, call):
        # Flux.forward(x, timestep, context, y, guidance, ref_latents, control, transformer_options, **kw)
        topts = self.transformer_options(args, kwargs, 7)
        refs = args[5] if len(args) > 5 else kwargs.get("ref_latents")
        dm = self.running_model(executor)
        ref_method = kwargs.get("ref_latents_method", dm.params.default_ref_method)
        H, W = call.values["grid"]
        yx = call.tensors["image_ids"]
        state = CallState()

        def post_input(pa):
            img_ids, txt_ids = pa["img_ids"], pa["txt_ids"]
            if img_ids is None:
                return pa
            L = yx.shape[0]  # packed tokens; the strip may be padded past them (torch.compile)
            S = img_ids.shape[1] - call.n_suffix  # strip tokens
            img_ids = img_ids.clone()
            img_ids[:, :L, 1:3] = yx
            if refs and ref_method == "uxo":  # offsets derived from the strip's 1 x S grid
                img_ids[:, S:, 1] += H - 1
                img_ids[:, S:, 2] += W - S
            # a reference KV cache (core FluxKVCache) drops the reference tokens from img after
            # its first step and appends their cached keys/values inside attention
            suffix_q = pa["img"].shape[1] - S
            if suffix_q != 0 and suffix_q != call.n_suffix:
                raise ValueError(f"unexpected image sequence of {pa['img'].shape[1]} tokens for {S} strip "
                                 f"tokens and {call.n_suffix} reference tokens")
            install_plan(state, call, txt_ids.shape[1], suffix_q == call.n_suffix)
            return dict(pa, img_ids=img_ids)

        patches = {k: list(v) if isinstance(v, list) else v for k, v in topts.get("patches", {}).items()}
        patches["post_input"] = patches.get("post_input", []) + [post_input]
        topts["patches"] = patches
        return self.run_with_override(executor, args, kwargs, 7, topts, state)
