"""Apply Foveation: MODEL + FOVEA -> MODEL (a keyed-wrapper patch on a clone)."""
from __future__ import annotations

from comfy_api.latest import io, ui

from ..fov_core import TokenLayout, format_readout, rasterize, readout
from .adapters import adapter_for
from .foveation import FoveationPatch
from .types import FOVEA

# The key of Apply Foveation's ui that carries the model's token size and FLOP model to the canvas
# widgets of the Fovea / Gaze Path nodes feeding it (web/fovea_widget.js reads it from the
# "executed" event).
WIDGET_MODEL_KEY = "fovea_model"


def latent_readout(adapter, fovea, latent: dict) -> str:
    samples = latent["samples"]
    grid, _ = adapter.token_grid(tuple(samples.shape))
    layout = TokenLayout(rasterize(fovea, grid))
    text = format_readout(readout(layout, adapter.prompt_dims()))
    return f"{adapter.name} {grid.height * grid.token_px}x{grid.width * grid.token_px}: {text}"


class ApplyFoveation(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ApplyFoveation",
            display_name="Apply Foveation",
            category="model_patches/foveated",
            description="Generate the fovea with full-resolution tokens and the periphery with 1/2 or 1/4 "
                        "resolution tokens in one denoising pass. Works with any sampler node. Decode the result "
                        "with Foveated Decode (plain VAE Decode shows a blocky periphery).",
            search_aliases=["foveated diffusion", "foveation", "gaze"],
            inputs=[
                io.Model.Input("model", tooltip="A FLUX.1, FLUX.2, Chroma, Qwen-Image, Z-Image, Wan 2.1 / 2.2 or "
                                                "HunyuanVideo 1.0 / 1.5 model (LoRAs applied before this node)."),
                FOVEA.Input("fovea", tooltip="Where to keep full resolution (Fovea, Fovea from Mask/Boxes/Saliency)."),
                io.Latent.Input("latent", optional=True,
                                tooltip="Optional: the latent you will sample, to show the token count and the "
                                        "FLOP-ideal speedup."),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The patched model (the input model is unchanged)."),
                io.String.Output(display_name="readout", tooltip="Tokens kept, token ratio, FLOP-ideal speedup."),
            ],
        )

    @classmethod
    def execute(cls, model, fovea, latent=None) -> io.NodeOutput:
        adapter_cls = adapter_for(model)
        patched = FoveationPatch(fovea, adapter_cls).install(model)
        adapter = adapter_cls(model)
        if latent is not None:
            text = latent_readout(adapter, fovea, latent)
        else:
            text = f"{adapter.name}: connect a latent to see the token count (it is logged at every run)"
        # ui values are lists (the executor concatenates them); the text is shown on the node
        return io.NodeOutput(patched, text,
                             ui={**ui.PreviewText(text).as_dict(), WIDGET_MODEL_KEY: [adapter.widget_model()]})
