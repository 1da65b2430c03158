"""What every model-family adapter provides.

An adapter is chosen by the diffusion model's class. It knows how the family turns a
latent into tokens (patch size, token grid) and runs the NATIVE model on the packed
sequence through official extension points, touching only the thin outer part:
the packed tokens are laid out as a one-token-high latent ("strip") so the model's
own patchify produces them in order; ids and RoPE frames are corrected through the
family's extension points; the attention override does the phase-aligned attention.
"""
from __future__ import annotations

from ...fov_core import TokenGrid
from ..foveation import CALL_KEY, make_attention_override

TOKEN_PX = 16  # image pixels per DiT token for every supported family


class FamilyAdapter:
    name = "?"

    def __init__(self, model_patcher):
        self.diffusion_model = model_patcher.model.diffusion_model
        self.vae_scale = model_patcher.model.latent_format.spacial_downscale_ratio

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
        if len(latent_shape) != 4:
            raise ValueError(
                f"{self.name} generates images; got a latent of shape {tuple(latent_shape)} "
                f"(video latents need a video model)"
            )
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
        return TokenGrid(1, h // p, w // p, token_px=p * self.vae_scale), p

    def dims(self, args, kwargs):
        return None

    def forward(self, executor, args, kwargs, layout, packing):
        raise NotImplementedError

    @staticmethod
    def transformer_options(args, kwargs, index: int) -> dict:
        """A copy of the call's transformer_options (positional at `index`, or keyword)."""
        return dict(args[index] if len(args) > index else kwargs.get("transformer_options", {}))

    @staticmethod
    def run_on_strip(executor, args, kwargs, index: int, topts: dict, state, packing):
        """Run the native forward on the packed strip with the phase-aligned attention
        override installed in (a copy of) transformer_options; unpack the prediction."""
        topts["optimized_attention_override"] = make_attention_override(state, topts.get("optimized_attention_override"))
        topts[CALL_KEY] = state
        args = list(args)
        if len(args) > index:
            args[index] = topts
        else:
            kwargs = dict(kwargs, transformer_options=topts)
        args[0] = packing.pack_strip(args[0])
        return packing.unpack_strip(executor(*args, **kwargs))
