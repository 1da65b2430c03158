"""What every model-family adapter provides.

An adapter is chosen by the diffusion model's class. It knows how the family turns a
latent into tokens (patch size, token grid) and runs the NATIVE model on the packed
sequence through official extension points, touching only the thin outer part:
the packed tokens arrive laid out as a one-token-high latent ("strip") so the model's
own patchify produces them in order; ids and RoPE frames are corrected through the
family's extension points; the attention override does the phase-aligned attention.

prepare(...) runs outside the diffusion model (and outside torch.compile): it builds the
ModelCall with the device tensors the forward needs, cached on the layout. forward(...)
runs inside it and must only read the ModelCall (see foveation.py for why).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from ...fov_core import DiTDims, LatentPacking, TokenGrid, TokenLayout
from ..foveation import ModelCall, make_attention_override, mark_dynamic

# Text tokens of a typical prompt: what a readout without the real conditioning assumes for a
# family that carries its prompt in the joint sequence (a cross-attention family reports its own
# context length).
ASSUMED_TEXT_TOKENS = 512


class FamilyAdapter:
    name = "?"
    video = False  # generates (B, C, T, H, W) latents
    # The paper's LoRA targets in this family's module names (Train Foveated LoRA's default,
    # matched by name suffix); empty: the trainer does not support the family.
    lora_targets: tuple = ()

    def __init__(self, model_patcher):
        self.diffusion_model = model_patcher.model.diffusion_model
        fmt = model_patcher.model.latent_format
        self.vae_scale = fmt.spacial_downscale_ratio
        self.frame_stride = fmt.temporal_downscale_ratio  # video frames per latent frame after the first

    def running_model(self, executor):
        """The diffusion model this call runs (the executor's), else the one seen at install."""
        dm = getattr(executor, "class_obj", None)
        return self.diffusion_model if dm is None else dm

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        raise NotImplementedError

    @property
    def patch_size(self) -> int:
        """Latent pixels per token edge (FLUX.1 and Chroma 2, FLUX.2 1)."""
        return self.diffusion_model.patch_size

    def token_grid(self, latent_shape) -> tuple[TokenGrid, int]:
        """(grid, patch size) for a latent of this shape."""
        p = self.patch_size
        if len(latent_shape) != (5 if self.video else 4):
            kind = "videos: (batch, channels, frames, height, width)" if self.video else "images"
            raise ValueError(f"{self.name} generates {kind}; got a latent of shape {tuple(latent_shape)}")
        h, w = latent_shape[-2:]
        if h % p or w % p:
            step = p * self.vae_scale
            hint = []
            for name, v in (("width", w), ("height", h)):
                if v % p:
                    lo = v // p * step
                    hint.append(f"{name} {lo} or {lo + step} px")
            raise ValueError(
                f"The latent is {w * self.vae_scale}x{h * self.vae_scale} px; {self.name} foveation needs a "
                f"width and height in multiples of {step} px (one DiT token): use {' and '.join(hint)}."
            )
        frames = latent_shape[2] if self.video else 1
        return TokenGrid(frames, h // p, w // p, token_px=self.token_px,
                         frame_stride=self.frame_stride if self.video else 1), p

    @property
    def token_px(self) -> int:
        """Image pixels per token edge: the VAE's downscale times the patch size (Wan 2.2 5B: 16 x 2)."""
        return self.patch_size * self.vae_scale

    def dims(self, context, kwargs):
        """DiTDims of a call (context: the text conditioning, or None) for the readout."""
        return None

    def prompt_dims(self) -> Optional[DiTDims]:
        """DiTDims for a typical prompt and no references: the readout before sampling knows no
        conditioning. A family without cross-attention gets ASSUMED_TEXT_TOKENS in its joint
        sequence; a cross-attention family keeps the context length it reports."""
        dims = self.dims(None, {})
        if dims is None or dims.context_tokens:
            return dims
        return dataclasses.replace(dims, text_tokens=ASSUMED_TEXT_TOKENS)

    def widget_model(self) -> dict:
        """What the canvas widgets need to draw and count tokens as this model does (sent with Apply
        Foveation's ui): the family's name, token size, video frames per latent frame and
        prompt_dims (every DiTDims field, or None)."""
        dims = self.prompt_dims()
        return {"family": self.name, "token_px": int(self.token_px),
                "frame_stride": int(self.frame_stride) if self.video else 1,
                "dims": None if dims is None else dataclasses.asdict(dims)}

    def prepare(self, diffusion_model, layout: TokenLayout, packing: LatentPacking, x, context, transformer_options,
                kwargs, image_rows: Optional[int]) -> ModelCall:
        """image_rows: pad the strip to this many tokens (torch.compile), or None."""
        raise NotImplementedError

    def cross_attention_lengths(self, context, kwargs) -> set:
        """Key lengths of the model's cross-attention calls; the attention override tells
        them from self-attention by length, so a strip never has one of these lengths."""
        return set()

    def strip_length(self, layout: TokenLayout, image_rows: Optional[int], context, kwargs) -> Optional[int]:
        """image_rows, or one padding token more when the strip's length equals a
        cross-attention key length."""
        rows = layout.n_tokens if image_rows is None else image_rows
        while rows in self.cross_attention_lengths(context, kwargs):
            rows += 1
        return None if rows == layout.n_tokens else rows

    def model_call(self, layout: TokenLayout, packing: LatentPacking, device, image_rows: Optional[int],
                   n_suffix: int = 0, **extra) -> ModelCall:
        """The parts of a ModelCall every family has: packing indices and segment lengths."""
        index = packing.index("element_index", device)
        if image_rows is not None:  # padding elements read pixel 0; their outputs are dropped
            index = layout.cached(("padded_index", image_rows, str(device)), lambda: torch.cat(
                (index, index.new_zeros((image_rows - layout.n_tokens) * packing.patch**2))))
        return ModelCall(self, packing.patch, index, packing.index("source_index", device), layout.segments,
                         self.segment_lengths(layout, device), n_suffix, image_rows, **extra)

    def forward(self, executor, args, kwargs, call: ModelCall):
        raise NotImplementedError

    @staticmethod
    def segment_lengths(layout: TokenLayout, device):
        """Per layout segment an empty (length, 0) tensor on `device`: lengths as tensor sizes."""
        return layout.cached(("lengths", str(device)),
                             lambda: tuple(mark_dynamic(torch.empty((n, 0), device=device), 0)
                                           for n in layout.segment_lengths))

    @staticmethod
    def transformer_options(args, kwargs, index: int) -> dict:
        """A copy of the call's transformer_options (positional at `index`, or keyword)."""
        return dict(args[index] if len(args) > index else kwargs.get("transformer_options", {}))

    @staticmethod
    def run_with_override(executor, args, kwargs, index: int, topts: dict, state):
        """Run the native forward on the strip with the phase-aligned attention override
        installed in (a copy of) transformer_options."""
        topts["optimized_attention_override"] = make_attention_override(state, topts.get("optimized_attention_override"))
        args = list(args)
        if len(args) > index:
            args[index] = topts
        else:
            kwargs = dict(kwargs, transformer_options=topts)
        return executor(*args, **kwargs)
