"""HunyuanVideo 1.0 and 1.5 (T2V, I2V): comfy.ldm.hunyuan_video.model.HunyuanVideo.

ComfyUI 0.29 runs every HunyuanVideo model on this one class; supported_models tells the
versions apart by their tensors (model_detection: 3-D patches, vision_in = 1.5):
    1.0 T2V / I2V / SkyReels I2V: patch (1, 2, 2), latent_formats.HunyuanVideo (16
        channels, 8x spatial, 4x temporal): 16 px tokens; 20 double + 40 single blocks.
    1.5 T2V / I2V (and its SR model): patch (1, 1, 1), latent_formats.HunyuanVideo15 (32
        channels, 16x spatial, 4x temporal): 16 px tokens; 54 double blocks.
Joint attention over [text | image] like FLUX (double and single stream blocks, the
model's RoPE over (t, y, x) ids, pe built once in forward_orig), but no post_input patch.

Native path kept: HunyuanVideo._forward, forward_orig and every block run unchanged on the
video strip latent (B, C, 1, p, L p) the DIFFUSION_MODEL wrapper packed. The adapter
  1. builds the RoPE table of the whole joint sequence with the model's own pe_embedder
     (cached on the layout): text, byT5 glyph and vision tokens (1.5 I2V) at 0, the
     reference latent of the "custom" I2V mode at its native ids, the packed tokens at
     their true (frame, y, x) in the base frame (only y and x scaled, never the frame),
     and hands it to every block through "dit" block-replacement patches (chaining any
     other replacement);
  2. sets the attention override: the joint attention is phase aligned with every
     never-foveated token in the prefix, a coarser group rotated by the frame difference.
Text, glyph, vision and reference tokens are never foveated; concatenated image
conditioning (1.0 I2V, 1.5) is read at low resolution as its group means (foveation.py).
The "v2 (replace)" I2V mode (guiding_frame_index) modulates the first frame's tokens by
their position in the sequence, which packing changes: refused with a clear error.
"""
from __future__ import annotations

import torch

import comfy.latent_formats as latent_formats
import comfy.ldm.hunyuan_video.model as hunyuan_model

from ...fov_core import DiTDims
from ..foveation import CallState, mark_dynamic
from .base import FamilyAdapter
from .chroma import with_pe
from .flux import install_plan, rope_difference_tables

GUIDING_FRAME_ERROR = (
    "Foveation does not support HunyuanVideo image-to-video with guidance_type 'v2 (replace)' "
    "(guiding_frame_index) yet: it modulates the first frame's tokens by their place in the sequence. "
    "Use guidance_type 'v1 (concat)' or 'custom' in HunyuanImageToVideo, or remove the foveation."
)


def with_checked_pe(pe, previous):
    """chroma.with_pe, refusing a sequence whose length is not the one `pe` was prepared for."""
    replace = with_pe(pe, previous)

    def checked(args, extra):
        if args["pe"].shape[2] != pe.shape[2]:
            raise ValueError(f"HunyuanVideo foveation prepared {pe.shape[2]} positions but the model's sequence has "
                             f"{args['pe'].shape[2]} tokens (a node that adds tokens to the sequence?); remove it "
                             f"or the foveation")
        return replace(args, extra)

    return checked


class HunyuanVideoAdapter(FamilyAdapter):
    name = "HunyuanVideo"
    video = True

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        return type(diffusion_model) is hunyuan_model.HunyuanVideo

    def __init__(self, model_patcher):
        super().__init__(model_patcher)
        patch = list(self.diffusion_model.patch_size)
        fmt = model_patcher.model.latent_format
        video_format = isinstance(fmt, (latent_formats.HunyuanVideo, latent_formats.HunyuanVideo15))
        if len(patch) != 3 or patch[0] != 1 or patch[1] != patch[2] or not video_format:
            raise ValueError(
                f"Foveation supports the HunyuanVideo video models (1.0 and 1.5), not this model built on the same "
                f"class ({type(fmt).__name__} latents, patch size {patch}; HunyuanImage 2.1 and its refiner are "
                f"image models). Connect a HunyuanVideo model or remove the foveation.")
        self.name = "HunyuanVideo 1.5" if isinstance(fmt, latent_formats.HunyuanVideo15) else "HunyuanVideo"

    @property
    def patch_size(self) -> int:
        return self.diffusion_model.patch_size[-1]  # (1, 2, 2) for 1.0, (1, 1, 1) for 1.5

    @staticmethod
    def text_length(dm, context, kwargs) -> int:
        """Tokens forward_orig puts before the image: text, byT5 glyph text, vision tokens."""
        n = int(context.shape[1])
        byt5, clip = kwargs.get("txt_byt5"), kwargs.get("clip_fea")
        if byt5 is not None and dm.byt5_in is not None:
            n += int(byt5.shape[1])
        if clip is not None:
            n += int(clip.shape[-2])
        return n

    def dims(self, context, kwargs):
        prm = self.diffusion_model.params
        ref = kwargs.get("ref_latent")
        n_ref = int(self.diffusion_model.img_ids(ref[:1]).shape[1]) if ref is not None else 0
        n_txt = self.text_length(self.diffusion_model, context, kwargs) if context is not None else 0
        return DiTDims(hidden=prm.hidden_size, mlp_hidden=int(prm.hidden_size * prm.mlp_ratio),
                       blocks=prm.depth + prm.depth_single_blocks, text_tokens=n_txt + n_ref)

    def prepare(self, diffusion_model, layout, packing, x, context, transformer_options, kwargs, image_rows):
        if kwargs.get("guiding_frame_index") is not None:
            raise ValueError(GUIDING_FRAME_ERROR)
        dm, B, device = diffusion_model, x.shape[0], x.device
        rows = layout.n_tokens if image_rows is None else image_rows
        n_txt = self.text_length(dm, context, kwargs)
        ref = kwargs.get("ref_latent")
        b = 2 ** layout.base_level
        ref_ids = None
        if ref is not None:  # native ids of the reference latent, offset past the image's width in the base frame
            ref_ids = dm.img_ids(ref[:1]).float()
            ref_ids[..., 0] = -1
            ref_ids[..., 2] += layout.shape[2] // b
        n_prefix = n_txt + (0 if ref_ids is None else ref_ids.shape[1])
        embed = dm.pe_embedder

        def base_pe():
            ids = torch.zeros((B, n_prefix + rows, 3), dtype=torch.float32)
            if ref_ids is not None:
                ids[:, n_txt:n_prefix] = ref_ids.cpu()
            ids[:, n_prefix : n_prefix + layout.n_tokens] = torch.stack(
                (layout.t, layout.y / b, layout.x / b), dim=1).float()
            return mark_dynamic(embed(ids.to(device)), 2)

        key = ("hunyuan_pe", n_txt, None if ref is None else tuple(ref.shape[2:]), rows, B, str(device), embed.theta,
               tuple(embed.axes_dim))
        pe = layout.cached(key, base_pe)
        tables = rope_difference_tables(layout, embed, n_prefix, 0, image_rows, (1.0, 1.0), len(embed.axes_dim), B,
                                        device)
        return self.model_call(layout, packing, device, image_rows, values={"n_prefix": n_prefix},
                               tensors={"pe": pe, "rope_delta": tables})

    def forward(self, executor, args, kwargs, call):
        # HunyuanVideo.forward(x, timestep, context, y, txt_byt5, clip_fea, guidance, attention_mask,
        #                      guiding_frame_index, ref_latent, disable_time_r, control, transformer_options, **kw)
        if (args[8] if len(args) > 8 else kwargs.get("guiding_frame_index")) is not None:
            raise ValueError(GUIDING_FRAME_ERROR)
        topts = self.transformer_options(args, kwargs, 12)
        dm = self.running_model(executor)
        state = CallState()
        install_plan(state, call, call.values["n_prefix"], True)
        pe = call.tensors["pe"]
        replace = {k: dict(v) if isinstance(v, dict) else v for k, v in topts.get("patches_replace", {}).items()}
        dit = replace.setdefault("dit", {})
        for name, count in (("double_block", len(dm.double_blocks)), ("single_block", len(dm.single_blocks))):
            for i in range(count):
                dit[(name, i)] = with_checked_pe(pe, dit.get((name, i)))
        topts["patches_replace"] = replace
        return self.run_with_override(executor, args, kwargs, 12, topts, state)
