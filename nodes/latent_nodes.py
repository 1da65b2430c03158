"""Foveated Decode and Foveated Encode: VAE work on the foveated latent ("canvas")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import comfy.utils
from comfy_api.latest import io, ui

from ..fov_core import LatentPacking, LayoutCache, SplitDecoder, TokenGrid, TokenLayout, downsample_image, merge_levels
from .types import FOVEA

PREVIEW_PX = 256  # long side of the preview the node shows (and the Fovea canvas draws behind the gaze);
# small because saving it as a PNG is on the decode's time: 512 px cost 50-65 ms on an H100 host, more than the fovea's VAE call
# DiT latent pixels per token edge, by the VAE's latent channels: the supported families
# patchify 2x2 latent pixels (FLUX.1, Chroma, Z-Image, Qwen-Image, Wan 2.1, HunyuanVideo 1.0: 16
# channels; Wan 2.2 5B: 48), except FLUX.2, whose VAE already packs 2x2 into its 128 channels, and
# HunyuanVideo 1.5, whose 16x VAE (32 channels) feeds the DiT one latent pixel per token.
DIT_PATCH_BY_LATENT_CHANNELS = {16: 2, 32: 1, 48: 2, 128: 1}
_layouts = LayoutCache(size=8)  # decoders, packings and blend weights live on these layouts


def token_geometry(vae) -> tuple[int, int, int]:
    """(latent pixels per token edge, image pixels per token edge, video frames per latent
    frame) of the DiT family this VAE belongs to."""
    ch, ds = getattr(vae, "latent_channels", None), vae.spacial_compression_decode()
    if ch not in DIT_PATCH_BY_LATENT_CHANNELS or not isinstance(ds, int):
        raise ValueError(f"this VAE ({ch} latent channels, {ds}x) belongs to no model family foveation supports; "
                         f"use the VAE of a FLUX.1, FLUX.2, Chroma, Qwen-Image, Z-Image, Wan or HunyuanVideo model")
    p = DIT_PATCH_BY_LATENT_CHANNELS[ch]
    return p, p * ds, vae.temporal_compression_decode() or 1


def layout_for_latent(fovea, samples: torch.Tensor, vae) -> tuple[TokenLayout, LatentPacking]:
    if getattr(samples, "is_nested", False):
        raise ValueError("Foveated Decode/Encode does not support nested (multi-part) latents")
    p, token_px, stride = token_geometry(vae)
    if samples.ndim not in (4, 5):
        raise ValueError(f"expected an image latent (batch, channels, height, width) or a video latent (batch, "
                         f"channels, frames, height, width), got shape {tuple(samples.shape)}")
    h, w = samples.shape[-2:]
    if h % p or w % p:
        raise ValueError(f"latent {h}x{w} is not a whole number of {token_px} px tokens; use an image size that is "
                         f"a multiple of {token_px} px")
    video = samples.ndim == 5
    grid = TokenGrid(samples.shape[2] if video else 1, h // p, w // p, token_px=token_px,
                     frame_stride=stride if video else 1)
    layout = _layouts.get(fovea, grid)
    return layout, layout.cached(("packing", p), lambda: LatentPacking(layout, p))


def kept_tokens(noise_mask, latent: torch.Tensor, p: int):
    """(T, H, W) bool: tokens an inpainting noise mask keeps, even partly, in any batch item
    (ComfyUI samples with the mask resized to the latent as here, and puts the input latent
    back where it is below 1, so there the latent is the input's, not low-resolution blocks)."""
    if noise_mask is None:
        return None
    m = comfy.utils.reshape_mask(noise_mask, latent.shape)
    kept = (m < 1).flatten(0, 1).any(0).float()  # ([T,] h, w)
    kept = kept.reshape(-1, *kept.shape[-2:])
    return F.max_pool2d(kept.unsqueeze(1), p).squeeze(1).bool()


def latent_frame_of(video_frames: int, stride: int, latent_frames: int) -> torch.Tensor:
    """Latent frame of each decoded video frame: frame 0 alone, then `stride` frames each."""
    f = torch.arange(video_frames)
    return ((f + stride - 1) // stride).clamp(max=latent_frames - 1)


class FoveatedDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FoveatedDecode",
            display_name="Foveated Decode",
            category="foveated/latent",
            description="Decode a foveated latent: the periphery at its own low resolution, the fovea only over its "
                        "region plus a margin, then a feathered blend inside the fovea. Decodes fewer pixels than a full "
                        "decode: faster with a small fovea (see the README's Benchmark for large ones on a GPU).",
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
        p, token_px, stride = token_geometry(vae)
        kept = kept_tokens(samples.get("noise_mask"), latent, p)
        if kept is not None and kept.any():  # inpainting kept them from the input: decode them at full resolution
            layout = layout.with_full_resolution(kept)
            packing = layout.cached(("packing", p), lambda: LatentPacking(layout, p))
        if not packing.is_canonical(latent):
            raise ValueError(
                "this latent was not generated with this fovea: its periphery is not made of low-resolution "
                "blocks. Connect the same FOVEA to Apply Foveation and Foveated Decode, or use VAE Decode."
            )
        dec = layout.cached(("decoder", p, token_px, fovea.feather, margin),
                            lambda: SplitDecoder(layout, p, token_px, fovea.feather, margin))
        pbar = comfy.utils.ProgressBar(len(dec.parts))
        parts = []
        for part in dec.parts:  # one VAE call per level (a video's crop spans all its frames)
            parts.append(vae.decode(part.latent(latent, p)))
            pbar.update(1)
        frame_of = None
        if latent.ndim == 5:  # (n * B, F, h, w, C) -> (n * B * F, h, w, C), like VAE Decode's output
            n_frames = parts[0].shape[1]
            parts = [img.reshape(-1, *img.shape[-3:]) for img in parts]
            frame_of = latent_frame_of(n_frames, stride, layout.shape[0]).repeat(latent.shape[0])
        image = dec.compose(parts, frame_of)
        mask = dec.weights(0, image.device)[frame_of if frame_of is not None else torch.zeros(image.shape[0],
                                                                                              dtype=torch.long)]
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
                io.Image.Input("pixels", tooltip="Image (or a video's frames) to encode; width and height multiples of "
                                                 "the model's token size (16 px; 32 px for Wan 2.2 5B)."),
                io.Vae.Input("vae", tooltip="The model's VAE."),
                FOVEA.Input("fovea", tooltip="The FOVEA you will sample with."),
            ],
            outputs=[io.Latent.Output(display_name="LATENT")],
        )

    @classmethod
    def execute(cls, pixels, vae, fovea) -> io.NodeOutput:
        H, W = pixels.shape[1:3]
        tp = token_geometry(vae)[1]
        if H % tp or W % tp:
            lo = lambda v: max(tp, v // tp * tp)  # noqa: E731
            raise ValueError(f"image is {W}x{H} px; Foveated Encode needs multiples of {tp} px "
                             f"(e.g. {lo(W)}x{lo(H)} or {lo(W) + tp}x{lo(H) + tp}); resize or crop it first")
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
