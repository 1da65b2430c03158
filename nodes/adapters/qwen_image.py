"""Qwen-Image (text to image, 2512) and Qwen-Image-Edit (2509, 2511):
comfy.ldm.qwen_image.model.QwenImageTransformer2DModel.

Native path kept: _forward (reference latents and their methods, timestep-zero
references), the blocks and their RoPE run unchanged on the strip latent
(B, C, 1, p, L*p) the DIFFUSION_MODEL wrapper packed (Qwen-Image latents are 5-D with one
frame: the Wan 2.1 VAE on single images).

Qwen-Image places its ids its own way (process_img / _forward): the image ids
(index, y - h//2, x - w//2) are CENTERED on the image's own token grid h x w (integer
division), and the text ids start at max(h//2, w//2) on all three axes. Both depend on
the grid, so the strip's own ids (1 x L grid) are wrong twice. The adapter
  1. adds a "post_input" patch that gives the packed tokens their ids in the base frame
     and the text the ids it has on the base level's grid;
  2. sets the attention override: a coarser group rotates q and k by the difference of
     the frames. Frame k is exactly what the native model builds for the 1/2^k latent:
     image (y/2^k - c_k, x/2^k - c_k'), text from max(H_k, W_k)//2, with
     H_k = ceil(H/2^k), c_k = H_k//2. That is SequencePlan.frame_delta_ids' rule
     "spatial ids / 2^k about an origin" (origin: the grid's centre) only when H and W
     are multiples of 2^(k+1); otherwise the centre moves by half a token, and the text
     ids move with the level in any case, so the tables are built from the frames.
Reference latents (Qwen-Image-Edit) are a never-foveated suffix: their ids do not depend
on the generated image, so every frame leaves them where they are. Qwen-Image-Layered
(several layers as frames) and the DiffSynth / Fun ControlNet block patches are refused.
"""
from __future__ import annotations

import torch

import comfy.ldm.qwen_image.model as qwen_model

from ...fov_core import DiTDims, SequencePlan
from ..foveation import CallState, mark_dynamic
from .base import FamilyAdapter
from .flux import install_plan

BLOCK_PATCHES = ("double_block", "noise_refiner")


def refuse_block_patches(transformer_options, family: str):
    """Block patches (core's DiffSynth / Fun ControlNets: QwenImageDiffsynthControlnet,
    ZImageFunControlnet) read the full-resolution latent and add to the image tokens."""
    patches = transformer_options.get("patches", {})
    for kind in BLOCK_PATCHES:
        for p in patches.get(kind, ()):
            raise ValueError(
                f"Foveation does not support {type(p).__name__} on {family}: this '{kind}' patch (a ControlNet model "
                f"patch such as QwenImageDiffsynthControlnet or ZImageFunControlnet) is made for the full-resolution "
                f"latent and tokens. Remove that node or the foveation (Apply Foveation).")


def grid_frame(H: int, W: int, level: int) -> tuple[int, int, int]:
    """(centre row, centre column, first text id) of the native ids on the 1/2^level grid."""
    h, w = -(-H // 2**level), -(-W // 2**level)
    return h // 2, w // 2, max(h // 2, w // 2)


def sequence_ids(layout, level: int, n_txt: int, n_rows: int, n_ref: int) -> torch.Tensor:
    """(N, 3) ids of [text | strip rows | references] in the frame of `level`, as the native
    model builds them for the 1/2^level latent. Rows past the packed tokens (padding) and
    the references get 0: only differences of frames are used, and those rows never move."""
    cy, cx, t0 = grid_frame(layout.shape[1], layout.shape[2], level)
    ids = torch.zeros(n_txt + n_rows + n_ref, 3, dtype=torch.float64)
    ids[:n_txt] = (t0 + torch.arange(n_txt, dtype=torch.float64))[:, None]
    s = 2.0**level
    img = ids[n_txt : n_txt + layout.n_tokens]
    img[:, 1] = layout.y.double() / s - cy
    img[:, 2] = layout.x.double() / s - cx
    return ids


class QwenImageAdapter(FamilyAdapter):
    name = "Qwen-Image"

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        return type(diffusion_model) is qwen_model.QwenImageTransformer2DModel

    def __init__(self, model_patcher):
        super().__init__(model_patcher)
        if getattr(self.diffusion_model.time_text_embed, "use_additional_t_cond", False):
            self.name = "Qwen-Image-Layered"

    def token_grid(self, latent_shape):
        """Images: (B, C, H, W) as the empty-latent nodes make them, or (B, C, 1, H, W) as
        sampling sees them (latent_formats.Wan21 has 3 latent dimensions)."""
        if len(latent_shape) == 5:
            if latent_shape[2] != 1:
                raise ValueError(
                    f"Foveation on {self.name} generates single images; this latent has {latent_shape[2]} frames "
                    f"(Qwen-Image-Layered's layers are not supported yet). Use a one-image latent "
                    f"(EmptySD3LatentImage) or remove the foveation.")
            latent_shape = tuple(latent_shape[:2]) + tuple(latent_shape[3:])
        return super().token_grid(latent_shape)

    def n_reference_tokens(self, kwargs) -> int:
        p = self.patch_size
        return sum((r.shape[2] if r.ndim == 5 else 1) * -(-r.shape[-2] // p) * -(-r.shape[-1] // p)
                   for r in kwargs.get("ref_latents") or ())

    def dims(self, context, kwargs):
        dm = self.diffusion_model
        return DiTDims(hidden=dm.inner_dim, mlp_hidden=dm.transformer_blocks[0].img_mlp.net[2].in_features,
                       blocks=len(dm.transformer_blocks), text_tokens=int(context.shape[1]) if context is not None else 0,
                       extra_tokens=self.n_reference_tokens(kwargs))

    def prepare(self, diffusion_model, layout, packing, x, context, transformer_options, kwargs, image_rows):
        refuse_block_patches(transformer_options, self.name)
        B, n_txt, n_ref, device = x.shape[0], int(context.shape[1]), self.n_reference_tokens(kwargs), x.device
        rows = layout.n_tokens if image_rows is None else image_rows
        pe = diffusion_model.pe_embedder

        def build():
            base = sequence_ids(layout, layout.base_level, n_txt, rows, n_ref)
            plan = SequencePlan.of(layout, n_txt, n_ref, image_rows=image_rows)

            def table(level):
                delta = (sequence_ids(layout, level, n_txt, rows, n_ref) - base).float().to(device)
                return mark_dynamic(pe(delta[None].expand(B, -1, -1)), 2)

            deltas = tuple(None if g.level == plan.base_level else table(g.level) for g in plan.groups)
            image = mark_dynamic(base[n_txt : n_txt + layout.n_tokens, 1:].float().to(device), 0)
            text = base[:n_txt].float().to(device)[None].expand(B, -1, -1)
            return image, text, deltas

        key = ("qwen_image", B, n_txt, n_ref, image_rows, str(device), pe.theta, tuple(pe.axes_dim))
        image, text, deltas = layout.cached(key, build)
        return self.model_call(layout, packing, device, image_rows, n_ref,
                               tensors={"image_ids": image, "text_ids": text, "rope_delta": deltas})

    def forward(self, executor, args, kwargs, call):
        # forward(x, timestep, context, attention_mask, ref_latents, additional_t_cond, transformer_options, **kw)
        topts = self.transformer_options(args, kwargs, 6)
        yx, text = call.tensors["image_ids"], call.tensors["text_ids"]
        state = CallState()

        def post_input(pa):
            img_ids = pa["img_ids"].clone()
            if pa["txt_ids"].shape[1] != text.shape[1] or pa["img"].shape[1] != img_ids.shape[1]:
                raise ValueError(f"unexpected Qwen-Image sequence: {pa['txt_ids'].shape[1]} text ids for "
                                 f"{text.shape[1]} text tokens")
            img_ids[:, : yx.shape[0], 1:3] = yx  # the strip may be padded past the packed tokens
            install_plan(state, call, text.shape[1], True)
            return dict(pa, img_ids=img_ids, txt_ids=text)

        patches = {k: list(v) if isinstance(v, list) else v for k, v in topts.get("patches", {}).items()}
        patches["post_input"] = patches.get("post_input", []) + [post_input]
        topts["patches"] = patches
        return self.run_with_override(executor, args, kwargs, 6, topts, state)
