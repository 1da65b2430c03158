"""Z-Image (Turbo, base): comfy.ldm.lumina.model.NextDiT as ComfyUI loads Z-Image.

Native path kept: NextDiT._forward, patchify_and_embed, both refiner stages, the main
layers and their RoPE run unchanged on the strip latent (B, C, p, L*p). How NextDiT lays
out its tokens: the text (padded to a multiple of 32 with cap_pad_token) first runs alone
through the context refiner; the image tokens, padded to a multiple of 32 with
x_pad_token (ids 0), run alone through the noise refiner; the main layers then attend
over [text | image | image padding]. RoPE axes (t, y, x): text (1 + i, 0, 0); image
(text length + 1, y, x) from 0 (times rope_options' scale, plus its shift), independent
of the grid size. The text is never foveated.

NextDiT builds its ids inside patchify_and_embed and offers no post_input patch and no
block replacement, so the true positions can only be given in the attention override:
  1. q and k arrive rotated for the strip's ids (t, 0, i); the override rotates them once
     more, by (true base-frame id - strip id), into the base frame (RoPE rotations
     compose). A coarser group rotates the strip-rotated q and k once, by (its frame -
     strip id): SequencePlan.frame_delta_ids about the rope_options shift, plus the
     correction. Text and padding rows never move.
  2. The override tells the noise refiner ([image | padding]), the main layers ([text |
     image | padding]) and the context refiner (text only: passed through) apart by
     length; the strip gets extra rows (keys of nobody, outputs dropped) so that the model
     pads it with exactly as many x_pad_tokens as it pads the native image at the base
     level, and so that the refiner's length is never the text's (were they equal, the
     context refiner's text would be rotated as image rows: e.g. any 1/2^k grid of at most
     32 tokens with a prompt of at most 32 tokens; tests/test_comfy_qwen_zimage.py fails
     on those without the extra rows).
Z-Image Omni reference images (ref_latents) and the Fun ControlNet block patches are
refused with a clear error.
"""
from __future__ import annotations

import torch

import comfy.ldm.flux.math as flux_math
import comfy.ldm.lumina.model as lumina_model

from ...fov_core import DiTDims, SequencePlan
from ..foveation import CallState, attention_kwargs, make_attention_override, mark_dynamic
from .base import FamilyAdapter
from .flux import rope_options_affine
from .qwen_image import refuse_block_patches

SPATIAL_AXES = (1, 2)


def is_z_image(dm) -> bool:
    """Z-Image's blocks modulate with a bare Linear (z_image_modulation); Lumina 2's with SiLU + Linear."""
    return isinstance(dm.noise_refiner[0].adaLN_modulation[0], torch.nn.Linear)


def padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def stage_tables(layout, plan: SequencePlan, embed, t0: float, origin, scale, device):
    """(correction, per-group tables) for one stage's sequence [prefix | strip rows | padding]:
    the RoPE rotations from the strip's ids to the base frame and to each group's frame."""
    n = plan.seq_len
    rows = plan.suffix_start - plan.n_prefix
    strip = torch.zeros((n, 3), dtype=torch.float64)  # the ids pos_ids_x gives the strip (1 x rows grid)
    strip[plan.n_prefix : plan.suffix_start, 0] = t0
    strip[plan.n_prefix : plan.suffix_start, 1] = origin[0]
    strip[plan.n_prefix : plan.suffix_start, 2] = torch.arange(rows, dtype=torch.float64) * scale[1] + origin[1]
    full = strip.clone()  # full-resolution ids of the packed tokens (padding rows stay where they are)
    img = full[plan.image_start : plan.image_end]
    img[:, 1] = layout.y.double() * scale[0] + origin[0]
    img[:, 2] = layout.x.double() * scale[1] + origin[1]
    correction = plan.base_ids(full, SPATIAL_AXES, origin) - strip

    def table(ids):
        return mark_dynamic(embed(ids.float().to(device)[None]), 2)

    groups = tuple(table(correction + plan.frame_delta_ids(full, g, SPATIAL_AXES, origin))
                   if g.level != plan.base_level else None for g in plan.groups)
    return table(correction), groups


def positions_override(call, state: CallState, previous=None):
    """The attention override of a Z-Image forward: picks the stage by sequence length, puts
    q and k into the base frame and lets the phase-aligned override run."""
    inner = make_attention_override(state, previous)
    stages = {}
    for prefix, name in ((call.values["n_text"], "main"), (0, "refiner")):
        plan = call.plan(prefix)
        stages[plan.seq_len] = (plan,) + call.tensors[name]

    def override(func, q, k, v, heads, *args, **kwargs):
        kwargs, args = attention_kwargs(args, kwargs), ()
        d = 2 if kwargs.get("skip_reshape", False) else 1
        stage = stages.get(q.shape[d]) if q.shape[d] == k.shape[d] else None
        if stage is None:  # the context refiner (text only)
            state.plan = None
            return inner(func, q, k, v, heads, *args, **kwargs)
        plan, correction, groups = stage
        if d == 1:  # (B, N, heads * D) -> (B, heads, N, D) views
            q, k, v = (t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
            kwargs = dict(kwargs, skip_reshape=True)
        q0, k0 = q, k
        q, k = flux_math.apply_rope(q, k, correction)
        state.plan = plan
        state.rotate = lambda _q, _k, gi: flux_math.apply_rope(q0, k0, groups[gi])  # one rotation from the strip's
        return inner(func, q, k, v, heads, *args, **kwargs)

    return override


class ZImageAdapter(FamilyAdapter):
    name = "Z-Image"

    @classmethod
    def matches(cls, diffusion_model) -> bool:
        return type(diffusion_model) is lumina_model.NextDiT and is_z_image(diffusion_model)

    def text_length(self, context) -> int:
        """Text tokens in the main layers' sequence (padded to the model's multiple)."""
        m = self.diffusion_model.pad_tokens_multiple or 1
        return padded(int(context.shape[1]), m) if context is not None else m

    def dims(self, context, kwargs):
        # the noise refiner (image only) and the context refiner (text only) count as two joint
        # blocks: exact for the linear FLOPs, attention over-counts 2 blocks' text-image pairs
        dm = self.diffusion_model
        return DiTDims(hidden=dm.dim, mlp_hidden=dm.layers[0].feed_forward.w1.out_features,
                       blocks=len(dm.layers) + len(dm.noise_refiner),
                       text_tokens=self.text_length(context) if context is not None else 0, gated_mlp=True)

    def prepare(self, diffusion_model, layout, packing, x, context, transformer_options, kwargs, image_rows):
        refuse_block_patches(transformer_options, self.name)
        if kwargs.get("ref_latents"):
            raise ValueError("Foveation does not support reference images on Z-Image (Z-Image Omni ref_latents) yet; "
                             "remove the reference latents or the foveation (Apply Foveation).")
        m = diffusion_model.pad_tokens_multiple or 1
        n_text = self.text_length(context)
        H, W = layout.shape[1:]
        s = 2**layout.base_level
        rows = layout.n_tokens if image_rows is None else image_rows
        rows += (-(-H // s) * -(-W // s) - rows) % m  # the model pads as many tokens as natively
        while padded(rows, m) == n_text:  # the refiner's sequence must not look like the text's
            rows += m
        n_pad = padded(rows, m) - rows
        image_rows = None if rows == layout.n_tokens else rows
        origin, scale = rope_options_affine(transformer_options)
        embed, device = diffusion_model.rope_embedder, x.device

        def build():
            return {name: stage_tables(layout, SequencePlan.of(layout, prefix, n_pad, image_rows=image_rows), embed,
                                       n_text + 1.0, origin, scale, device)
                    for prefix, name in ((n_text, "main"), (0, "refiner"))}

        key = ("z_image", n_text, image_rows, n_pad, origin, scale, str(device), embed.theta, tuple(embed.axes_dim))
        return self.model_call(layout, packing, device, image_rows, n_pad, tensors=layout.cached(key, build),
                               values={"n_text": n_text})

    def forward(self, executor, args, kwargs, call):
        # NextDiT.forward(x, timesteps, context, num_tokens, attention_mask=None, **kw): options are a keyword
        topts = self.transformer_options(args, kwargs, len(args))
        topts["optimized_attention_override"] = positions_override(call, CallState(),
                                                                   topts.get("optimized_attention_override"))
        return executor(*args, **dict(kwargs, transformer_options=topts))
