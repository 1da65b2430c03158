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
from ..foveation import CallState
from .base import FamilyAdapter
from .flux import image_ids, install_plan


def _with_pe(pe, previous):
    def replace(args, extra):
        args = dict(args, pe=pe)
        if previous is not None:
            return previous(args, extra)
        return extra["original_block"](args)

    return replace


class ChromaAdapter(FamilyAdapter):
    name = "Chroma"

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        return type(diffusion_model) is chroma_model.Chroma

    def dims(self, args, kwargs):
        prm = self.diffusion_model.params
        context = args[2] if len(args) > 2 else kwargs.get("context")
        return DiTDims(
            hidden=prm.hidden_size,
            mlp_hidden=int(prm.hidden_size * prm.mlp_ratio),
            blocks=prm.depth + prm.depth_single_blocks,
            text_tokens=int(context.shape[1]) if context is not None else 0,
        )

    def forward(self, executor, args, kwargs, layout, packing):
        # Chroma.forward(x, timestep, context, guidance, control=None, transformer_options={}, **kw)
        x, context = args[0], args[2]
        control = args[4] if len(args) > 4 else kwargs.get("control")
        if control is not None:
            raise ValueError("Foveation does not support ControlNet on Chroma yet; remove the ControlNet or the foveation.")
        topts = self.transformer_options(args, kwargs, 5)
        dm = self.running_model(executor)
        B, n_txt = x.shape[0], context.shape[1]
        origin, scale = (0.0, 0.0), (1.0, 1.0)

        def base_pe():
            ids = torch.zeros((B, n_txt + layout.n_tokens, 3), device=x.device, dtype=torch.float32)
            ids[:, n_txt:, 1:3] = image_ids(layout, origin, scale, x.device)
            return dm.pe_embedder(ids)

        pe = layout.cached(("chroma_pe", n_txt, B, str(x.device), dm.pe_embedder.theta), base_pe)
        state = CallState(layout)
        install_plan(state, dm.pe_embedder, n_txt, 0, True, origin, scale, 3, B, x.device)

        replace = {k: dict(v) if isinstance(v, dict) else v for k, v in topts.get("patches_replace", {}).items()}
        dit = replace.setdefault("dit", {})
        for name, count in (("double_block", len(dm.double_blocks)), ("single_block", len(dm.single_blocks))):
            for i in range(count):
                dit[(name, i)] = _with_pe(pe, dit.get((name, i)))
        topts["patches_replace"] = replace
        return self.run_on_strip(executor, args, kwargs, 5, topts, state, packing)
