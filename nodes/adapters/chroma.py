"""Chroma: comfy.ldm.chroma.model.Chroma (FLUX.1-schnell derived, no reference latents).

Chroma builds its ids inside _forward and offers no post_input patch, so the adapter
computes the RoPE table of the true positions itself (text 0, image (0, y, x) in the base
frame, with the model's own pe_embedder, cached on the layout) and hands it to every
block through "dit" block-replacement patches that call the original block with that pe
(chaining any replacement another node installed). The strip latent, the override and
the frame-difference tables are as for FLUX.
"""
from __future__ import annotations

import torch

import comfy.ldm.chroma.model as chroma_model

from ...fov_core import DiTDims
from ..foveation import CallState, mark_dynamic
from .base import FamilyAdapter
from .flux import FLUX_LORA_TARGETS, image_ids, install_plan, rope_difference_tables


def with_pe(pe, previous):
    def replace(args, extra):
        args = dict(args, pe=pe)
        if previous is not None:
            return previous(args, extra)
        return extra["original_block"](args)

    return replace


class ChromaAdapter(FamilyAdapter):
    name = "Chroma"
    lora_targets = FLUX_LORA_TARGETS

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        return type(diffusion_model) is chroma_model.Chroma

    def dims(self, context, kwargs):
        prm = self.diffusion_model.params
        return DiTDims(
            hidden=prm.hidden_size,
            mlp_hidden=int(prm.hidden_size * prm.mlp_ratio),
            blocks=prm.depth + prm.depth_single_blocks,
            text_tokens=int(context.shape[1]) if context is not None else 0,
        )

    def prepare(self, diffusion_model, layout, packing, x, context, transformer_options, kwargs, image_rows):
        B, n_txt, device = x.shape[0], int(context.shape[1]), x.device
        rows = layout.n_tokens if image_rows is None else image_rows
        origin, scale = (0.0, 0.0), (1.0, 1.0)
        pe_embedder = diffusion_model.pe_embedder

        def base_pe():
            ids = torch.zeros((B, n_txt + rows, 3), device=device, dtype=torch.float32)
            ids[:, n_txt : n_txt + layout.n_tokens, 1:3] = image_ids(layout, origin, scale, device)
            return mark_dynamic(pe_embedder(ids), 2)

        pe = layout.cached(("chroma_pe", n_txt, rows, B, str(device), pe_embedder.theta), base_pe)
        tables = rope_difference_tables(layout, pe_embedder, n_txt, 0, image_rows, scale, 3, B, device)
        return self.model_call(layout, packing, device, image_rows, tensors={"pe": pe, "rope_delta": tables})

    def forward(self, executor, args, kwargs, call):
        # Chroma.forward(x, timestep, context, guidance, control=None, transformer_options={}, **kw)
        topts = self.transformer_options(args, kwargs, 5)
        dm = self.running_model(executor)
        state = CallState()
        install_plan(state, call, args[2].shape[1], True)
        pe = call.tensors["pe"]
        replace = {k: dict(v) if isinstance(v, dict) else v for k, v in topts.get("patches_replace", {}).items()}
        dit = replace.setdefault("dit", {})
        for name, count in (("double_block", len(dm.double_blocks)), ("single_block", len(dm.single_blocks))):
            for i in range(count):
                dit[(name, i)] = with_pe(pe, dit.get((name, i)))
        topts["patches_replace"] = replace
        return self.run_with_override(executor, args, kwargs, 5, topts, state)
