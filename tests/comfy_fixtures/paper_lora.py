"""Synthetic LoRA files in exactly the format the Foveated Diffusion paper saves.

The paper ("Foveated Diffusion", arXiv 2603.23491) publishes rank-32 LoRAs for
FLUX.2 [klein] base 4B (Hugging Face ``bchao1/foveated-diffusion``,
``image/fov_random.safetensors``, ``image/fov_saliency.safetensors``,
``image/fov_bbox.safetensors``; the no-foveation baseline is ``no_fov``). We
cannot download them, so tests use files written by :func:`write_paper_style_lora`,
which reproduces the format the training code saves. Only torch and safetensors
are needed; ComfyUI is not imported.

How the format follows from the code
------------------------------------
Paper code: github.com/fahadsarfraz-tomtom/foveated_diffusion at 694f493f.
DiffSynth-Studio: github.com/modelscope/DiffSynth-Studio; the parts quoted here
are the same from b6ccb362 ("support flux.2 klein", 2026-01-19) through fed7b18f.

1. ``configs/train_lora.sh``: ``--lora_base_model "dit"``,
   ``--lora_target_modules "to_q,to_k,to_v,to_out.0,add_q_proj,add_k_proj,
   add_v_proj,to_add_out,linear_in,linear_out,to_qkv_mlp_proj"``,
   ``--lora_rank 32``, ``--remove_prefix_in_ckpt "pipe.dit."``. The base model is
   ``black-forest-labs/FLUX.2-klein-base-4B:transformer/*.safetensors``.
2. ``src/diffsynth_fov/pipeline.py`` (``Flux2FoveatedImagePipeline.from_pretrained``
   and ``_convert_to_foveated_dit``) sets ``pipe.dit`` to ``Flux2DiTFoveated``
   (``src/diffsynth_fov/dit.py``). Its module names are the diffusers FLUX.2 names:
   ``transformer_blocks.N.attn.{to_q,to_k,to_v,to_out.0,add_q_proj,add_k_proj,
   add_v_proj,to_add_out}``, ``transformer_blocks.N.{ff,ff_context}.{linear_in,
   linear_out}``, ``single_transformer_blocks.N.attn.{to_qkv_mlp_proj,to_out}``.
   The single block's output projection is ``attn.to_out``, a plain Linear, not a
   ModuleList. The same names are used in DiffSynth's ``diffsynth/models/flux2_dit.py``.
   For klein 4B, ``diffsynth/configs/model_configs.py`` gives
   ``num_attention_heads=24`` (×128 = 3072), ``num_layers=5``,
   ``num_single_layers=20``, ``joint_attention_dim=7680`` and
   ``guidance_embeds=False``. The default ``mlp_ratio`` is 3.0.
3. ``src/training/module.py`` calls DiffSynth's
   ``DiffusionTrainingModule.switch_pipe_to_training_mode``
   (``diffsynth/diffusion/training_module.py``). That calls
   ``add_lora_to_model(pipe.dit, target_modules=<list of 11>, lora_rank=32,
   upcast_dtype=pipe.torch_dtype)`` →
   ``peft.inject_adapter_in_model(LoraConfig(r=32, lora_alpha=32,
   target_modules=[...]), dit)``. Details of this step:

   * PEFT's default adapter name is ``"default"``. Each adapted Linear gets
     ``lora_A = ModuleDict({"default": Linear(in, r, bias=False)})`` and
     ``lora_B = ModuleDict({"default": Linear(r, out, bias=False)})``, so the
     parameter names end in ``.lora_A.default.weight`` with shape ``[r, in]`` and
     ``.lora_B.default.weight`` with shape ``[out, r]``.
   * ``lora_alpha`` equals the rank, so PEFT's scale is alpha/r = 1. Alpha is a
     Python scalar in the config, not a tensor, so no ``.alpha`` key is saved.
     ``GeneralLoRALoader`` in DiffSynth (``diffsynth/utils/lora/general.py``)
     applies ``W += alpha * B @ A`` with alpha=1 by default.
   * A list of target names matches by PEFT's rule (``check_target_module_exists``
     in ``peft/tuners/tuners_utils.py``): ``key in targets`` or
     ``key.endswith("." + t)``. As a result ``"to_out.0"`` matches only the
     double-block ``attn.to_out.0``. The single blocks' ``attn.to_out`` has no LoRA
     in the paper's files. DiffSynth's own FLUX.2 example,
     ``examples/flux2/model_training/lora/FLUX.2-klein-base-4B.sh``, adds
     ``single_transformer_blocks.{0..19}.attn.to_out`` explicitly to get it; the
     paper's config does not.
   * PEFT's ``_mark_only_adapters_as_trainable`` leaves only the ``lora_`` params
     trainable, even though ``module.py`` also passes ``"dit"`` to
     ``freeze_except``.
   * ``upcast_dtype=pipe.torch_dtype`` is ``torch.bfloat16``, so the LoRA params
     are bf16.
4. Saving: ``ModelLogger.save_model`` (``diffsynth/diffusion/logger.py``;
   ``WandbModelLogger`` in ``src/diffsynth_fov/logger.py`` does not override it)
   → ``export_trainable_state_dict`` keeps trainable params and strips the
   ``"pipe.dit."`` prefix; the default ``state_dict_converter`` is identity →
   ``accelerator.save(sd, path, safe_serialization=True)``, which is
   safetensors ``save_file`` with ``metadata={"format": "pt"}``.

The result is a safetensors file with metadata ``{"format": "pt"}``. It has no
prefix, PEFT ``.default`` names, bf16 tensors and no alpha, DoRA or bias keys.
For klein-base-4B (H=3072, MLP hidden M=9216, r=32) the keys are::

    transformer_blocks.{0..4}.attn.to_q.lora_A.default.weight            [32, 3072]
    transformer_blocks.{0..4}.attn.to_q.lora_B.default.weight            [3072, 32]
      (same for to_k, to_v, to_out.0, add_q_proj, add_k_proj, add_v_proj, to_add_out)
    transformer_blocks.{0..4}.ff.linear_in.lora_A.default.weight         [32, 3072]
    transformer_blocks.{0..4}.ff.linear_in.lora_B.default.weight         [18432, 32]
    transformer_blocks.{0..4}.ff.linear_out.lora_A.default.weight        [32, 9216]
    transformer_blocks.{0..4}.ff.linear_out.lora_B.default.weight        [3072, 32]
      (same for ff_context.linear_in / ff_context.linear_out)
    single_transformer_blocks.{0..19}.attn.to_qkv_mlp_proj.lora_A.default.weight [32, 3072]
    single_transformer_blocks.{0..19}.attn.to_qkv_mlp_proj.lora_B.default.weight [27648, 32]

That is 5*12 + 20*1 = 80 adapted Linears and 160 tensors.

ComfyUI 0.29 loads this format as is, with no conversion.
``comfy.lora.model_lora_keys_unet`` maps the bare diffusers names via
``comfy.utils.flux_to_diffusers`` (the "DiffSynth lora format" line). The
``LoRAAdapter`` in ``comfy/weight_adapter/lora.py`` recognises
``.lora_B.default.weight`` / ``.lora_A.default.weight``. With no alpha the scale
is 1. The q/k/v and add_q/k/v keys are applied to row slices
``[0:H]``, ``[H:2H]`` and ``[2H:3H]`` of the fused BFL ``img_attn.qkv`` /
``txt_attn.qkv``. ``to_qkv_mlp_proj`` goes to the whole ``single_blocks.N.linear1``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

#: What ``accelerate.utils.save(..., safe_serialization=True)`` writes.
SAFETENSORS_METADATA = {"format": "pt"}

#: The adapter name PEFT uses by default (``inject_adapter_in_model``).
PEFT_ADAPTER_NAME = "default"


def paper_lora_modules(state_dict) -> dict[str, tuple[int, int]]:
    """The Linears the paper's config adapts (see step 3 above), diffusers-named, as
    ``name -> (out, in)`` in module order, for the FLUX.2 DiT of a ComfyUI / BFL state dict
    (``model.state_dict()`` of a ComfyUI ModelPatcher; a ``diffusion_model.`` prefix is ignored)."""
    shapes = {k.removeprefix("diffusion_model."): tuple(v.shape) for k, v in state_dict.items()}
    H = shapes["img_in.weight"][0]
    M = shapes["double_blocks.0.img_mlp.2.weight"][1]

    def count(pattern):
        return 1 + max((int(m.group(1)) for k in shapes for m in [re.match(pattern, k)] if m), default=-1)

    out = {}
    for i in range(count(r"double_blocks\.(\d+)\.")):
        p = f"transformer_blocks.{i}"
        for n in ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"):
            out[f"{p}.attn.{n}"] = (H, H)
        for ff in ("ff", "ff_context"):
            out[f"{p}.{ff}.linear_in"] = (2 * M, H)
            out[f"{p}.{ff}.linear_out"] = (H, M)
    for i in range(count(r"single_blocks\.(\d+)\.")):
        out[f"single_transformer_blocks.{i}.attn.to_qkv_mlp_proj"] = (3 * H + 2 * M, H)
    return out


def write_paper_style_lora(path, state_dict, rank: int = 4, seed: int = 0, magnitude: float = 1.0) -> None:
    """Write a synthetic LoRA in the paper's saved format (bf16, PEFT names, no alpha) for
    the FLUX.2 model of ``state_dict`` to ``path`` (safetensors).

    A and B are both random and non-zero, like a trained adapter (PEFT starts B at zero):
    ``A ~ N(0, 1/in)`` and ``B ~ N(0, magnitude^2 / r)``, so with ``magnitude=1`` each
    entry of B@A has a standard deviation of about 1/sqrt(in).
    """
    gen = torch.Generator().manual_seed(int(seed))
    sd = {}
    for name, (n_out, n_in) in paper_lora_modules(state_dict).items():
        a = torch.randn(rank, n_in, generator=gen) / math.sqrt(n_in)
        b = torch.randn(n_out, rank, generator=gen) * (magnitude / math.sqrt(rank))
        sd[f"{name}.lora_A.{PEFT_ADAPTER_NAME}.weight"] = a.to(torch.bfloat16).contiguous()
        sd[f"{name}.lora_B.{PEFT_ADAPTER_NAME}.weight"] = b.to(torch.bfloat16).contiguous()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=dict(SAFETENSORS_METADATA))
