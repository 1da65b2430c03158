"""Wan 2.1 and 2.2 (T2V, I2V, FLF2V, TI2V 5B, the 14B experts): comfy.ldm.wan.model.WanModel.

Native path kept: WanModel._forward, forward_orig and every block run unchanged on the
video strip latent (B, C, 1, 2, 2L) the DIFFUSION_MODEL wrapper packed. Wan builds its
RoPE from the latent's shape inside _forward and offers no post_input patch, so the
adapter
  1. computes the RoPE table of the tokens' true (frame, y, x) positions in the base
     frame with the model's own rope_embedder (cached on the layout) and hands it to
     every block through "dit" block-replacement patches (chaining any other
     replacement); the frame axis is never scaled, only y and x;
  2. gives per-latent-frame timesteps (Wan 2.2 5B image conditioning: denoise_mask) to
     every token of that frame, since the packed order is not frame-major;
  3. sets the attention override: self-attention is phase aligned, rotating coarser
     groups by the frame difference; cross-attention to the text and CLIP tokens passes
     through (told apart by key length: a strip never has one of those lengths).
Image conditioning (I2V/FLF2V concatenated mask and image latent: their group means, see
foveation.py; CLIP-vision tokens) and the text are never foveated. VACE, reference and
in-context latents and time-concatenated latents are refused with a clear error.
"""
from __future__ import annotations

import torch

import comfy.ldm.flux.math as flux_math
import comfy.ldm.wan.model as wan_model

from ...fov_core import DiTDims, SequencePlan
from ..foveation import CallState, mark_dynamic
from .base import FamilyAdapter
from .chroma import with_pe

SPATIAL_AXES = (1, 2)
UNSUPPORTED_INPUTS = {
    "reference_latent": "reference latents (Wan Fun / SCAIL reference images)",
    "context_latents": "in-context reference latents",
    "time_dim_concat": "latents concatenated in time",
}


def wan_rope_affine(topts):
    """Per axis (t, y, x): (shift, scale) of the ids per rope_options."""
    ro = topts.get("rope_options") or {}
    return tuple((float(ro.get(f"shift_{a}", 0.0)), float(ro.get(f"scale_{a}", 1.0))) for a in "tyx")


class WanAdapter(FamilyAdapter):
    name = "Wan"
    video = True
    # The paper's video LoRA targets (Wan 2.1's own names): q, k, v, o of the self- and
    # cross-attention of every block, and the MLP's two linears.
    lora_targets = ("q", "k", "v", "o", "ffn.0", "ffn.2")

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        return type(diffusion_model) is wan_model.WanModel

    def __init__(self, model_patcher):
        super().__init__(model_patcher)
        self.name = "Wan 2.2 5B" if self.diffusion_model.out_dim == 48 else "Wan"

    @property
    def patch_size(self) -> int:
        return self.diffusion_model.patch_size[-1]  # (1, 2, 2): one latent frame, 2 x 2 pixels

    def dims(self, context, kwargs):
        dm = self.diffusion_model
        n_ctx = sorted(self.cross_attention_lengths(context, kwargs))
        return DiTDims(hidden=dm.dim, mlp_hidden=dm.ffn_dim, blocks=len(dm.blocks),
                       context_tokens=sum(n_ctx) if n_ctx else dm.text_len)

    def cross_attention_lengths(self, context, kwargs) -> set:
        lengths = {int(context.shape[1])} if context is not None else set()
        clip = kwargs.get("clip_fea")
        if clip is not None:
            lengths.add(int(clip.shape[-2]))
        return lengths

    def prepare(self, diffusion_model, layout, packing, x, context, transformer_options, kwargs, image_rows):
        for key, what in UNSUPPORTED_INPUTS.items():
            if kwargs.get(key) is not None:
                raise ValueError(f"Foveation does not support {what} on Wan yet; remove that input or the foveation.")
        rows = self.strip_length(layout, image_rows, context, kwargs)
        n = layout.n_tokens if rows is None else rows
        device = x.device
        (t0, ts), (y0, ys), (x0, xs) = wan_rope_affine(transformer_options)
        embed = diffusion_model.rope_embedder
        key = (n, (t0, ts, y0, ys, x0, xs), str(device), embed.theta, tuple(embed.axes_dim))

        def full_ids(base_frame: bool):
            ids = torch.zeros((1, n, 3), dtype=torch.float32)
            b = 2.0 ** layout.base_level if base_frame else 1.0
            ids[0, : layout.n_tokens] = torch.stack(
                (layout.t * ts + (t0 if base_frame else 0.0), layout.y * ys / b + (y0 if base_frame else 0.0),
                 layout.x * xs / b + (x0 if base_frame else 0.0)), dim=1).float()
            return ids.to(device)

        def tables():
            plan = SequencePlan.of(layout, image_rows=rows)
            freqs = embed(full_ids(True)).movedim(1, 2)  # Wan's layout: (1, N, 1, D/2, 2, 2)
            deltas = tuple(None if g.level == plan.base_level
                           else mark_dynamic(embed(plan.frame_delta_ids(full_ids(False), g, SPATIAL_AXES))
                                             .movedim(1, 2), 1)
                           for g in plan.groups)
            frame = torch.zeros(n, dtype=torch.long)
            frame[: layout.n_tokens] = layout.t
            return mark_dynamic(freqs, 1), deltas, mark_dynamic(frame.to(device), 0)

        freqs, deltas, frame = layout.cached(("wan_rope",) + key, tables)
        return self.model_call(layout, packing, device, rows,
                               tensors={"freqs": freqs, "rope_delta": deltas, "token_frame": frame})

    def forward(self, executor, args, kwargs, call):
        # WanModel.forward(x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={}, **kw)
        topts = self.transformer_options(args, kwargs, 5)
        dm = self.running_model(executor)
        args = list(args)
        timestep = args[1]
        if timestep.ndim == 2 and timestep.shape[1] > 1:  # one per latent frame -> one per token
            args[1] = timestep[:, call.tensors["token_frame"]]
        deltas = call.tensors["rope_delta"]

        def rotate(q, k, gi):  # q, k: (B, heads, N, D) views of Wan's (B, N, heads, D)
            q, k = flux_math.apply_rope(q.transpose(1, 2), k.transpose(1, 2), deltas[gi])
            return q.transpose(1, 2), k.transpose(1, 2)

        state = CallState(call.plan(0), rotate)
        freqs = call.tensors["freqs"]
        replace = {k: dict(v) if isinstance(v, dict) else v for k, v in topts.get("patches_replace", {}).items()}
        dit = replace.setdefault("dit", {})
        for i in range(len(dm.blocks)):
            dit[("double_block", i)] = with_pe(freqs, dit.get(("double_block", i)))
        topts["patches_replace"] = replace
        return self.run_with_override(executor, args, kwargs, 5, topts, state)
