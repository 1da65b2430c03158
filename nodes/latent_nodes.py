"""Foveated Decode and Foveated Encode: VAE work on the foveated latent ("canvas")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import comfy.utils
from comfy_api.latest import io, ui

from ..fov_core import LatentPacking, LayoutCache, SplitDecoder, TokenGrid, TokenLayout, downsample_image, merge_levels
from .types import FOVEA

TOKEN_PX = 16
PREVIEW_PX = 512  # long side of the preview the node shows (and the Fovea canvas draws behind the gaze)
_layouts = LayoutCache(size=8)  # decoders, packings and blend weights live on these layouts


def layout_for_latent(fovea, samples: torch.Tensor, vae) -> tuple[TokenLayout, LatentPacking]:
    if getattr(samples, "is_nested", False):
        raise ValueError("Foveated Decode/Encode does not support nested (multi-part) latents")
    ds = vae.spacial_compression_decode()
    if not isinstance(ds, int) or TOKEN_PX % ds:
        raise ValueError(f"this VAE compresses by {ds}; foveation needs a VAE of an image DiT with 16 px tokens "
                         f"(FLUX.1, FLUX.2, Chroma)")
    p = TOKEN_PX // ds
    if samples.ndim != 4:
        raise ValueError(f"expected an image latent (batch, channels, height, width), got shape {tuple(samples.shape)}")
    h, w = samples.shape[-2:]
    if h % p or w % p:
        raise ValueError(f"latent {h}x{w} is not a whole number of 16 px tokens; use an image size that is a "
                         f"multiple of 16 px")
    layout = _layouts.get(fovea, TokenGrid(1, h // p, w // p, token_px=TOKEN_PX))
    return layout, layout.cached(("packing", p), lambda: LatentPacking(layout, p))


class FoveatedDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FoveatedDecode",
            display_name="Foveated Decode",
            category="foveated/latent",
            description="Decode a foveated latent: the periphery at its own low resolution, the fovea only over its "
                        "region plus a margin, then a feathered blend inside the fovea. Faster than a full decode.",
            inputs=[
                io.Latent.Input("samples", tooltip="The latent sampled with Apply Foveation."),
                io.Vae.Input("vae", tooltip="The model's VAE."),
                FOVEA.Input("fovea", tooltip="The same FOVEA that was given to Apply Foveation."),
                io.Int.Input("margin", default=2, min=0, max=16, step=1, advanced=True,
                             tooltip="Extra tokens decoded around the fovea so the VAE sees context at its edge."),
            ],
            outputs=[io.Image.Output(display_name="IMAGE"),
                     io.Mask.Output(display_name="fovea_mask", tooltip="Blend weight of the full-resolution decode.")],
        )

    @classmethod
    def execute(cls, samples, vae, fovea, margin) -> io.NodeOutput:
        latent = samples["samples"]
        layout, packing = layout_for_latent(fovea, latent, vae)
        if not packing.is_canonical(latent):
            raise ValueError(
                "this latent was not generated with this fovea: its periphery is not made of low-resolution "
                "blocks. Connect the same FOVEA to Apply Foveation and Foveated Decode, or use VAE Decode."
            )
        dec = layout.cached(("decoder", packing.patch, TOKEN_PX, fovea.feather, margin),
                            lambda: SplitDecoder(layout, packing.patch, TOKEN_PX, fovea.feather, margin))
        pbar = comfy.utils.ProgressBar(len(dec.parts))
        parts = []
        for part in dec.parts:  # one VAE call per level
            parts.append(vae.decode(part.latent(latent, packing.patch)))
            pbar.update(1)
        image = dec.compose(parts)
        mask = dec.weights(0, image.device).expand(image.shape[0], -1, -1)
        # a small preview (it also feeds the Fovea node's canvas: the last image decoded with it)
        return io.NodeOutput(image, mask, ui=ui.PreviewImage(_preview(image[:1]), cls=cls))


def _preview(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[1:3]
    f = PREVIEW_PX / max(h, w)
    if f >= 1:
        return image
    small = F.interpolate(image.movedim(-1, 1), size=(round(h * f), round(w * f)), mode="area")
    return small.movedim(1, -1)


class FoveatedEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FoveatedEncode",
            display_name="Foveated Encode",
            category="foveated/latent",
            description="Encode an image into a foveated latent for img2img: the fovea from the full-resolution "
                        "encode, the periphery from encodes of the downsampled image (never a pooled latent).",
            inputs=[
                io.Image.Input("pixels", tooltip="Image to encode; width and height multiples of 16 px."),
                io.Vae.Input("vae", tooltip="The model's VAE."),
                FOVEA.Input("fovea", tooltip="The FOVEA you will sample with."),
            ],
            outputs=[io.Latent.Output(display_name="LATENT")],
        )

    @classmethod
    def execute(cls, pixels, vae, fovea) -> io.NodeOutput:
        H, W = pixels.shape[1:3]
        if H % TOKEN_PX or W % TOKEN_PX:
            lo = lambda v: max(TOKEN_PX, v // TOKEN_PX * TOKEN_PX)  # noqa: E731
            raise ValueError(f"image is {W}x{H} px; Foveated Encode needs multiples of {TOKEN_PX} px "
                             f"(e.g. {lo(W)}x{lo(H)} or {lo(W) + TOKEN_PX}x{lo(H) + TOKEN_PX}); resize or crop it first")
        rgb = pixels[..., :3]
        full = vae.encode(rgb)
        layout, packing = layout_for_latent(fovea, full, vae)
        low = encode_low_levels(vae, rgb, layout.levels)
        canvas = merge_levels(packing, full, {k: z.to(full) for k, z in low.items()})
        return io.NodeOutput({"samples": canvas})


def encode_low_levels(vae, rgb: torch.Tensor, levels) -> dict:
    """Per level k > 0, the latent of the image downsampled by 2^k (the paper's principled
    mechanism; Foveated Encode and the trainer's targets both use it). rgb: (B, H, W, 3)."""
    ds = vae.spacial_compression_encode()
    return {k: vae.encode(downsample_image(rgb, 2**k, ds)) for k in levels if k != 0}
