"""Train Foveated LoRA: the node (inputs, checks, progress); the work is in lora_training.py."""
from __future__ import annotations

import time

import comfy.utils
import folder_paths
from comfy_api.latest import io, ui

from ..fov_core import FOVEA_MODES, TrainingFoveae, check_fovea_mode
from . import lora_training as lt
from .fovea_nodes import PERIPHERY

LORA_MODEL = io.Custom("LORA_MODEL")  # core Train LoRA's types: Save LoRA, Load LoRA Model, Plot Loss Graph
LOSS_MAP = io.Custom("LOSS_MAP")
# the frontend gives every "seed" widget a control; "fixed": queueing again must not retrain
SEED_CONTROL = getattr(getattr(io, "ControlAfterGenerate", None), "fixed", True)
PROGRESS_TEXT_INTERVAL = 0.5  # seconds between loss read-outs on the node


def _one(v):
    """is_input_list: every input arrives as a list; widgets as a list of one value."""
    return v[0] if isinstance(v, list) and v else v


class TrainFoveatedLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrainFoveatedLoRA",
            display_name="Train Foveated LoRA",
            category="model/training",
            description="Post-train a foveated LoRA (the paper's recipe) on your own images (FLUX.1, FLUX.2, Chroma) "
                        "or clips (Wan text-to-video): each sample gets a random fovea (a random gaze path for a "
                        "clip); the target is the full-resolution encode inside it and the encode of the "
                        "downsampled image outside; the loss is the flow-matching velocity error over the packed "
                        "tokens of the same foveated forward Apply Foveation runs. Gives core's LORA_MODEL (Load "
                        "LoRA Model, Save LoRA) and saves a file LoraLoaderModelOnly loads.",
            search_aliases=["foveated lora", "train lora", "foveated training"],
            is_input_list=True,
            inputs=[
                io.Model.Input("model", tooltip="The FLUX.1, FLUX.2, Chroma or Wan text-to-video model to train a LoRA "
                                                "for (without Apply Foveation: every sample brings its own fovea)."),
                io.Vae.Input("vae", tooltip="The model's VAE: encodes every image at full resolution and "
                                            "downsampled by 2 (and 4), the paper's training targets."),
                io.Combo.Input("image_folder", options=[lt.NO_FILE] + lt.input_folders(), default=lt.NO_FILE,
                               tooltip="A folder inside ComfyUI's input directory with the training images "
                                       "(png, jpg, webp; for Wan also clips: mp4, webm, mov, mkv) and, next to "
                                       "each, a caption file of the same name (.txt), encoded with the clip input. "
                                       "[None]: use the images input."),
                io.String.Input("lora_name", default="foveated/foveated_lora",
                                tooltip="File name inside ComfyUI's loras folder the LoRA is saved to (.safetensors "
                                        "is added); checkpoints and the state at a cancel go there too. Paths "
                                        "outside the loras folder are refused."),
                io.Int.Input("steps", default=1000, min=0, max=1000000,
                             tooltip="Optimizer steps (the paper: 10k at batch 8). 0 saves the initial "
                                     "(no-op) or resumed LoRA unchanged."),
                io.Int.Input("batch_size", default=1, min=1, max=256,
                             tooltip="Samples per optimizer step, each with its own fovea (run one after the "
                                     "other, gradients averaged)."),
                io.Float.Input("learning_rate", default=1e-4, min=1e-7, max=1.0, step=1e-6,
                               tooltip="AdamW learning rate (the paper: 1e-4)."),
                io.Int.Input("rank", default=32, min=1, max=512, tooltip="LoRA rank (the paper: 32)."),
                io.Float.Input("alpha", default=32.0, min=0.01, max=4096.0, step=0.5,
                               tooltip="LoRA alpha; the LoRA is scaled by alpha / rank (the paper: alpha = rank)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=SEED_CONTROL,
                             tooltip="Seed of the LoRA initialisation, the foveae, the noise, the timesteps and "
                                     "the image order."),
                io.Combo.Input("fovea_mode", options=list(FOVEA_MODES), default=FOVEA_MODES[0],
                               tooltip="Where the full-resolution region lies in each sample. random circles: the "
                                       "paper's fov_random (center within 0.3 of the image center, radius 0.2-0.5 "
                                       "of the half-diagonal; on a clip it stays put). saliency: each image's "
                                       "salient region (spectral residual, the paper's rule; a clip's follows it "
                                       "through the clip). boxes (images): each image's boxes (bboxes input). "
                                       "random gaze paths (clips, the paper's video recipe): such circles at the "
                                       "first, middle and last frame, interpolated."),
                io.Combo.Input("periphery", options=list(PERIPHERY), default="1/2 resolution",
                               tooltip="Resolution of the tokens outside the fovea; train with the periphery you "
                                       "will generate with."),
                io.Int.Input("resolution", default=1024, min=0, max=8192, step=16,
                             tooltip="Images (clip frames) larger than resolution x resolution pixels are scaled "
                                     "down to that area (aspect kept); every image is center-cropped to whole "
                                     "tokens (16 px; Wan 2.2 5B 32 px). 0 keeps the sizes. Clips keep 1 + 4k "
                                     "frames, at most 81."),
                io.String.Input("target_modules", default="",
                                tooltip="Linear layers that get a LoRA, comma separated, matched by name suffix. "
                                        "Empty: the paper's targets for the model's family (FLUX.1 / FLUX.2 / "
                                        "Chroma: img_attn.qkv, img_attn.proj, txt_attn.qkv, txt_attn.proj, "
                                        "img_mlp.0, img_mlp.2, txt_mlp.0, txt_mlp.2, linear1; Wan: q, k, v, o, "
                                        "ffn.0, ffn.2)."),
                io.Boolean.Input("gradient_checkpointing", default=True,
                                 tooltip="Recompute each block in the backward pass: much less memory, about a "
                                         "third slower."),
                io.Combo.Input("training_dtype", options=list(lt.DTYPES), default="bf16",
                               tooltip="Compute dtype of the model while training (LoRA weights stay fp32). none: "
                                       "the model's own dtype (fp16 uses a gradient scaler)."),
                io.Int.Input("save_every", default=250, min=0, max=1000000,
                             tooltip="Also save the LoRA file every this many steps (0: only at the end). A cancel "
                                     "saves the last completed step."),
                io.Combo.Input("resume_from", options=[lt.NO_FILE] + folder_paths.get_filename_list("loras"),
                               default=lt.NO_FILE,
                               tooltip="Continue training this LoRA (e.g. the file a cancelled run saved); its "
                                       "layers keep their rank and alpha. [None]: start a new LoRA."),
                io.Image.Input("images", optional=True,
                               tooltip="Training images (an IMAGE batch, or a list of images of any sizes). For "
                                       "Wan, each IMAGE batch is one clip's frames (e.g. Get Video Components); a "
                                       "list of batches is several clips. Use this or image_folder."),
                io.Conditioning.Input("conditioning", optional=True,
                                      tooltip="Captions: one CONDITIONING per image (a list, or a batch), or one for "
                                              "all images. Takes precedence over caption files."),
                io.Clip.Input("clip", optional=True,
                              tooltip="Text encoder for the caption files of image_folder."),
                io.BoundingBox.Input("bboxes", optional=True, force_input=True,
                                     tooltip="fovea_mode boxes: the boxes of each image (e.g. RT-DETR Detect on the "
                                             "same images), in that image's pixels."),
            ],
            outputs=[
                LORA_MODEL.Output(display_name="lora", tooltip="The trained LoRA (core's LORA_MODEL): Load LoRA "
                                                                "Model applies it, Save LoRA writes it."),
                LOSS_MAP.Output(display_name="loss_map", tooltip="Loss per step, for core's Plot Loss Graph."),
                io.Int.Output(display_name="steps", tooltip="Total steps, including a resumed LoRA's."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def fingerprint_inputs(cls, image_folder=None, **kwargs):
        folder = _one(image_folder)
        return lt.folder_fingerprint(folder) if folder and folder != lt.NO_FILE else ""

    @classmethod
    def execute(cls, model, vae, image_folder, lora_name, steps, batch_size, learning_rate, rank, alpha, seed,
                fovea_mode, periphery, resolution, target_modules, gradient_checkpointing, training_dtype,
                save_every, resume_from, images=None, conditioning=None, clip=None, bboxes=None) -> io.NodeOutput:
        model, vae, clip = _one(model), _one(vae), _one(clip)
        (image_folder, lora_name, steps, batch_size, learning_rate, rank, alpha, seed, fovea_mode, periphery,
         resolution, target_modules, gradient_checkpointing, training_dtype, save_every, resume_from) = map(
            _one, (image_folder, lora_name, steps, batch_size, learning_rate, rank, alpha, seed, fovea_mode,
                   periphery, resolution, target_modules, gradient_checkpointing, training_dtype, save_every,
                   resume_from))

        # --- every check before any work
        adapter_cls = lt.supported_adapter(model)
        adapter = adapter_cls(model)
        video = adapter_cls.video
        lt.check_vae(model, vae, adapter.token_px)
        if periphery not in PERIPHERY:
            raise ValueError(f"periphery must be one of {list(PERIPHERY)}, got {periphery!r}")
        check_fovea_mode(fovea_mode, video)
        policy = PERIPHERY[periphery](2.0)
        targets = lt.parse_targets(target_modules, adapter_cls.lora_targets)
        lt.target_modules(model.model.diffusion_model, targets, adapter_cls.lora_targets)
        save_path = lt.resolve_save_path(lora_name)
        resume_sd, resume_meta, resume_path = lt.load_resume(resume_from)
        lt.check_overwrite(save_path, resume_path)

        pictures = lt.split_images(images, video)
        names, folder_captions = None, None
        if image_folder and image_folder != lt.NO_FILE:
            if pictures:
                raise ValueError("give the training images either as the images input or as image_folder, not both")
            pictures, folder_captions, names = lt.load_folder(image_folder, video)
            if not pictures:
                kinds = lt.IMAGE_EXTENSIONS + (lt.VIDEO_EXTENSIONS if video else ())
                raise ValueError(f"image_folder {image_folder!r} holds no training files "
                                 f"({', '.join(k[1:] for k in kinds)})")
        if not pictures:
            raise ValueError("no training images: connect an IMAGE batch to images, or choose an image_folder")
        if video:
            pictures = lt.trim_clips(pictures, adapter.frame_stride)
        n = len(pictures)
        conds = lt.flatten_conditioning(conditioning)
        if conds:
            if len(conds) not in (1, n):
                raise ValueError(f"{len(conds)} captions (CONDITIONING) for {n} images: give one per image, or one "
                                 f"for all")
        elif folder_captions is not None:
            missing = [nm for nm, c in zip(names, folder_captions) if c is None]
            if missing:
                raise ValueError(f"{len(missing)} of {n} images have no caption file (.txt of the same name), e.g. "
                                 f"{missing[0]}; add them, or connect conditioning")
            if clip is None:
                raise ValueError("image_folder captions need a text encoder: connect the clip input")
        else:
            raise ValueError(f"no captions for the {n} images: connect conditioning (one per image, or one for all)")
        boxes = None
        if fovea_mode == "boxes":
            if not bboxes or all(b is None for b in bboxes):
                raise ValueError("fovea_mode boxes needs the bboxes input (e.g. RT-DETR Detect on the same images)")
            boxes = lt.per_image_boxes(bboxes, n)
        pictures, fits = lt.prepare_images(pictures, resolution, policy, adapter.token_px, names)

        # --- data: captions, fixed foveae, encodes
        if not conds:
            for text in folder_captions:
                conds.extend(lt.flatten_conditioning([clip.encode_from_tokens_scheduled(clip.tokenize(text))]))
        cond_index = list(range(n)) if len(conds) == n else [0] * n
        foveae = TrainingFoveae(fovea_mode, policy, lt.fixed_regions(fovea_mode, pictures, fits, boxes),
                                frames=tuple(int(c.shape[0]) for c in pictures) if video else ())
        encoded = lt.encode_dataset(model, vae, pictures, policy)
        dataset = lt.Dataset([lt.Sample(full, low, ci) for (full, low), ci in zip(encoded, cond_index)], conds,
                             foveae)

        # --- training
        settings = lt.TrainSettings(steps=int(steps), batch_size=int(batch_size), learning_rate=float(learning_rate),
                                    rank=int(rank), alpha=float(alpha), seed=int(seed), targets=targets,
                                    gradient_checkpointing=bool(gradient_checkpointing),
                                    training_dtype=training_dtype, save_every=int(save_every))
        metadata = {"format": "pt", "foveated_lora_family": adapter_cls.name, "foveated_lora_periphery": periphery,
                    "foveated_lora_fovea_mode": fovea_mode, "foveated_lora_targets": ",".join(targets)}
        resumed_steps = int(resume_meta.get("foveated_lora_steps", 0) or 0) if resume_sd is not None else 0
        pbar = comfy.utils.ProgressBar(max(1, settings.steps))
        node_id = cls.hidden.unique_id if cls.hidden is not None else None
        last_text = [0.0]

        def progress(done, total, loss):
            pbar.update_absolute(done, max(1, total))
            now = time.monotonic()
            if node_id is not None and (now - last_text[0] >= PROGRESS_TEXT_INTERVAL or done == total):
                last_text[0] = now
                _progress_text(f"step {done}/{total}  loss {loss:.4f}", node_id)

        result = lt.train(model, adapter_cls, dataset, settings, save_path, resume_sd, resumed_steps, metadata,
                          progress)
        last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
        text = f"{result.total_steps} steps{last}; saved {result.saved}"
        return io.NodeOutput(result.lora, {"loss": result.losses}, result.total_steps, ui=ui.PreviewText(text))


def _progress_text(text: str, node_id) -> None:
    try:
        from server import PromptServer
    except ImportError:  # no server (scripts)
        return
    srv = getattr(PromptServer, "instance", None)
    if srv is not None and hasattr(srv, "send_progress_text"):
        srv.send_progress_text(text, node_id)
