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
:func:`bfl_target` mirrors that mapping so tests can check it on their own.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import torch
from safetensors.torch import save_file

__all__ = [
    "PAPER_TARGET_MODULES",
    "PRESETS",
    "SAFETENSORS_METADATA",
    "resolve_config",
    "flux2_linear_shapes",
    "paper_lora_modules",
    "make_paper_style_lora",
    "write_paper_style_lora",
    "bfl_target",
]

#: ``--lora_target_modules`` from the paper's ``configs/train_lora.sh``, in order.
PAPER_TARGET_MODULES: Tuple[str, ...] = (
    "to_q", "to_k", "to_v", "to_out.0",
    "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
    "linear_in", "linear_out", "to_qkv_mlp_proj",
)

#: What ``accelerate.utils.save(..., safe_serialization=True)`` writes.
SAFETENSORS_METADATA: Dict[str, str] = {"format": "pt"}

#: The adapter name PEFT uses by default (``inject_adapter_in_model``).
PEFT_ADAPTER_NAME = "default"

#: Diffusers-side FLUX.2 DiT configs (DiffSynth ``model_configs.py``; mlp_ratio 3.0).
PRESETS: Dict[str, Dict[str, Any]] = {
    "klein-4b": dict(hidden_size=3072, num_layers=5, num_single_layers=20, mlp_ratio=3.0,
                     in_channels=128, joint_attention_dim=7680, guidance_embeds=False),
    "klein-9b": dict(hidden_size=4096, num_layers=8, num_single_layers=24, mlp_ratio=3.0,
                     in_channels=128, joint_attention_dim=12288, guidance_embeds=False),
    "dev": dict(hidden_size=6144, num_layers=8, num_single_layers=48, mlp_ratio=3.0,
                in_channels=128, joint_attention_dim=15360, guidance_embeds=True),
}
PRESETS["klein-base-4b"] = PRESETS["klein-4b"]
PRESETS["klein-base-9b"] = PRESETS["klein-9b"]

_CONFIG_ALIASES = {
    "inner_dim": "hidden_size",
    "depth": "num_layers",
    "depth_single_blocks": "num_single_layers",
    "context_in_dim": "joint_attention_dim",
    "guidance_embed": "guidance_embeds",
}

_STRIP_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "pipe.dit.", "dit.")

ShapeSource = Union[str, Mapping[str, Any]]


def _shape(v: Any) -> Tuple[int, ...]:
    if hasattr(v, "shape"):
        return tuple(int(s) for s in v.shape)
    return tuple(int(s) for s in v)


def _count(keys: Iterable[str], pattern: str) -> int:
    rx = re.compile(pattern)
    idx = [int(m.group(1)) for k in keys for m in [rx.match(k)] if m]
    return max(idx) + 1 if idx else 0


def resolve_config(src: ShapeSource) -> Dict[str, Any]:
    """Return the diffusers-side DiT config from the input.

    The input can be one of:

    * a preset name (``"klein-4b"``, ``"klein-9b"``, ``"dev"``);
    * a config mapping with ``hidden_size`` (or ``inner_dim``). The other keys
      may use diffusers or ComfyUI names: ``num_layers``/``depth``,
      ``num_single_layers``/``depth_single_blocks``, ``mlp_ratio``,
      ``in_channels``, ``joint_attention_dim``/``context_in_dim``. A ComfyUI
      ``unet_config`` works here too;
    * a state dict, or a mapping of key to shape, in BFL/ComfyUI layout
      (``double_blocks.N.img_attn.qkv.weight`` ...) or diffusers layout
      (``transformer_blocks.N.attn.to_q.weight`` ...). A ``diffusion_model.``
      or ``transformer.`` prefix is ignored, so ``model.model.state_dict()`` of a
      ComfyUI ModelPatcher works as is.
    """
    if isinstance(src, str):
        key = src.lower().replace("_", "-").replace(" ", "-")
        if key not in PRESETS:
            raise KeyError(f"unknown preset {src!r}; known: {sorted(PRESETS)}")
        return dict(PRESETS[key])
    if not isinstance(src, Mapping):
        raise TypeError(f"expected a preset name, config mapping or state dict, got {type(src).__name__}")

    if "hidden_size" in src or "inner_dim" in src:
        cfg: Dict[str, Any] = {}
        for k, v in src.items():
            cfg[_CONFIG_ALIASES.get(k, k)] = v
        out = dict(hidden_size=int(cfg["hidden_size"]),
                   num_layers=int(cfg.get("num_layers", 0)),
                   num_single_layers=int(cfg.get("num_single_layers", 0)),
                   mlp_ratio=float(cfg.get("mlp_ratio", 3.0)),
                   in_channels=int(cfg.get("in_channels", 128)),
                   joint_attention_dim=int(cfg.get("joint_attention_dim", 7680)),
                   guidance_embeds=bool(cfg.get("guidance_embeds", False)))
        return out

    shapes: Dict[str, Tuple[int, ...]] = {}
    for k, v in src.items():
        for p in _STRIP_PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
                break
        shapes[k] = _shape(v)

    if "double_blocks.0.img_attn.qkv.weight" in shapes or "single_blocks.0.linear1.weight" in shapes:
        # BFL / ComfyUI layout.
        if "img_in.weight" in shapes:
            H, cin = shapes["img_in.weight"]
        elif "double_blocks.0.img_attn.qkv.weight" in shapes:
            H, cin = shapes["double_blocks.0.img_attn.qkv.weight"][1], 128
        else:
            H, cin = shapes["single_blocks.0.linear1.weight"][1], 128
        if "double_blocks.0.img_mlp.2.weight" in shapes:
            M = shapes["double_blocks.0.img_mlp.2.weight"][1]
        elif "single_blocks.0.linear2.weight" in shapes:
            M = shapes["single_blocks.0.linear2.weight"][1] - H
        else:
            M = int(3.0 * H)
        ctx = shapes.get("txt_in.weight", (H, 7680))[1]
        return dict(hidden_size=H,
                    num_layers=_count(shapes, r"double_blocks\.(\d+)\."),
                    num_single_layers=_count(shapes, r"single_blocks\.(\d+)\."),
                    mlp_ratio=M / H, in_channels=cin, joint_attention_dim=ctx,
                    guidance_embeds="guidance_in.in_layer.weight" in shapes)

    if "transformer_blocks.0.attn.to_q.weight" in shapes or \
            "single_transformer_blocks.0.attn.to_qkv_mlp_proj.weight" in shapes:
        if "x_embedder.weight" in shapes:
            H, cin = shapes["x_embedder.weight"]
        elif "transformer_blocks.0.attn.to_q.weight" in shapes:
            H, cin = shapes["transformer_blocks.0.attn.to_q.weight"][1], 128
        else:
            H, cin = shapes["single_transformer_blocks.0.attn.to_qkv_mlp_proj.weight"][1], 128
        if "transformer_blocks.0.ff.linear_out.weight" in shapes:
            M = shapes["transformer_blocks.0.ff.linear_out.weight"][1]
        elif "single_transformer_blocks.0.attn.to_out.weight" in shapes:
            M = shapes["single_transformer_blocks.0.attn.to_out.weight"][1] - H
        else:
            M = int(3.0 * H)
        ctx = shapes.get("context_embedder.weight", (H, 7680))[1]
        return dict(hidden_size=H,
                    num_layers=_count(shapes, r"transformer_blocks\.(\d+)\."),
                    num_single_layers=_count(shapes, r"single_transformer_blocks\.(\d+)\."),
                    mlp_ratio=M / H, in_channels=cin, joint_attention_dim=ctx,
                    guidance_embeds="time_guidance_embed.guidance_embedder.linear_1.weight" in shapes)

    raise ValueError("could not recognise the mapping as a FLUX.2 config or state dict "
                     "(no hidden_size, no double_blocks.0.img_attn.qkv.weight, "
                     "no transformer_blocks.0.attn.to_q.weight)")


def flux2_linear_shapes(src: ShapeSource) -> Dict[str, Tuple[int, int]]:
    """Return every nn.Linear of the diffusers-named FLUX.2 DiT as ``name -> (out, in)``.

    The names are those of ``Flux2DiTFoveated`` (and of DiffSynth's ``Flux2DiT``),
    relative to ``pipe.dit``. They are the module names PEFT sees.
    """
    c = resolve_config(src)
    H = c["hidden_size"]
    M = int(H * c["mlp_ratio"])
    out: Dict[str, Tuple[int, int]] = {
        "time_guidance_embed.timestep_embedder.linear_1": (H, 256),
        "time_guidance_embed.timestep_embedder.linear_2": (H, H),
        "double_stream_modulation_img.linear": (6 * H, H),
        "double_stream_modulation_txt.linear": (6 * H, H),
        "single_stream_modulation.linear": (3 * H, H),
        "x_embedder": (H, c["in_channels"]),
        "context_embedder": (H, c["joint_attention_dim"]),
    }
    if c["guidance_embeds"]:
        out["time_guidance_embed.guidance_embedder.linear_1"] = (H, 256)
        out["time_guidance_embed.guidance_embedder.linear_2"] = (H, H)
    for i in range(c["num_layers"]):
        p = f"transformer_blocks.{i}"
        for n in ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"):
            out[f"{p}.attn.{n}"] = (H, H)
        for ff in ("ff", "ff_context"):
            out[f"{p}.{ff}.linear_in"] = (2 * M, H)
            out[f"{p}.{ff}.linear_out"] = (H, M)
    for i in range(c["num_single_layers"]):
        p = f"single_transformer_blocks.{i}"
        out[f"{p}.attn.to_qkv_mlp_proj"] = (3 * H + 2 * M, H)
        out[f"{p}.attn.to_out"] = (H, H + M)
    out["norm_out.linear"] = (2 * H, H)
    out["proj_out"] = (c["in_channels"], H)
    return out


def _peft_matches(name: str, targets: Union[str, Sequence[str]]) -> bool:
    # peft/tuners/tuners_utils.py::check_target_module_exists
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return name in targets or any(name.endswith("." + t) for t in targets)


def paper_lora_modules(src: ShapeSource,
                       target_modules: Union[str, Sequence[str]] = PAPER_TARGET_MODULES,
                       include_single_to_out: bool = False) -> Dict[str, Tuple[int, int]]:
    """Return the adapted Linears as ``name -> (out, in)``, chosen by PEFT's matching rule.

    ``include_single_to_out=True`` adds ``single_transformer_blocks.N.attn.to_out``
    as DiffSynth's own klein example does. The paper's files do not have it.
    """
    targets: Union[str, Sequence[str]] = target_modules
    if include_single_to_out and not isinstance(targets, str):
        c = resolve_config(src)
        targets = list(targets) + [f"single_transformer_blocks.{i}.attn.to_out"
                                   for i in range(c["num_single_layers"])]
    return {n: s for n, s in flux2_linear_shapes(src).items() if _peft_matches(n, targets)}


def make_paper_style_lora(src: ShapeSource, rank: int = 4, seed: int = 0, *,
                          dtype: torch.dtype = torch.bfloat16,
                          target_modules: Union[str, Sequence[str]] = PAPER_TARGET_MODULES,
                          include_single_to_out: bool = False,
                          magnitude: float = 1.0) -> Dict[str, torch.Tensor]:
    """Build the LoRA state dict in memory; it is what :func:`write_paper_style_lora` saves.

    A and B are both random and non-zero, like a trained adapter (PEFT starts B
    at zero). ``A ~ N(0, 1/in)`` and ``B ~ N(0, magnitude^2 / r)``, so with
    ``magnitude=1`` each entry of B@A has a standard deviation of about 1/sqrt(in).
    """
    gen = torch.Generator().manual_seed(int(seed))
    sd: Dict[str, torch.Tensor] = {}
    for name, (n_out, n_in) in paper_lora_modules(src, target_modules, include_single_to_out).items():
        a = torch.randn(rank, n_in, generator=gen) / math.sqrt(n_in)
        b = torch.randn(n_out, rank, generator=gen) * (magnitude / math.sqrt(rank))
        sd[f"{name}.lora_A.{PEFT_ADAPTER_NAME}.weight"] = a.to(dtype).contiguous()
        sd[f"{name}.lora_B.{PEFT_ADAPTER_NAME}.weight"] = b.to(dtype).contiguous()
    return sd


def write_paper_style_lora(path, model_state_dict_shapes_or_config: ShapeSource, rank: int = 4,
                           seed: int = 0, **kwargs) -> Dict[str, torch.Tensor]:
    """Write a synthetic LoRA in the paper's saved format to ``path`` (safetensors).

    ``model_state_dict_shapes_or_config`` can be a preset name, a config mapping or
    a (BFL or diffusers) state dict / shape mapping; see :func:`resolve_config`.
    Keyword arguments go to :func:`make_paper_style_lora` (``dtype``,
    ``target_modules``, ``include_single_to_out``, ``magnitude``). Returns the
    tensors written.
    """
    sd = make_paper_style_lora(model_state_dict_shapes_or_config, rank=rank, seed=seed, **kwargs)
    save_file(sd, str(path), metadata=dict(SAFETENSORS_METADATA))
    return sd


def bfl_target(module_name: str, hidden_size: int) -> Tuple[str, Optional[Tuple[int, int, int]]]:
    """Return the BFL/ComfyUI weight a diffusers-named LoRA module patches in ComfyUI.

    The result is ``(key, (dim, start, length))``, or ``(key, None)`` when the
    whole weight is patched. ``key`` has no ``diffusion_model.`` prefix. This
    restates ComfyUI's ``comfy.utils.flux_to_diffusers`` (ComfyUI is not
    imported) so tests can check it.
    """
    H = int(hidden_size)
    m = re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)", module_name)
    if m:
        i, rest = m.group(1), m.group(2)
        b = f"double_blocks.{i}"
        qkv = {"attn.to_q": ("img_attn.qkv", 0), "attn.to_k": ("img_attn.qkv", 1), "attn.to_v": ("img_attn.qkv", 2),
               "attn.add_q_proj": ("txt_attn.qkv", 0), "attn.add_k_proj": ("txt_attn.qkv", 1),
               "attn.add_v_proj": ("txt_attn.qkv", 2)}
        if rest in qkv:
            tgt, j = qkv[rest]
            return f"{b}.{tgt}.weight", (0, j * H, H)
        whole = {"attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj",
                 "ff.linear_in": "img_mlp.0", "ff.linear_out": "img_mlp.2",
                 "ff_context.linear_in": "txt_mlp.0", "ff_context.linear_out": "txt_mlp.2"}
        if rest in whole:
            return f"{b}.{whole[rest]}.weight", None
    m = re.fullmatch(r"single_transformer_blocks\.(\d+)\.(.+)", module_name)
    if m:
        i, rest = m.group(1), m.group(2)
        b = f"single_blocks.{i}"
        if rest == "attn.to_qkv_mlp_proj":
            return f"{b}.linear1.weight", None
        if rest == "attn.to_out":
            return f"{b}.linear2.weight", None
    raise KeyError(f"no BFL mapping known for {module_name!r}")
