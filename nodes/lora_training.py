"""Foveated LoRA post-training on ComfyUI's own training machinery.

Families: those whose adapter names the paper's LoRA targets (FLUX.1, FLUX.2, Chroma: images;
Wan 2.1 / 2.2 text-to-video: clips, an IMAGE batch of frames or a video file each).
What a step does (paper, "Foveated training"; the math is fov_core/training.py):
  fovea   a random circle per sample (a random gaze path per clip, or the sample's saliency /
          box fovea), rasterized by the same FoveationPatch that Apply Foveation installs;
  target  x0 = merge_levels(full encode, encodes of the downsampled image) on that fovea's
          canvas (the Foveated Encode rule), noise with i.i.d. packed tokens, one sigma per
          sample drawn like core Train LoRA (model_sampling.percent_to_sigma(U(0, 1)));
  forward the SAME foveated forward as inference: FoveationPatch.install adds its keyed
          APPLY_MODEL and DIFFUSION_MODEL wrappers, and they are handed to core's guider as
          the call's model_options; the family adapter runs the native blocks on the packed
          strip, with phase-aligned attention. No second forward exists;
  loss    the flow-matching velocity MSE over the packed tokens (packed_velocity_loss).
Everything around it is core's Train LoRA: a force-deepcopied ModelPatcher (the input
model is never touched), core's TrainGuider (prepare_sampling, conds, extra_conds) with a
Sampler that trains instead of sampling, autocast, and comfy.model_management.in_training.
Not core's gradient-checkpointing patch: FLUX blocks update their streams in place, and
torch's non-reentrant checkpoint then recomputes from mutated tensors (wrong gradients);
fov_core.inplace_safe makes every block safe, with or without checkpointing.

LoRA: core's comfy.weight_adapter, not peft. The LoRA is a LoraDiff module per target
Linear (core's training adapter), attached as core Train LoRA's bypass mode does
(f(x) + alpha / rank * up(down(x)), `attach_loras`). It is the better fit here:
  * ComfyUI's LORA_MODEL is a plain dict of tensors in core's LoRA key format
    ("<module>.lora_up.weight", ".lora_down.weight", ".alpha"), the dict Save LoRA writes and
    Load LoRA Model / LoraLoaderModelOnly read (comfy.lora.load_lora). weight_adapter's
    parameter names ARE that format; the saved file loads with no conversion.
  * peft (inject_adapter_in_model) replaces every targeted Linear by a peft LoraLayer that
    wraps it, renaming the weight to "...base_layer.weight" and moving the base forward
    under peft's. ComfyUI addresses weights by name (ModelPatcher patches, weight casting
    and offloading in comfy.ops, LoRA key maps, memory accounting), so a peft-wrapped model
    would need renaming back and forth and would bypass comfy.ops' cast path; its saved
    keys would need converting ("base_model.model.", no alpha key) before ComfyUI reads them.
  * The pack then needs no dependency of its own (requirements.txt stays empty).
Scale: alpha / rank, the same in training (LoraDiff) and when loaded (LoRAAdapter).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.nn.attention import SDPBackend, sdpa_kernel

import comfy.lora
import comfy.model_management as mm
import comfy.model_patcher
import comfy.patcher_extension as pe
import comfy.samplers
import comfy.utils
import folder_paths
from comfy.weight_adapter.lora import LoraDiff, LoRAAdapter

from ..fov_core.inplace_safe import block_forward
from ..fov_core import (
    LevelPolicy, TrainingFoveae, boxes_in_fitted_image, clip_frames, fit_image, merge_levels, min_side_px,
    packed_velocity_loss, plan_fit, saliency_gaze, saliency_path,
)
from .adapters import ADAPTERS, adapter_for
from .fovea_nodes import BOX_EXPAND, regions_from_boxes
from .foveation import WRAPPER_KEY, FoveationPatch
from .latent_nodes import encode_low_levels

log = logging.getLogger("foveated")

MODEL_PREFIX = "diffusion_model."
MARKER = "foveated_lora"  # safetensors metadata key every file this trainer writes carries
NO_FILE = "[None]"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi")  # clips for a video model (PyAV, as Load Video)
SIGMA_MIN = 1e-3  # sigmas are drawn in [SIGMA_MIN, 1]: the velocity error divides by sigma
DTYPES = ("bf16", "fp32", "none")
TRAIN_ADAPTERS = tuple(a for a in ADAPTERS if a.lora_targets)  # the families whose LoRA targets are known
TRAIN_SUPPORTED = ("FLUX.1 (dev, schnell, Kontext), FLUX.2 ([klein], [dev]), Chroma and Wan 2.1 / 2.2 text-to-video "
                   "(not yet Qwen-Image, Z-Image or HunyuanVideo)")


# ----------------------------------------------------------------------------- inputs
def supported_adapter(model):
    """The family adapter class, or a clear error naming the families the trainer supports
    (TRAIN_ADAPTERS, a subset of Apply Foveation's)."""
    try:
        adapter_cls = adapter_for(model)
    except ValueError:
        adapter_cls = None
    if adapter_cls not in TRAIN_ADAPTERS:
        dm = getattr(getattr(model, "model", None), "diffusion_model", None)
        kind = type(dm).__name__ if dm is not None else type(model).__name__
        raise ValueError(f"Train Foveated LoRA does not support this model ({kind}). Supported families: "
                         f"{TRAIN_SUPPORTED}.")
    dm = model.model.diffusion_model
    prm = getattr(dm, "params", dm)  # FLUX / Chroma: params.in_channels; Wan: in_dim / out_dim
    ins = getattr(prm, "in_channels", getattr(prm, "in_dim", None))
    outs = getattr(prm, "out_channels", getattr(prm, "out_dim", None))
    if ins != outs:
        raise ValueError("Train Foveated LoRA trains text-to-image and text-to-video models; this model takes extra "
                         "input channels (an inpainting model such as FLUX.1 Fill, or Wan image-to-video) and is not "
                         "supported.")
    return adapter_cls


def check_vae(model, vae, token_px: int):
    want = getattr(model.model.latent_format, "latent_channels", None)
    have = getattr(vae, "latent_channels", None)
    if want is not None and have is not None and want != have:
        raise ValueError(f"the VAE makes {have}-channel latents but the model expects {want}: connect the model's "
                         f"own VAE")
    ds = vae.spacial_compression_encode()
    if not isinstance(ds, int) or token_px % ds:
        raise ValueError(f"this VAE compresses by {ds} px but the model's tokens are {token_px} px: connect the "
                         f"model's own VAE")


def parse_targets(text: str, defaults: tuple) -> tuple:
    items = tuple(t.strip() for t in (text or "").replace("\n", ",").split(",") if t.strip())
    return items or defaults


def target_modules(diffusion_model, patterns, defaults: tuple) -> list:
    """Names (inside the diffusion model) of the Linear layers a LoRA goes on: a name matches
    a pattern when it equals it or ends with "." + pattern (peft's rule). defaults: the
    family's targets, named in the error."""
    names, unmatched = [], []
    linears = [(n, m) for n, m in diffusion_model.named_modules()
               if isinstance(m, torch.nn.Linear) and hasattr(m, "weight_function")]
    for pat in patterns:
        hit = [n for n, _ in linears if n == pat or n.endswith("." + pat)]
        if not hit:
            unmatched.append(pat)
        names.extend(n for n in hit if n not in names)
    if unmatched:
        raise ValueError(f"target_modules {unmatched} match no Linear layer of this model; use names such as "
                         f"{', '.join(defaults)} (leave the field empty for these defaults)")
    return names


def loras_root() -> str:
    return folder_paths.get_folder_paths("loras")[0]


def _within(directory: str, target: str) -> bool:
    directory, target = os.path.realpath(directory), os.path.realpath(target)
    try:
        return os.path.commonpath((directory, target)) == directory
    except ValueError:
        return False


def resolve_save_path(name: str) -> str:
    """The file a LoRA named `name` is saved to: inside ComfyUI's loras folder, never outside."""
    name = (name or "").strip()
    if not name:
        raise ValueError("lora_name is empty: give a file name inside ComfyUI's loras folder, e.g. "
                         "foveated/my_lora")
    if "\0" in name or os.path.isabs(name) or os.path.splitdrive(name)[0] or name.startswith(("/", "\\")):
        raise ValueError(f"lora_name {name!r} must be a path relative to ComfyUI's loras folder")
    if ".." in name.replace("\\", "/").split("/"):
        raise ValueError(f"lora_name {name!r} escapes ComfyUI's loras folder ('..' is not allowed)")
    if not name.lower().endswith(".safetensors"):
        name += ".safetensors"
    root = loras_root()
    path = os.path.abspath(os.path.join(root, name))
    if not _within(root, path):
        raise ValueError(f"lora_name {name!r} resolves outside ComfyUI's loras folder ({root})")
    return path


def read_metadata(path: str) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 - not a safetensors file: no metadata
        return {}


def check_overwrite(path: str, resume_path: Optional[str]) -> None:
    """A file this trainer did not write is never overwritten."""
    if os.path.exists(path) and path != resume_path and MARKER not in read_metadata(path):
        raise ValueError(f"{path} exists and was not written by Train Foveated LoRA; choose another lora_name "
                         f"(the trainer only overwrites its own files)")


def load_resume(name: str):
    """(state dict, metadata, full path) of a LoRA in the loras folder, or (None, {}, None)."""
    if not name or name == NO_FILE:
        return None, {}, None
    path = folder_paths.get_full_path("loras", name)
    if path is None:
        raise ValueError(f"resume_from: {name!r} is not in ComfyUI's loras folder")
    return comfy.utils.load_torch_file(path, safe_load=True), read_metadata(path), os.path.realpath(path)


def input_folders() -> list:
    """Sub-folders of ComfyUI's input directory (relative, '/'-separated)."""
    root = folder_paths.get_input_directory()
    out = []
    for here, dirs, _ in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(here, root)
        if rel != ".":
            out.append(rel.replace(os.sep, "/"))
    return out


def _load_video(path: str) -> torch.Tensor:
    """A video file's frames (T, H, W, 3), decoded as core Load Video does."""
    from comfy_api.latest import InputImpl

    try:
        frames = InputImpl.VideoFromFile(path).get_components().images
    except Exception as e:  # noqa: BLE001 - PyAV's errors: say which file
        raise ValueError(f"cannot read the video {os.path.basename(path)}: {e}") from e
    return frames[..., :3].float()


def load_folder(folder: str, video: bool = False):
    """Images (H, W, 3), or for a video model clips (T, H, W, 3) from video files and images
    (one frame each), and their caption texts (None where a caption file is missing) from a
    folder inside ComfyUI's input directory, in file-name order."""
    root = folder_paths.get_input_directory()
    path = os.path.abspath(os.path.join(root, folder))
    if not _within(root, path):
        raise ValueError(f"image_folder {folder!r} is outside ComfyUI's input directory")
    if not os.path.isdir(path):
        raise ValueError(f"image_folder {folder!r} does not exist in ComfyUI's input directory")
    kinds = IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if video else ())
    files = sorted(f for f in os.listdir(path) if f.lower().endswith(kinds))
    images, captions = [], []
    for f in files:
        if f.lower().endswith(VIDEO_EXTENSIONS):
            images.append(_load_video(os.path.join(path, f)))
        else:
            with Image.open(os.path.join(path, f)) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
                img = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
            images.append(img[None] if video else img)
        cap = os.path.join(path, os.path.splitext(f)[0] + ".txt")
        captions.append(open(cap, encoding="utf-8").read().strip() if os.path.isfile(cap) else None)
    return images, captions, files


def folder_fingerprint(folder: str) -> str:
    """Names, sizes and times of the folder's files: ComfyUI re-runs the trainer when they
    change, not only when an input does."""
    root = folder_paths.get_input_directory()
    path = os.path.abspath(os.path.join(root, folder))
    if not _within(root, path) or not os.path.isdir(path):
        return f"missing:{folder}"
    entries = []
    for f in sorted(os.listdir(path)):
        st = os.stat(os.path.join(path, f))
        entries.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(entries)


def split_images(image_inputs, video: bool = False) -> list:
    """One (H, W, C) tensor per training image from IMAGE inputs (batches or a list); for a
    video model one (T, H, W, C) clip per IMAGE input (a batch is a clip's frames)."""
    out = []
    for batch in image_inputs or ():
        if batch is None:
            continue
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4:
            raise ValueError(f"images must be IMAGE batches (B, H, W, C), got shape {tuple(batch.shape)}")
        if video:
            out.append(batch[..., :3])
        else:
            out.extend(batch[i, ..., :3] for i in range(batch.shape[0]))
    return out


def trim_clips(clips: list, stride: int) -> list:
    """Every clip cut to the frames the VAE encodes whole (fov_core.clip_frames)."""
    out = []
    for clip in clips:
        keep = clip_frames(clip.shape[0], stride)
        if keep != clip.shape[0]:
            log.info("Train Foveated LoRA: a clip of %d frames trains on its first %d", clip.shape[0], keep)
        out.append(clip[:keep])
    return out


def flatten_conditioning(cond_inputs) -> list:
    """The CONDITIONING entries ([tensor, dict]) of the inputs, one per caption."""
    out = []
    for cond in cond_inputs or ():
        if cond is None:
            continue
        for entry in cond:
            t, extra = entry[0], entry[1]
            if t.shape[0] > 1:  # a batch of captions: one entry each, with their own pooled outputs
                n = t.shape[0]
                out.extend([t[i : i + 1], {k: (v[i : i + 1] if isinstance(v, torch.Tensor) and v.ndim and
                                                v.shape[0] == n else v) for k, v in extra.items()}]
                           for i in range(n))
            else:
                out.append([t, dict(extra)])
    return out


def per_image_boxes(box_inputs, n_images: int) -> list:
    """Per image, its list of BOUNDING_BOX dicts (core RT-DETR gives one list per image)."""
    per = []
    for v in box_inputs or ():
        if v is None:
            continue
        if isinstance(v, dict):
            per.append([v])
        elif isinstance(v, list) and v and all(isinstance(x, list) for x in v):
            per.extend(list(x) for x in v)
        elif isinstance(v, list) and all(isinstance(x, dict) for x in v):
            per.append(list(v))
        else:
            raise ValueError(f"bboxes must be BOUNDING_BOX data (dicts, or one list of dicts per image), got {v!r}")
    if len(per) == 1 and n_images > 1:
        per = per * n_images
    if len(per) != n_images:
        raise ValueError(f"bboxes hold boxes for {len(per)} images but there are {n_images} training images; give "
                         f"one list of boxes per image (e.g. RT-DETR Detect on the same image batch)")
    return per


# ----------------------------------------------------------------------------- dataset
@dataclass
class Sample:
    full: torch.Tensor  # (1, C, h, w) model-space latent of the image (process_latent_in)
    low: dict  # level k -> (1, C, ~h/2^k, ~w/2^k) latent of the image downsampled by 2^k
    cond: int  # index into Dataset.conds


@dataclass
class Dataset:
    samples: list
    conds: list  # CONDITIONING entries
    foveae: TrainingFoveae


def prepare_images(images: list, resolution: int, policy: LevelPolicy, token_px: int, names=None):
    """Fit every image or clip (scale down to resolution^2 pixels a frame, crop to whole
    tokens) and check it holds one coarse block; returns (images, fits)."""
    smallest = min_side_px(policy, token_px)
    fits = []
    for i, img in enumerate(images):
        H, W = int(img.shape[-3]), int(img.shape[-2])
        fit = plan_fit(H, W, resolution, token_px)
        if fit.height < smallest or fit.width < smallest:
            what = names[i] if names else f"image {i}"
            raise ValueError(f"{what} is {W}x{H} px ({fit.width}x{fit.height} px as trained): smaller than one "
                             f"1/{2 ** policy.periphery} periphery block ({smallest}x{smallest} px). Use larger "
                             f"images (or resolution 0 to keep their size), or a finer periphery.")
        fits.append(fit)
    return [fit_image(img, fit) for img, fit in zip(images, fits)], fits


def fixed_regions(mode: str, images: list, fits: list, boxes: Optional[list]) -> tuple:
    """Per image its fixed regions (per clip its GazePath), for the saliency and boxes modes."""
    if mode == "saliency":
        return tuple(saliency_path(img) if img.ndim == 4 and img.shape[0] > 1 else (saliency_gaze(img.reshape(
            img.shape[-3:])),) for img in images)
    if mode == "boxes":
        out = []
        for fit, dicts in zip(fits, boxes):
            regions = regions_from_boxes(dicts, fit.src_w, fit.src_h, BOX_EXPAND) if dicts else []
            out.append(tuple(boxes_in_fitted_image(regions, fit)) or None)
        missing = sum(r is None for r in out)
        if missing:
            log.warning("Train Foveated LoRA: %d of %d images have no box; they train with random circles",
                        missing, len(out))
        return tuple(out)
    return ()


def encode_dataset(model, vae, images: list, policy: LevelPolicy, progress: Optional[Callable] = None):
    """Per image (or clip): the model-space full-resolution latent and the latents of the
    image downsampled by 2^k for every level of the policy (the Foveated Encode rule; a clip's
    frames are downsampled one by one, never in time)."""
    ms = model.model
    out = []
    for i, img in enumerate(images):
        rgb = img[..., :3] if img.ndim == 4 else img[None, ..., :3]
        full = ms.process_latent_in(vae.encode(rgb).float()).cpu()
        low = {k: ms.process_latent_in(z.float()).cpu() for k, z in encode_low_levels(vae, rgb, policy.levels).items()}
        out.append((full.clone(), {k: z.clone() for k, z in low.items()}))
        if progress:
            progress(i + 1, len(images))
    return out


# ----------------------------------------------------------------------------- LoRA
def new_lora(weight: torch.Tensor, rank: int, alpha: float, generator: torch.Generator) -> LoraDiff:
    """Core's LoRA initialisation (LoRAAdapter.create_train: up Kaiming-uniform, down zero, so
    the LoRA starts as an exact no-op), from the trainer's seeded generator."""
    out_dim, in_dim = weight.shape[0], weight.shape[1:].numel()
    up = torch.empty(out_dim, rank, dtype=torch.float32)
    bound = 1.0 / math.sqrt(rank)  # kaiming_uniform_(a=sqrt(5)) on a (out, rank) matrix
    up.uniform_(-bound, bound, generator=generator)
    down = torch.zeros(rank, in_dim, dtype=torch.float32)
    return LoraDiff((up, down, float(alpha), None, None, None))


def resumed_loras(model, sd: dict) -> dict:
    """module name -> LoraDiff for every LoRA the file holds, through ComfyUI's own key
    mapping (so core Train LoRA files and other formats that address whole layers load)."""
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    patches = comfy.lora.load_lora(sd, key_map, log_missing=False)
    out = {}
    for key, adapter in patches.items():
        if not isinstance(key, str) or not isinstance(adapter, LoRAAdapter):
            raise ValueError("resume_from: this LoRA file splits fused layers or is not a plain LoRA; resume from a "
                             "file saved by Train Foveated LoRA (or core Train LoRA)")
        up, down, alpha, mid, dora, _reshape = adapter.weights
        if mid is not None or dora is not None:
            raise ValueError("resume_from: LoCon/DoRA LoRAs cannot be resumed; use a plain LoRA")
        rank = down.shape[0]
        name = key[: -len(".weight")]
        if not name.startswith(MODEL_PREFIX):
            continue
        out[name[len(MODEL_PREFIX):]] = LoraDiff((up.float(), down.float(), float(rank if alpha is None else alpha),
                                                  None, None, None))
    if not out:
        raise ValueError("resume_from: the file holds no LoRA for this model's layers (another model family?)")
    return out


def lora_state_dict(loras: dict) -> dict:
    """Core's LORA_MODEL: the tensors in core's LoRA key format, detached copies on the CPU."""
    sd = {}
    for name, lora in loras.items():
        key = MODEL_PREFIX + name
        sd[f"{key}.lora_up.weight"] = lora.lora_up.weight.detach().float().cpu().clone()
        sd[f"{key}.lora_down.weight"] = lora.lora_down.weight.detach().float().cpu().clone()
        sd[f"{key}.alpha"] = lora.alpha.detach().float().cpu().clone()
    return sd


def save_lora(path: str, sd: dict, metadata: dict) -> None:
    """Write atomically (a cancelled or failed save never leaves a broken file)."""
    import safetensors.torch

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, tmp,
                                metadata={k: str(v) for k, v in metadata.items()})
    os.replace(tmp, path)
    folder_paths.filename_list_cache.pop("loras", None)


# ----------------------------------------------------------------------------- training
@dataclass
class TrainSettings:
    steps: int
    batch_size: int
    learning_rate: float
    rank: int
    alpha: float
    seed: int
    targets: tuple = ()  # empty: the family's (adapter.lora_targets)
    gradient_checkpointing: bool = True
    training_dtype: str = "bf16"
    save_every: int = 0


@dataclass
class TrainResult:
    lora: dict
    losses: list
    steps_done: int  # steps of this run that completed
    total_steps: int  # including the resumed LoRA's
    saved: Optional[str] = None


# Every sample draws a new fovea, so each step's attention calls have new sequence lengths.
# cuDNN's SDPA builds an execution plan for every new shape: profiled on an H100 (FLUX.2
# [klein] width, 1024²), building them took most of a foveated step's host time (1.28 s per
# step vs 0.41 s at full resolution, where the shapes repeat). Flash and memory-efficient
# attention need no plan; math stays as the fallback, so every input still has a kernel.
NEW_SHAPE_EVERY_STEP_SDPA = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@dataclass
class _Run:
    """State shared between the node and the Sampler that trains inside core's guider."""

    mp: object
    adapter_cls: type
    dataset: Dataset
    settings: TrainSettings
    loras: dict
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    dtype: Optional[torch.dtype]
    scaler: Optional[object]
    on_step: Callable
    losses: list = field(default_factory=list)
    done: int = 0
    patches: dict = field(default_factory=dict)
    order: list = field(default_factory=list)
    conds: list = field(default_factory=list)  # the guider's processed conds, one per caption

    def next_index(self) -> int:
        if not self.order:
            self.order = torch.randperm(len(self.dataset.samples), generator=self.generator).tolist()
        return self.order.pop()

    def patch_for(self, index: int):
        fixed = self.dataset.foveae.fixed(index)
        if fixed is None:  # a new random fovea: a new patch (its layout is built once, used once)
            return FoveationPatch(self.dataset.foveae.draw(index, self.generator), self.adapter_cls)
        if index not in self.patches:  # a fixed fovea: layouts, packings and RoPE tables are reused
            self.patches[index] = FoveationPatch(fixed, self.adapter_cls)
        return self.patches[index]

    def sample_loss(self, guider, extra_args, index: int) -> torch.Tensor:
        s = self.dataset.samples[index]
        patch = self.patch_for(index)
        adapter = self.adapter_cls(self.mp)
        grid, p = adapter.token_grid(tuple(s.full.shape))
        packing = patch.packing_for(patch.layout_for(grid), p)
        device = self.mp.load_device
        x0 = merge_levels(packing, s.full, s.low).to(device)
        noise = packing.noise(tuple(x0.shape), generator=self.generator).to(device)
        ms = guider.inner_model.model_sampling
        u = float(torch.rand(1, generator=self.generator))
        sigma = torch.tensor([min(max(float(ms.percent_to_sigma(u)), SIGMA_MIN), 1.0)], device=device)
        xt = ms.noise_scaling(sigma, noise, x0)
        # the foveated forward: Apply Foveation's own wrappers, for this fovea, on this call
        fov = patch.install(self.mp)
        opts = comfy.model_patcher.create_model_options_clone(extra_args["model_options"])
        wrappers = opts.setdefault("transformer_options", {}).setdefault("wrappers", {})
        for kind in (pe.WrappersMP.APPLY_MODEL, pe.WrappersMP.DIFFUSION_MODEL):
            wrappers[kind] = dict(wrappers.get(kind, {}), **{WRAPPER_KEY: fov.get_wrappers(kind, WRAPPER_KEY)})
        guider.conds["positive"] = [self.conds[s.cond]]
        use_autocast = self.dtype is not None and self.dtype != torch.float32
        with torch.autocast(xt.device.type, dtype=self.dtype or torch.float32, enabled=use_autocast):
            x0_pred = guider(xt, sigma, model_options=opts, seed=extra_args.get("seed"))
        return packed_velocity_loss(packing, x0_pred, x0, sigma)

    def train(self, guider, extra_args):
        from comfy_extras.nodes_train import process_cond_list

        guider.conds = process_cond_list(guider.conds)
        self.conds = guider.conds["positive"]
        st = self.settings
        with sdpa_kernel(NEW_SHAPE_EVERY_STEP_SDPA):
            for step in range(st.steps):
                mm.throw_exception_if_processing_interrupted()
                total = 0.0
                for _ in range(st.batch_size):
                    loss = self.sample_loss(guider, extra_args, self.next_index())
                    scaled = loss / st.batch_size
                    (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                    total += float(loss.detach())
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.done = step + 1
                self.losses.append(total / st.batch_size)
                self.on_step(self)


class FoveatedTrainSampler(comfy.samplers.Sampler):
    """A core Sampler that trains: core's guider prepares the model and the conds and hands
    them over, as it does for core Train LoRA's TrainSampler."""

    def __init__(self, run: _Run):
        self.run = run

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        self.run.train(model_wrap, extra_args)
        return torch.zeros_like(latent_image)


USE_BYPASS = True  # core's bypass LoRA while training (False: core's weight wrappers)


def attach_loras(mp, loras: dict) -> list:
    """Attach the trained LoRAs the way core Train LoRA does in its bypass mode: each target
    Linear computes f(x) + (alpha / rank) up(down(x)) (comfy.weight_adapter.bypass), so the
    backward never forms a weight-sized gradient and quantized (fp8) weights stay as they
    are. Returns the injections to inject / eject around training. Without core's bypass
    module (older ComfyUI): weight wrappers, W + (alpha / rank) up @ down, the same function."""
    manager = None
    if USE_BYPASS:
        try:
            from comfy.weight_adapter.bypass import BypassInjectionManager
            manager = BypassInjectionManager()
        except ImportError:
            manager = None
    for name, lora in loras.items():
        key = f"{MODEL_PREFIX}{name}.weight"
        if manager is not None:
            manager.add_adapter(key, lora, strength=1.0)
        else:
            mp.add_weight_wrapper(key, lora)
    return manager.create_injections(mp.model) if manager is not None else []


def patch_blocks(diffusion_model, checkpoint: bool) -> list:
    """Every transformer block (the members of the model's ModuleLists) runs through
    fov_core.inplace_safe: FLUX blocks update their streams in place, which core's
    gradient-checkpointing patch turns into silently wrong gradients."""
    blocks = [b for lst in diffusion_model.children() if isinstance(lst, torch.nn.ModuleList) for b in lst]

    def trainable(block):
        def adapters(m):  # weight-wrapper LoRAs, or the bypass hook's (its forward is a bound method)
            yield from getattr(m, "weight_function", ())
            yield getattr(getattr(m.forward, "__self__", None), "adapter", None)

        return lambda: any(p.requires_grad for m in block.modules() for f in adapters(m)
                           if isinstance(f, torch.nn.Module) for p in f.parameters())

    for b in blocks:
        b.forward = block_forward(b.forward, checkpoint, trainable(b))
    return blocks


def _clone_tree(x):
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, dict):
        return {k: _clone_tree(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_clone_tree(v) for v in x)
    return x


def training_dtype(mp, name: str):
    """(autocast dtype or None, GradScaler or None) for core's training_dtype choices."""
    if name not in DTYPES:
        raise ValueError(f"training_dtype must be one of {list(DTYPES)}, got {name!r}")
    if name == "bf16":
        mp.set_model_compute_dtype(torch.bfloat16)
        return torch.bfloat16, None
    if name == "fp32":
        mp.set_model_compute_dtype(torch.float32)
        return torch.float32, None
    dtype = mp.model.get_dtype()
    if dtype == torch.float16:
        return torch.float16, torch.amp.GradScaler()
    if dtype == torch.float32:
        return torch.float32, None
    return torch.bfloat16, None


def train(model, adapter_cls, dataset: Dataset, settings: TrainSettings, save_path: str, resume_sd: Optional[dict],
          resumed_steps: int, metadata: dict, on_progress: Optional[Callable] = None) -> TrainResult:
    """Train a foveated LoRA; save it to save_path every settings.save_every steps, at the end,
    and, when ComfyUI's cancel (or an error) stops the run, with the last completed step."""
    from comfy_extras.nodes_train import TrainGuider

    gen = torch.Generator().manual_seed(int(settings.seed))
    with torch.inference_mode(False), torch.enable_grad():
        # ComfyUI runs nodes under inference mode: copies are ordinary tensors autograd may save
        dataset = Dataset([Sample(s.full.clone(), {k: z.clone() for k, z in s.low.items()}, s.cond)
                           for s in dataset.samples], _clone_tree(dataset.conds), dataset.foveae)
        mp = model.clone(force_deepcopy=True)  # fresh weights: the input model is never touched
        for kind in list(mp.wrappers):  # an Apply Foveation on the input: each sample brings its own fovea
            mp.remove_wrappers_with_key(kind, WRAPPER_KEY)
        dtype, scaler = training_dtype(mp, settings.training_dtype)
        mp.model.requires_grad_(False).train()
        dm = mp.model.diffusion_model
        modules = dict(dm.named_modules())
        loras = resumed_loras(model, resume_sd) if resume_sd is not None else {}
        for name in target_modules(dm, settings.targets or adapter_cls.lora_targets, adapter_cls.lora_targets):
            if name not in loras:
                loras[name] = new_lora(modules[name].weight, settings.rank, settings.alpha, gen)
        for name, lora in loras.items():
            if name not in modules:
                raise ValueError(f"resume_from: the LoRA has a layer {name} this model lacks (another model?)")
            lora.train().requires_grad_(True)
            lora.alpha.requires_grad_(False)
        injections = attach_loras(mp, loras)
        params = [q for lora in loras.values() for q in lora.parameters() if q.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
        patched = patch_blocks(dm, settings.gradient_checkpointing)

        last_saved = [None]

        def save(run: _Run, reason: str):
            meta = dict(metadata, **{MARKER: "1", "foveated_lora_steps": resumed_steps + run.done,
                                     "foveated_lora_saved": reason})
            save_lora(save_path, lora_state_dict(run.loras), meta)
            last_saved[0] = run.done

        def on_step(run: _Run):
            if settings.save_every and run.done % settings.save_every == 0 and run.done < settings.steps:
                save(run, "checkpoint")
            if on_progress:
                on_progress(run.done, settings.steps, run.losses[-1])

        run = _Run(mp, adapter_cls, dataset, settings, loras, optimizer, gen, dtype, scaler, on_step)
        first = dataset.samples[0].full
        dummy = torch.zeros((1,) + tuple(first.shape[1:]))
        guider = TrainGuider(mp)
        guider.set_conds(dataset.conds)
        try:
            mm.in_training = True
            for injection in injections:
                injection.inject(mp)
            if settings.steps > 0:
                guider.sample(dummy, dummy, FoveatedTrainSampler(run), torch.zeros(1), seed=int(settings.seed))
        except BaseException:
            if run.done and last_saved[0] != run.done:  # keep the last completed step
                save(run, "interrupted")
                log.warning("Train Foveated LoRA stopped after %d of %d steps; saved %s", run.done, settings.steps,
                            save_path)
            raise
        finally:
            mm.in_training = False
            for injection in injections:
                injection.eject(mp)
            for block in patched:
                del block.forward  # the instance attribute; the class's forward is back
        save(run, "final")
        lora = lora_state_dict(loras)
        for lora_mod in loras.values():
            lora_mod.requires_grad_(False)
        del mp, guider, optimizer
        return TrainResult(lora, list(run.losses), run.done, resumed_steps + run.done, save_path)
