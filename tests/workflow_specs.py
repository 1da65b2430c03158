"""The example workflows, as compact specs, and the builder that turns them into the
UI-format JSON files in workflows/ (what users drag into ComfyUI).

The builder reads widget order and socket types from the live node definitions, so the
comfyui tier can check that the committed JSON files are exactly what the current
ComfyUI and pack expect (tests/test_comfy_workflows.py). To regenerate after a change:
    COMFYUI_PATH=... python -m pytest tests/test_comfy_workflows.py --regenerate-workflows
"""
from __future__ import annotations

import json
from pathlib import Path

FRONTEND_ONLY = {"MarkdownNote", "Note"}
TRAINING_CLIP = "training_clip.mp4"  # the user's clip in ComfyUI/input that wan21_train_foveated_lora loads
BYPASS = 4  # litegraph node mode "bypass": the node is skipped and its input passed through

# Where each base model file comes from (the addresses ComfyUI's own templates use). The
# builder puts them in the loader node's properties, so the frontend offers the download
# when a file is missing. A workflow queues once these files are in place.
MODEL_SOURCES = {
    "flux-2-klein-base-4b.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/flux2-klein/resolve/main/split_files/diffusion_models/flux-2-klein-base-4b.safetensors"),
    "qwen_3_4b.safetensors": ("text_encoders", "https://huggingface.co/Comfy-Org/z_image_turbo/resolve/main/split_files/text_encoders/qwen_3_4b.safetensors"),
    "flux2-vae.safetensors": ("vae", "https://huggingface.co/Comfy-Org/Lens/resolve/main/vae/flux2-vae.safetensors"),
    "flux1-dev.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors"),
    "clip_l.safetensors": ("text_encoders", "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors"),
    "t5xxl_fp16.safetensors": ("text_encoders", "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors"),
    "t5xxl_fp8_e4m3fn_scaled.safetensors": ("text_encoders", "https://huggingface.co/Comfy-Org/HiDream-I1_ComfyUI/resolve/main/split_files/text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors"),
    "ae.safetensors": ("vae", "https://huggingface.co/Comfy-Org/HiDream-I1_ComfyUI/resolve/main/split_files/vae/ae.safetensors"),
    "flux1-dev-kontext_fp8_scaled.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/flux1-kontext-dev_ComfyUI/resolve/main/split_files/diffusion_models/flux1-dev-kontext_fp8_scaled.safetensors"),
    "hunyuanvideo1.5_720p_t2v_fp16.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/HunyuanVideo_1.5_repackaged/resolve/main/split_files/diffusion_models/hunyuanvideo1.5_720p_t2v_fp16.safetensors"),
    "byt5_small_glyphxl_fp16.safetensors": ("text_encoders", "https://huggingface.co/Comfy-Org/HunyuanVideo_1.5_repackaged/resolve/main/split_files/text_encoders/byt5_small_glyphxl_fp16.safetensors"),
    "hunyuanvideo15_vae_fp16.safetensors": ("vae", "https://huggingface.co/Comfy-Org/HunyuanVideo_1.5_repackaged/resolve/main/split_files/vae/hunyuanvideo15_vae_fp16.safetensors"),
    "wan2.1_t2v_1.3B_fp16.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors?download=true"),
    "wan2.1_i2v_480p_14B_fp16.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/diffusion_models/wan2.1_i2v_480p_14B_fp16.safetensors"),
    "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files/diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"),
    "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files/diffusion_models/wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": ("text_encoders", "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"),
    "wan_2.1_vae.safetensors": ("vae", "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/vae/wan_2.1_vae.safetensors"),
    "clip_vision_h.safetensors": ("clip_vision", "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/clip_vision/clip_vision_h.safetensors"),
    "qwen_image_fp8_e4m3fn.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/diffusion_models/qwen_image_fp8_e4m3fn.safetensors"),
    "qwen_2.5_vl_7b_fp8_scaled.safetensors": ("text_encoders", "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors"),
    "qwen_image_vae.safetensors": ("vae", "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/vae/qwen_image_vae.safetensors"),
    "z_image_turbo_bf16.safetensors": ("diffusion_models", "https://huggingface.co/Comfy-Org/z_image_turbo/resolve/main/split_files/diffusion_models/z_image_turbo_bf16.safetensors"),
    "Chroma1-HD.safetensors": ("diffusion_models", "https://huggingface.co/lodestones/Chroma1-HD/resolve/main/Chroma1-HD.safetensors"),
}
PAPER_LORA_REPO = "https://huggingface.co/bchao1/foveated-diffusion"
CANVAS_NODES = {"Fovea", "GazePath"}  # nodes with the pack's canvas widget
CANVAS_HEIGHT = 320

LORA_NOTE = (
    "**The LoRA loader is bypassed**, so the workflow queues with the base models alone "
    "(the paper's training-free 'naive' foveation, with more visible scale mismatch at the fovea "
    "boundary). For the paper's quality, download its foveated LoRA for FLUX.2 [klein] base 4B "
    f"from {PAPER_LORA_REPO} (`fov_random`, `fov_saliency`, `fov_bbox`) into "
    "`ComfyUI/models/loras/`, then select the LoRA node and press Ctrl+B to enable it."
)


# ComfyUI's Wan templates use this negative prompt (Wan's own, in Chinese: oversaturated, static,
# blurry, subtitles, worst quality, deformed hands and faces, cluttered background ...).
WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
                "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
                "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
GAZE_PATH_NOTE = (
    "**Gaze Path**: scrub to a video frame and click to put a keyframe there (drag a keyframe to move "
    "it, the wheel sets its radius, right-click removes it); between keyframes the gaze is interpolated "
    "smoothly. The canvas shades every token with the resolution it gets in the *latent* frame the "
    "scrubbed video frame belongs to: Wan's VAE makes one latent frame of video frame 0 and one of every "
    "4 frames after it, and a latent frame keeps full resolution wherever the gaze is in any of its 4 "
    "frames. The line below gives that latent frame's tokens and the whole video's. Keep `num_frames`, "
    "`width` and `height` equal to the latent's length and size."
)


def _note(text):
    return ("note", "MarkdownNote", {"text": text}, {})


def _paper_lora(file):
    """The paper's LoRA loader, shipped bypassed (the file is an optional download)."""
    return ("lora", "LoraLoaderModelOnly", {"lora_name": file, "strength_model": 1.0}, {"model": ("unet", 0)},
            {"mode": BYPASS, "title": f"Paper LoRA {file} (bypassed: download it, then Ctrl+B)"})


WORKFLOWS = {
    "flux2_klein_foveated_t2i_paper_lora": {
        "about": "FLUX.2 [klein] base 4B, text to image, foveated with the paper's LoRA, 1024x1024.",
        "nodes": [
            _note("## FLUX.2 [klein] foveated text-to-image\n\nClick in the **Fovea** node to move the "
                  "gaze, drag to size it. The readout on **Apply Foveation** shows the tokens kept.\n\n"
                  + LORA_NOTE + "\n\nModels: `flux-2-klein-base-4b.safetensors` (diffusion_models), "
                  "`qwen_3_4b.safetensors` (text_encoders), `flux2-vae.safetensors` (vae)."),
            ("unet", "UNETLoader", {"unet_name": "flux-2-klein-base-4b.safetensors", "weight_dtype": "default"}, {}),
            _paper_lora("fov_random.safetensors"),
            ("clip", "CLIPLoader", {"clip_name": "qwen_3_4b.safetensors", "type": "flux2", "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": "a red fox in a snowy birch forest, morning light, detailed fur"},
             {"clip": ("clip", 0)}),
            ("neg", "CLIPTextEncode", {"text": ""}, {"clip": ("clip", 0)}),
            ("latent", "EmptyFlux2LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}, {}),
            ("fovea", "Fovea", {"x": 0.5, "y": 0.5, "radius": 0.3, "aspect": 1.0, "rotation": 0.0,
                                "extra_gazes": "[]", "width": 1024, "height": 1024, "periphery": "1/2 resolution",
                                "ring_scale": 2.0, "feather": 0.03}, {}),
            ("apply", "ApplyFoveation", {}, {"model": ("lora", 0), "fovea": ("fovea", 0), "latent": ("latent", 0)}),
            ("sampler", "KSampler", {"seed": 42, "steps": 50, "cfg": 4.0, "sampler_name": "euler",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("apply", 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)}),
            ("vae", "VAELoader", {"vae_name": "flux2-vae.safetensors"}, {}),
            ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                          "fovea": ("fovea", 0)}),
            ("save", "SaveImage", {"filename_prefix": "foveated/flux2_klein"}, {"images": ("decode", 0)}),
        ],
    },
    "flux1_dev_foveated": {
        "about": "FLUX.1 [dev], text to image, foveated with a 1/4 periphery; SamplerCustomAdvanced.",
        "nodes": [
            _note("## FLUX.1 [dev] foveated\n\nA 1/4 periphery keeps 1/16 of the tokens outside the fovea. "
                  "Any sampler works; this one uses SamplerCustomAdvanced.\n\nModels: `flux1-dev.safetensors` "
                  "(diffusion_models), `clip_l.safetensors` + `t5xxl_fp16.safetensors` (text_encoders), "
                  "`ae.safetensors` (vae)."),
            ("unet", "UNETLoader", {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}, {}),
            ("clip", "DualCLIPLoader", {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors",
                                        "type": "flux", "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": "portrait of an old sailor, weathered face, harbour at dusk"},
             {"clip": ("clip", 0)}),
            ("guid", "FluxGuidance", {"guidance": 3.5}, {"conditioning": ("pos", 0)}),
            ("latent", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}, {}),
            ("fovea", "Fovea", {"x": 0.5, "y": 0.4, "radius": 0.25, "aspect": 0.8, "rotation": 0.0,
                                "extra_gazes": "[]", "width": 1024, "height": 1024, "periphery": "1/4 resolution",
                                "ring_scale": 2.0, "feather": 0.03}, {}),
            ("apply", "ApplyFoveation", {}, {"model": ("unet", 0), "fovea": ("fovea", 0), "latent": ("latent", 0)}),
            ("noise", "RandomNoise", {"noise_seed": 7}, {}),
            ("guider", "BasicGuider", {}, {"model": ("apply", 0), "conditioning": ("guid", 0)}),
            ("ksel", "KSamplerSelect", {"sampler_name": "euler"}, {}),
            ("sched", "BasicScheduler", {"scheduler": "simple", "steps": 20, "denoise": 1.0}, {"model": ("apply", 0)}),
            ("sampler", "SamplerCustomAdvanced", {}, {"noise": ("noise", 0), "guider": ("guider", 0),
                                                      "sampler": ("ksel", 0), "sigmas": ("sched", 0),
                                                      "latent_image": ("latent", 0)}),
            ("vae", "VAELoader", {"vae_name": "ae.safetensors"}, {}),
            ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                          "fovea": ("fovea", 0)}),
            ("save", "SaveImage", {"filename_prefix": "foveated/flux1_dev"}, {"images": ("decode", 0)}),
        ],
    },
    "flux1_kontext_edit_foveated": {
        "about": "FLUX.1 Kontext [dev] edit: the reference image stays full resolution, the edited "
                 "target is foveated.",
        "nodes": [
            _note("## Kontext edit with a foveated target\n\nThe reference image (ReferenceLatent) is never "
                  "foveated; only the generated image is. Put the fovea on the part you edit.\n\nModels: "
                  "`flux1-dev-kontext_fp8_scaled.safetensors`, `clip_l.safetensors`, "
                  "`t5xxl_fp8_e4m3fn_scaled.safetensors`, `ae.safetensors`."),
            ("image", "LoadImage", {"image": "example.png"}, {}),
            ("scale", "FluxKontextImageScale", {}, {"image": ("image", 0)}),
            ("vae", "VAELoader", {"vae_name": "ae.safetensors"}, {}),
            ("enc", "VAEEncode", {}, {"pixels": ("scale", 0), "vae": ("vae", 0)}),
            ("unet", "UNETLoader", {"unet_name": "flux1-dev-kontext_fp8_scaled.safetensors", "weight_dtype": "default"}, {}),
            ("clip", "DualCLIPLoader", {"clip_name1": "clip_l.safetensors",
                                        "clip_name2": "t5xxl_fp8_e4m3fn_scaled.safetensors",
                                        "type": "flux", "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": "make the jacket bright yellow"}, {"clip": ("clip", 0)}),
            ("ref", "ReferenceLatent", {}, {"conditioning": ("pos", 0), "latent": ("enc", 0)}),
            ("guid", "FluxGuidance", {"guidance": 2.5}, {"conditioning": ("ref", 0)}),
            ("neg", "ConditioningZeroOut", {}, {"conditioning": ("pos", 0)}),
            ("fovea", "Fovea", {"x": 0.5, "y": 0.55, "radius": 0.3, "aspect": 1.0, "rotation": 0.0,
                                "extra_gazes": "[]", "width": 1024, "height": 1024, "periphery": "1/2 resolution",
                                "ring_scale": 2.0, "feather": 0.03}, {"preview_image": ("scale", 0)}),
            ("apply", "ApplyFoveation", {}, {"model": ("unet", 0), "fovea": ("fovea", 0), "latent": ("enc", 0)}),
            ("sampler", "KSampler", {"seed": 1, "steps": 20, "cfg": 1.0, "sampler_name": "euler",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("apply", 0), "positive": ("guid", 0), "negative": ("neg", 0), "latent_image": ("enc", 0)}),
            ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                          "fovea": ("fovea", 0)}),
            ("save", "SaveImage", {"filename_prefix": "foveated/kontext_edit"}, {"images": ("decode", 0)}),
        ],
    },
    "qwen_image_foveated_t2i": {
        "about": "Qwen-Image, text to image, foveated with a 1/2 periphery, 1328x1328.",
        "nodes": [
            _note("## Qwen-Image foveated text-to-image\n\nClick in the **Fovea** node to move the gaze, drag to "
                  "size it. Text is never foveated, so long prompts render as usual; put the fovea where the "
                  "detail matters.\n\nModels: `qwen_image_fp8_e4m3fn.safetensors` (diffusion_models), "
                  "`qwen_2.5_vl_7b_fp8_scaled.safetensors` (text_encoders), `qwen_image_vae.safetensors` (vae)."),
            ("unet", "UNETLoader", {"unet_name": "qwen_image_fp8_e4m3fn.safetensors", "weight_dtype": "default"}, {}),
            ("shift", "ModelSamplingAuraFlow", {"shift": 3.1}, {"model": ("unet", 0)}),
            ("clip", "CLIPLoader", {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image",
                                    "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": "a bookshop window at night with a hand-painted sign reading "
                                               "\"Foveated Books\", warm light, rain on the glass"},
             {"clip": ("clip", 0)}),
            ("neg", "CLIPTextEncode", {"text": ""}, {"clip": ("clip", 0)}),
            ("latent", "EmptySD3LatentImage", {"width": 1328, "height": 1328, "batch_size": 1}, {}),
            ("fovea", "Fovea", {"x": 0.5, "y": 0.45, "radius": 0.3, "aspect": 1.0, "rotation": 0.0,
                                "extra_gazes": "[]", "width": 1328, "height": 1328, "periphery": "1/2 resolution",
                                "ring_scale": 2.0, "feather": 0.03}, {}),
            ("apply", "ApplyFoveation", {}, {"model": ("shift", 0), "fovea": ("fovea", 0), "latent": ("latent", 0)}),
            ("sampler", "KSampler", {"seed": 11, "steps": 20, "cfg": 2.5, "sampler_name": "euler",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("apply", 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)}),
            ("vae", "VAELoader", {"vae_name": "qwen_image_vae.safetensors"}, {}),
            ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                          "fovea": ("fovea", 0)}),
            ("save", "SaveImage", {"filename_prefix": "foveated/qwen_image"}, {"images": ("decode", 0)}),
        ],
    },
    "chroma_foveated_t2i": {
        "about": "Chroma1-HD, text to image with real CFG and a negative prompt, foveated with a 1/2 periphery, "
                 "1024x1024; SamplerCustomAdvanced with CFGGuider.",
        "nodes": [
            _note("## Chroma1-HD foveated text-to-image\n\nSettings from ComfyUI's Chroma template: T5 without "
                  "padding (T5 Tokenizer Options 0 / 0), flow shift 1, CFG 3.5 with a negative prompt, euler, "
                  "beta scheduler, 26 steps. Both the positive and the negative pass run on the foveated "
                  "tokens; the text is never foveated.\n\nModels: `Chroma1-HD.safetensors` (diffusion_models; "
                  "`Chroma1-HD-fp8mixed.safetensors` from Comfy-Org/Chroma1-HD_repackaged needs less memory), "
                  "`t5xxl_fp8_e4m3fn_scaled.safetensors` (text_encoders), `ae.safetensors` (vae)."),
            ("unet", "UNETLoader", {"unet_name": "Chroma1-HD.safetensors", "weight_dtype": "default"}, {}),
            ("shift", "ModelSamplingAuraFlow", {"shift": 1.0}, {"model": ("unet", 0)}, {"title": "Flow Shift"}),
            ("clip", "CLIPLoader", {"clip_name": "t5xxl_fp8_e4m3fn_scaled.safetensors", "type": "chroma",
                                    "device": "default"}, {}),
            ("t5opts", "T5TokenizerOptions", {"min_padding": 0, "min_length": 0}, {"clip": ("clip", 0)}),
            ("pos", "CLIPTextEncode", {"text": "a glassblower shaping a glowing orange vase in a dim workshop, "
                                               "sparks and heat haze, detailed hands, natural light"},
             {"clip": ("t5opts", 0)}),
            ("neg", "CLIPTextEncode", {"text": "low quality, blurry, out of focus, deformed, smudged, flat colors, "
                                               "oversaturated, jpeg artifacts"}, {"clip": ("t5opts", 0)}),
            ("latent", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}, {}),
            ("fovea", "Fovea", {"x": 0.5, "y": 0.45, "radius": 0.28, "aspect": 1.0, "rotation": 0.0,
                                "extra_gazes": "[]", "width": 1024, "height": 1024, "periphery": "1/2 resolution",
                                "ring_scale": 2.0, "feather": 0.03}, {}),
            ("apply", "ApplyFoveation", {}, {"model": ("shift", 0), "fovea": ("fovea", 0), "latent": ("latent", 0)}),
            ("noise", "RandomNoise", {"noise_seed": 21}, {}),
            ("guider", "CFGGuider", {"cfg": 3.5}, {"model": ("apply", 0), "positive": ("pos", 0),
                                                   "negative": ("neg", 0)}),
            ("ksel", "KSamplerSelect", {"sampler_name": "euler"}, {}),
            ("sched", "BasicScheduler", {"scheduler": "beta", "steps": 26, "denoise": 1.0}, {"model": ("apply", 0)}),
            ("sampler", "SamplerCustomAdvanced", {}, {"noise": ("noise", 0), "guider": ("guider", 0),
                                                      "sampler": ("ksel", 0), "sigmas": ("sched", 0),
                                                      "latent_image": ("latent", 0)}),
            ("vae", "VAELoader", {"vae_name": "ae.safetensors"}, {}),
            ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                          "fovea": ("fovea", 0)}),
            ("save", "SaveImage", {"filename_prefix": "foveated/chroma"}, {"images": ("decode", 0)}),
        ],
    },
    "z_image_turbo_foveated_t2i": {
        "about": "Z-Image Turbo, text to image in 8 steps, foveated with rings (1/2 then 1/4), 1024x1024.",
        "nodes": [
            _note("## Z-Image Turbo foveated text-to-image\n\nEight steps at CFG 1, as ComfyUI's Z-Image Turbo "
                  "template. The periphery uses rings: 1/2 resolution around the fovea, 1/4 further out.\n\n"
                  "Models: `z_image_turbo_bf16.safetensors` (diffusion_models), `qwen_3_4b.safetensors` "
                  "(text_encoders), `ae.safetensors` (vae)."),
            ("unet", "UNETLoader", {"unet_name": "z_image_turbo_bf16.safetensors", "weight_dtype": "default"}, {}),
            ("shift", "ModelSamplingAuraFlow", {"shift": 3.0}, {"model": ("unet", 0)}),
            ("clip", "CLIPLoader", {"clip_name": "qwen_3_4b.safetensors", "type": "lumina2", "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": "close-up of a hummingbird at a red flower, garden in soft focus"},
             {"clip": ("clip", 0)}),
            ("neg", "CLIPTextEncode", {"text": ""}, {"clip": ("clip", 0)}),
            ("latent", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}, {}),
            ("fovea", "Fovea", {"x": 0.45, "y": 0.45, "radius": 0.25, "aspect": 1.0, "rotation": 0.0,
                                "extra_gazes": "[]", "width": 1024, "height": 1024,
                                "periphery": "rings: 1/2 then 1/4", "ring_scale": 2.0, "feather": 0.03}, {}),
            ("apply", "ApplyFoveation", {}, {"model": ("shift", 0), "fovea": ("fovea", 0), "latent": ("latent", 0)}),
            ("sampler", "KSampler", {"seed": 5, "steps": 8, "cfg": 1.0, "sampler_name": "res_multistep",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("apply", 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)}),
            ("vae", "VAELoader", {"vae_name": "ae.safetensors"}, {}),
            ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                          "fovea": ("fovea", 0)}),
            ("save", "SaveImage", {"filename_prefix": "foveated/z_image_turbo"}, {"images": ("decode", 0)}),
        ],
    },
    "box_guided_generation": {
        "about": "Box-guided generation: a box (draw it, or take RT-DETR / SAM3 detections) becomes the "
                 "fovea; the paper's fov_bbox LoRA places the object there.",
        "nodes": [
            _note("## Box-guided generation\n\nThe **Bounding Box** sets where the subject goes; **Fovea from "
                  "Boxes** keeps it at full resolution with rings around it. Swap the box for the output of "
                  "RT-DETR Detect or SAM3 to foveate detected objects.\n\n" + LORA_NOTE
                  + " This workflow uses `fov_bbox`."),
            ("unet", "UNETLoader", {"unet_name": "flux-2-klein-base-4b.safetensors", "weight_dtype": "default"}, {}),
            _paper_lora("fov_bbox.safetensors"),
            ("clip", "CLIPLoader", {"clip_name": "qwen_3_4b.safetensors", "type": "flux2", "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": "a vintage bicycle leaning on a brick wall, street photo"},
             {"clip": ("clip", 0)}),
            ("neg", "CLIPTextEncode", {"text": ""}, {"clip": ("clip", 0)}),
            ("latent", "EmptyFlux2LatentImage", {"width": 1216, "height": 832, "batch_size": 1}, {}),
            ("box", "PrimitiveBoundingBox", {"x": 640, "y": 260, "width": 420, "height": 480}, {}),
            ("fovea", "FoveaFromBoxes", {"width": 1216, "height": 832, "expand": 0.1,
                                         "periphery": "rings: 1/2 then 1/4", "ring_scale": 1.5, "feather": 0.03},
             {"bboxes": ("box", 0)}),
            ("apply", "ApplyFoveation", {}, {"model": ("lora", 0), "fovea": ("fovea", 0), "latent": ("latent", 0)}),
            ("sampler", "KSampler", {"seed": 3, "steps": 50, "cfg": 4.0, "sampler_name": "euler",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("apply", 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)}),
            ("vae", "VAELoader", {"vae_name": "flux2-vae.safetensors"}, {}),
            ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                          "fovea": ("fovea", 0)}),
            ("save", "SaveImage", {"filename_prefix": "foveated/box_guided"}, {"images": ("decode", 0)}),
            ("preview", "MaskPreview", {}, {"mask": ("fovea", 1)}),
        ],
    },
}

def _wan_loaders(unet, shift, title=None, key="unet", sampling="shift"):
    """A Wan diffusion model and ModelSamplingSD3 with the template's shift."""
    opts = {"title": title} if title else {}
    return [(key, "UNETLoader", {"unet_name": unet, "weight_dtype": "default"}, {}, opts),
            (sampling, "ModelSamplingSD3", {"shift": shift}, {"model": (key, 0)})]


def _wan_text(prompt):
    return [("clip", "CLIPLoader", {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan",
                                    "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": prompt}, {"clip": ("clip", 0)}),
            ("neg", "CLIPTextEncode", {"text": WAN_NEGATIVE}, {"clip": ("clip", 0)})]


def _gaze_path(keyframes, width, height, frames=81, inputs=None, periphery="1/2 resolution"):
    text = json.dumps([dict(zip(("frame", "x", "y", "radius"), k)) for k in keyframes])
    return ("path", "GazePath", {"keyframes": text, "num_frames": frames, "width": width, "height": height,
                                 "periphery": periphery, "ring_scale": 2.0, "feather": 0.03}, inputs or {})


def _wan_vae():
    return ("vae", "VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, {})


def _wan_output(prefix, samples=("sampler", 0)):
    """Foveated Decode of the video latent (VAE: _wan_vae), then a video file (16 fps, as Wan's templates)."""
    return [("decode", "FoveatedDecode", {"margin": 2}, {"samples": samples, "vae": ("vae", 0), "fovea": ("path", 0)}),
            ("video", "CreateVideo", {"fps": 16.0, "bit_depth": 8}, {"images": ("decode", 0)}),
            ("save", "SaveVideo", {"filename_prefix": prefix, "format": "auto", "codec": "auto"},
             {"video": ("video", 0)})]


def _wan21_kite_video():
    """Wan 2.1 T2V at the template's settings (uni_pc, 30 steps, CFG 6) on the model of node
    "shift", 81 frames at 832x480, foveated along a Gaze Path that follows the kite."""
    return [("latent", "EmptyHunyuanLatentVideo", {"width": 832, "height": 480, "length": 81, "batch_size": 1}, {}),
            _gaze_path([(0, 0.2, 0.45, 0.22), (40, 0.5, 0.3, 0.25), (80, 0.8, 0.45, 0.22)], 832, 480),
            ("apply", "ApplyFoveation", {}, {"model": ("shift", 0), "fovea": ("path", 0), "latent": ("latent", 0)}),
            ("sampler", "KSampler", {"seed": 42, "steps": 30, "cfg": 6.0, "sampler_name": "uni_pc",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("apply", 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)})]


WORKFLOWS.update({
    "wan21_t2v_gaze_path": {
        "about": "Wan 2.1 T2V 1.3B, text to video, 81 frames at 832x480, foveated along a moving Gaze Path.",
        "nodes": [
            _note("## Wan 2.1 text-to-video with a moving fovea\n\nThe fovea follows the kite across the frame: "
                  "full-resolution tokens where the gaze is, 1/2 resolution elsewhere, in every latent frame. "
                  "**Apply Foveation** shows the tokens kept over the whole video; **Foveated Decode** decodes "
                  "the periphery at its own resolution and the fovea on its region.\n\n" + GAZE_PATH_NOTE
                  + "\n\nSettings from ComfyUI's Wan 2.1 template: shift 8, uni_pc, 30 steps, CFG 6.\n\n"
                  "Models: `wan2.1_t2v_1.3B_fp16.safetensors` (diffusion_models), "
                  "`umt5_xxl_fp8_e4m3fn_scaled.safetensors` (text_encoders), `wan_2.1_vae.safetensors` (vae)."),
            *_wan_loaders("wan2.1_t2v_1.3B_fp16.safetensors", 8.0),
            *_wan_text("a red kite flying across a clear blue sky above green hills, the camera pans with it, "
                       "daytime, detailed"),
            *_wan21_kite_video(),
            _wan_vae(),
            *_wan_output("video/foveated_wan21_t2v"),
        ],
    },
    "wan21_i2v_gaze_path": {
        "about": "Wan 2.1 I2V 480p 14B, image to video, 81 frames at 832x480, foveated along a Gaze Path; "
                 "the start image and its CLIP vision embedding condition every frame and are never foveated.",
        "nodes": [
            _note("## Wan 2.1 image-to-video with a moving fovea\n\nThe start image (LoadImage) conditions the "
                  "video through WanImageToVideo and CLIP vision; it is never foveated, only the generated "
                  "frames are. The **Gaze Path** canvas shows the start image to place the gaze on.\n\n"
                  + GAZE_PATH_NOTE + "\n\nSettings from ComfyUI's Wan 2.1 I2V template: shift 8, uni_pc, "
                  "20 steps, CFG 6.\n\nModels: `wan2.1_i2v_480p_14B_fp16.safetensors` (diffusion_models), "
                  "`umt5_xxl_fp8_e4m3fn_scaled.safetensors` (text_encoders), `clip_vision_h.safetensors` "
                  "(clip_vision), `wan_2.1_vae.safetensors` (vae)."),
            *_wan_loaders("wan2.1_i2v_480p_14B_fp16.safetensors", 8.0),
            *_wan_text("the scene comes alive, gentle camera push-in, natural motion, detailed"),
            ("image", "LoadImage", {"image": "example.png"}, {}),
            ("clipvision", "CLIPVisionLoader", {"clip_name": "clip_vision_h.safetensors"}, {}),
            ("vision", "CLIPVisionEncode", {"crop": "none"}, {"clip_vision": ("clipvision", 0), "image": ("image", 0)}),
            _wan_vae(),
            ("i2v", "WanImageToVideo", {"width": 832, "height": 480, "length": 81, "batch_size": 1},
             {"positive": ("pos", 0), "negative": ("neg", 0), "vae": ("vae", 0),
              "clip_vision_output": ("vision", 0), "start_image": ("image", 0)}),
            _gaze_path([(0, 0.5, 0.45, 0.25), (40, 0.35, 0.4, 0.2), (80, 0.6, 0.5, 0.25)], 832, 480,
                       inputs={"preview_image": ("image", 0)}),
            ("apply", "ApplyFoveation", {}, {"model": ("shift", 0), "fovea": ("path", 0), "latent": ("i2v", 2)}),
            ("sampler", "KSampler", {"seed": 42, "steps": 20, "cfg": 6.0, "sampler_name": "uni_pc",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("apply", 0), "positive": ("i2v", 0), "negative": ("i2v", 1), "latent_image": ("i2v", 2)}),
            *_wan_output("video/foveated_wan21_i2v"),
        ],
    },
    "wan22_14b_t2v_gaze_path": {
        "about": "Wan 2.2 14B T2V, its high-noise and low-noise experts in two KSamplerAdvanced, both patched "
                 "by one Gaze Path fovea; 81 frames at 640x640.",
        "nodes": [
            _note("## Wan 2.2 14B text-to-video: two experts, one fovea\n\nThe high-noise expert runs the first "
                  "10 of 20 steps and hands its noisy latent to the low-noise expert, as in ComfyUI's Wan 2.2 "
                  "template (shift 5, euler, CFG 3.5). One **Gaze Path** feeds both **Apply Foveation** nodes, "
                  "so both experts keep the same tokens at full resolution and the latent stays consistent "
                  "between them.\n\n" + GAZE_PATH_NOTE + "\n\nModels: "
                  "`wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors` + "
                  "`wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors` (diffusion_models), "
                  "`umt5_xxl_fp8_e4m3fn_scaled.safetensors` (text_encoders), `wan_2.1_vae.safetensors` (vae)."),
            *_wan_loaders("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", 5.0, "High-noise expert",
                          "unet_high", "shift_high"),
            *_wan_loaders("wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", 5.0, "Low-noise expert",
                          "unet_low", "shift_low"),
            *_wan_text("a hummingbird hovering at red flowers in a sunny garden, then darting away, slow motion, "
                       "shallow depth of field"),
            ("latent", "EmptyHunyuanLatentVideo", {"width": 640, "height": 640, "length": 81, "batch_size": 1}, {}),
            _gaze_path([(0, 0.4, 0.45, 0.25), (48, 0.45, 0.4, 0.25), (80, 0.8, 0.25, 0.2)], 640, 640),
            ("apply_high", "ApplyFoveation", {}, {"model": ("shift_high", 0), "fovea": ("path", 0),
                                                  "latent": ("latent", 0)}, {"title": "Apply Foveation (high noise)"}),
            ("apply_low", "ApplyFoveation", {}, {"model": ("shift_low", 0), "fovea": ("path", 0),
                                                 "latent": ("latent", 0)}, {"title": "Apply Foveation (low noise)"}),
            ("high", "KSamplerAdvanced", {"add_noise": "enable", "noise_seed": 42, "steps": 20, "cfg": 3.5,
                                          "sampler_name": "euler", "scheduler": "simple", "start_at_step": 0,
                                          "end_at_step": 10, "return_with_leftover_noise": "enable"},
             {"model": ("apply_high", 0), "positive": ("pos", 0), "negative": ("neg", 0),
              "latent_image": ("latent", 0)}),
            ("low", "KSamplerAdvanced", {"add_noise": "disable", "noise_seed": 0, "steps": 20, "cfg": 3.5,
                                         "sampler_name": "euler", "scheduler": "simple", "start_at_step": 10,
                                         "end_at_step": 10000, "return_with_leftover_noise": "disable"},
             {"model": ("apply_low", 0), "positive": ("pos", 0), "negative": ("neg", 0),
              "latent_image": ("high", 0)}),
            _wan_vae(),
            *_wan_output("video/foveated_wan22_14b_t2v", samples=("low", 0)),
        ],
    },
})

SPD_NOTE = (
    "**Progressive Resolution (SPD)** runs the early, noise-dominated steps at 1/2 resolution and "
    "switches to full resolution where the power law of FLUX latents says the coarse tokens stop "
    "being enough (delta 0.05, the paper's recommended trade-off: 28 coarse + 22 full steps of 50 on "
    "FLUX.1 [dev] at 1024x1024, 1.63x in the paper). Each run logs its switch step and FLOP-ideal "
    "speedup. Any sampler node works; the noise `SamplerSPEED` setting reproduces the official node's images."
)

WORKFLOWS.update({
    "flux1_dev_progressive_resolution": {
        "about": "FLUX.1 [dev], text to image, Spectral Progressive Diffusion: the first steps at 1/2 "
                 "resolution, then spectral expansion to full resolution (no fovea).",
        "nodes": [
            _note("## FLUX.1 [dev] with Progressive Resolution\n\n" + SPD_NOTE + "\n\nModels: "
                  "`flux1-dev.safetensors` (diffusion_models), `clip_l.safetensors` + `t5xxl_fp16.safetensors` "
                  "(text_encoders), `ae.safetensors` (vae)."),
            ("unet", "UNETLoader", {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}, {}),
            ("clip", "DualCLIPLoader", {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors",
                                        "type": "flux", "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": "a lighthouse on a rocky coast at sunset, waves, dramatic clouds"},
             {"clip": ("clip", 0)}),
            ("guid", "FluxGuidance", {"guidance": 3.5}, {"conditioning": ("pos", 0)}),
            ("neg", "ConditioningZeroOut", {}, {"conditioning": ("pos", 0)}),
            ("latent", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}, {}),
            ("spd", "ProgressiveResolution", {"scales": "0.5, 1", "switch_at": "power law", "delta": 0.05,
                                              "spectrum": "FLUX", "manual_sigmas": "0.85", "transform": "dct",
                                              "noise": "fast", "seed": 0, "A": 203.615, "beta": 1.915},
             {"model": ("unet", 0)}),
            ("sampler", "KSampler", {"seed": 11, "steps": 50, "cfg": 1.0, "sampler_name": "euler",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("spd", 0), "positive": ("guid", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)}),
            ("vae", "VAELoader", {"vae_name": "ae.safetensors"}, {}),
            ("decode", "VAEDecode", {}, {"samples": ("sampler", 0), "vae": ("vae", 0)}),
            ("save", "SaveImage", {"filename_prefix": "progressive/flux1_dev"}, {"images": ("decode", 0)}),
        ],
    },
    "flux2_klein_progressive_foveation": {
        "about": "FLUX.2 [klein] base 4B, progressive foveation: the whole image starts at 1/2 resolution and "
                 "at the switch only the fovea is expanded to full resolution (resolution grows in time and "
                 "space); Foveated Decode.",
        "nodes": [
            _note("## FLUX.2 [klein]: progressive foveation\n\n" + SPD_NOTE + " With a **Fovea** connected, "
                  "only the fovea is expanded at the switch; the periphery stays at 1/2 resolution to the "
                  "end, so the late steps cost what foveation alone costs and the early ones less. "
                  "Do not add Apply Foveation as well: Progressive Resolution applies the fovea itself.\n\n"
                  "Models: `flux-2-klein-base-4b.safetensors` (diffusion_models), `qwen_3_4b.safetensors` "
                  "(text_encoders), `flux2-vae.safetensors` (vae)."),
            ("unet", "UNETLoader", {"unet_name": "flux-2-klein-base-4b.safetensors", "weight_dtype": "default"}, {}),
            ("clip", "CLIPLoader", {"clip_name": "qwen_3_4b.safetensors", "type": "flux2", "device": "default"}, {}),
            ("pos", "CLIPTextEncode", {"text": "a barn owl perched on a mossy branch at dusk, detailed feathers"},
             {"clip": ("clip", 0)}),
            ("neg", "CLIPTextEncode", {"text": ""}, {"clip": ("clip", 0)}),
            ("latent", "EmptyFlux2LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}, {}),
            ("fovea", "Fovea", {"x": 0.5, "y": 0.42, "radius": 0.28, "aspect": 1.0, "rotation": 0.0,
                                "extra_gazes": "[]", "width": 1024, "height": 1024, "periphery": "1/2 resolution",
                                "ring_scale": 2.0, "feather": 0.03}, {}),
            ("spd", "ProgressiveResolution", {"scales": "0.5, 1", "switch_at": "power law", "delta": 0.05,
                                              "spectrum": "FLUX", "manual_sigmas": "0.85", "transform": "dct",
                                              "noise": "fast", "seed": 0, "A": 203.615, "beta": 1.915},
             {"model": ("unet", 0), "fovea": ("fovea", 0)}),
            ("sampler", "KSampler", {"seed": 5, "steps": 50, "cfg": 4.0, "sampler_name": "euler",
                                     "scheduler": "simple", "denoise": 1.0},
             {"model": ("spd", 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)}),
            ("vae", "VAELoader", {"vae_name": "flux2-vae.safetensors"}, {}),
            ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                          "fovea": ("fovea", 0)}),
            ("save", "SaveImage", {"filename_prefix": "progressive/flux2_klein_foveated"}, {"images": ("decode", 0)}),
        ],
    },
})

WORKFLOWS["hunyuan_video15_t2v_gaze_path"] = {
    "about": "HunyuanVideo 1.5 720p T2V, text to video, 121 frames at 1280x720, foveated along a moving Gaze Path.",
    "nodes": [
        _note("## HunyuanVideo 1.5 text-to-video with a moving fovea\n\nThe fovea follows the paper airplane: "
              "full-resolution tokens where the gaze is, 1/2 resolution elsewhere, in every latent frame. The "
              "text, the byT5 glyph text and (I2V) the SigLIP image tokens are never foveated. **Foveated "
              "Decode** decodes the periphery at its own resolution and the fovea on its region.\n\n"
              + GAZE_PATH_NOTE.replace("Wan's VAE", "HunyuanVideo 1.5's VAE") + "\n\nModels: "
              "`hunyuanvideo1.5_720p_t2v_fp16.safetensors` (diffusion_models), "
              "`qwen_2.5_vl_7b_fp8_scaled.safetensors` + `byt5_small_glyphxl_fp16.safetensors` (text_encoders), "
              "`hunyuanvideo15_vae_fp16.safetensors` (vae)."),
        ("unet", "UNETLoader", {"unet_name": "hunyuanvideo1.5_720p_t2v_fp16.safetensors", "weight_dtype": "default"},
         {}),
        ("shift", "ModelSamplingSD3", {"shift": 7.0}, {"model": ("unet", 0)}),
        ("clip", "DualCLIPLoader", {"clip_name1": "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                                    "clip_name2": "byt5_small_glyphxl_fp16.safetensors", "type": "hunyuan_video_15",
                                    "device": "default"}, {}),
        ("pos", "CLIPTextEncode", {"text": "a paper airplane gliding between skyscrapers at sunset, the camera "
                                           "following it, golden light"}, {"clip": ("clip", 0)}),
        ("neg", "CLIPTextEncode", {"text": ""}, {"clip": ("clip", 0)}),
        ("latent", "EmptyHunyuanVideo15Latent", {"width": 1280, "height": 720, "length": 121, "batch_size": 1}, {}),
        _gaze_path([(0, 0.3, 0.45, 0.3), (60, 0.55, 0.4, 0.3), (120, 0.72, 0.5, 0.3)], 1280, 720, frames=121),
        ("apply", "ApplyFoveation", {}, {"model": ("shift", 0), "fovea": ("path", 0), "latent": ("latent", 0)}),
        ("sampler", "KSampler", {"seed": 889, "steps": 20, "cfg": 6.0, "sampler_name": "euler",
                                 "scheduler": "simple", "denoise": 1.0},
         {"model": ("apply", 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)}),
        ("vae", "VAELoader", {"vae_name": "hunyuanvideo15_vae_fp16.safetensors"}, {}),
        ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                      "fovea": ("path", 0)}),
        ("video", "CreateVideo", {"fps": 24.0, "bit_depth": 8}, {"images": ("decode", 0)}),
        ("save", "SaveVideo", {"filename_prefix": "video/foveated_hunyuan_video15_t2v", "format": "auto",
                               "codec": "auto"}, {"video": ("video", 0)}),
    ],
}

WORKFLOWS["train_foveated_lora"] = {
    "about": "Train a foveated LoRA for FLUX.2 [klein] base 4B on a few images, then generate with it "
             "(foveated, 1/2 periphery).",
    "nodes": [
        _note("## Train a foveated LoRA, then generate with it\n\n**Train Foveated LoRA** post-trains a LoRA "
              "with the paper's recipe: a random fovea per sample, the full-resolution encode inside it and the "
              "encode of the downsampled image outside, the loss over the packed tokens of the same foveated "
              "forward **Apply Foveation** runs. It gives core's `LORA_MODEL` (applied here with **Load LoRA "
              "Model**), a loss curve (**Plot Loss Graph**), and saves `models/loras/foveated/"
              "example_foveated_lora.safetensors` for **LoraLoaderModelOnly**.\n\nThe two images here "
              "(ComfyUI's `example.png` and its mirror image) only show the wiring. For a useful LoRA train on "
              "hundreds of varied images: set `image_folder` to a folder in `ComfyUI/input` with a caption "
              "`.txt` next to each image and connect the text encoder to `clip` (and remove the conditioning "
              "link), or feed a list from core's dataset nodes. The paper trained 10k steps at batch 8, "
              "learning rate 1e-4, rank 32.\n\nTraining needs a GPU with room for the model and its "
              "gradients; gradient checkpointing is on. Stop it any time: the last step is saved, and "
              "`resume_from` continues it.\n\nModels: `flux-2-klein-base-4b.safetensors` (diffusion_models), "
              "`qwen_3_4b.safetensors` (text_encoders), `flux2-vae.safetensors` (vae)."),
        ("unet", "UNETLoader", {"unet_name": "flux-2-klein-base-4b.safetensors", "weight_dtype": "default"}, {}),
        ("clip", "CLIPLoader", {"clip_name": "qwen_3_4b.safetensors", "type": "flux2", "device": "default"}, {}),
        ("vae", "VAELoader", {"vae_name": "flux2-vae.safetensors"}, {}),
        ("image", "LoadImage", {"image": "example.png"}, {}),
        ("mirror", "ImageFlip", {"flip_method": "y-axis: horizontally"}, {"image": ("image", 0)}),
        ("batch", "ImageBatch", {}, {"image1": ("image", 0), "image2": ("mirror", 0)}),
        ("caption", "CLIPTextEncode", {"text": "a detailed photograph"}, {"clip": ("clip", 0)}),
        ("train", "TrainFoveatedLoRA", {
            "image_folder": "[None]", "lora_name": "foveated/example_foveated_lora", "steps": 500,
            "batch_size": 1, "learning_rate": 1e-4, "rank": 32, "alpha": 32.0, "seed": 0,
            "fovea_mode": "random circles", "periphery": "1/2 resolution", "resolution": 1024,
            "target_modules": "img_attn.qkv, img_attn.proj, txt_attn.qkv, txt_attn.proj, img_mlp.0, img_mlp.2, "
                              "txt_mlp.0, txt_mlp.2, linear1",
            "gradient_checkpointing": True, "training_dtype": "bf16", "save_every": 100, "resume_from": "[None]"},
         {"model": ("unet", 0), "vae": ("vae", 0), "images": ("batch", 0), "conditioning": ("caption", 0)}),
        ("loss", "LossGraphNode", {"filename_prefix": "foveated/loss_graph"}, {"loss": ("train", 1)}),
        ("lora", "LoraModelLoader", {"strength_model": 1.0, "bypass": False},
         {"model": ("unet", 0), "lora": ("train", 0)}),
        ("pos", "CLIPTextEncode", {"text": "a red fox in a snowy birch forest, morning light, detailed fur"},
         {"clip": ("clip", 0)}),
        ("neg", "CLIPTextEncode", {"text": ""}, {"clip": ("clip", 0)}),
        ("latent", "EmptyFlux2LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}, {}),
        ("fovea", "Fovea", {"x": 0.5, "y": 0.5, "radius": 0.3, "aspect": 1.0, "rotation": 0.0,
                            "extra_gazes": "[]", "width": 1024, "height": 1024, "periphery": "1/2 resolution",
                            "ring_scale": 2.0, "feather": 0.03}, {}),
        ("apply", "ApplyFoveation", {}, {"model": ("lora", 0), "fovea": ("fovea", 0), "latent": ("latent", 0)}),
        ("sampler", "KSampler", {"seed": 42, "steps": 50, "cfg": 4.0, "sampler_name": "euler",
                                 "scheduler": "simple", "denoise": 1.0},
         {"model": ("apply", 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)}),
        ("decode", "FoveatedDecode", {"margin": 2}, {"samples": ("sampler", 0), "vae": ("vae", 0),
                                                      "fovea": ("fovea", 0)}),
        ("save", "SaveImage", {"filename_prefix": "foveated/trained_lora"}, {"images": ("decode", 0)}),
    ],
}

WORKFLOWS["wan21_train_foveated_lora"] = {
    "about": "Train a foveated LoRA for Wan 2.1 T2V 1.3B on a video clip (a random gaze path per sample, the "
             "paper's video recipe), then generate a video with it along a Gaze Path.",
    "nodes": [
        _note("## Train a foveated video LoRA for Wan 2.1, then generate with it\n\n**Train Foveated LoRA** "
              "trains on clips: each sample follows a new random gaze path (the paper's video recipe), the target "
              "is the full-resolution encode inside the fovea and the encode of the downsampled frames outside, "
              "and the loss runs over the packed tokens of the same foveated forward **Apply Foveation** runs. "
              "The LoRA goes on the paper's video targets (q, k, v, o of both attentions, ffn.0, ffn.2).\n\n"
              "Put a clip in `ComfyUI/input` and choose it in **Load Video** (`training_clip.mp4` here): it is "
              "scaled to about 640x640 pixels a frame and cut to 1 + 4k frames, at most 81. One clip only shows "
              "the wiring; for a useful LoRA set `image_folder` to a folder in `ComfyUI/input` of clips (mp4, "
              "webm, mov) with a caption `.txt` each and connect the text encoder to `clip`. The paper trained "
              "10k steps at batch 8, learning rate 1e-4, rank 32.\n\nThe LoRA is saved to "
              "`models/loras/foveated/wan21_foveated_lora.safetensors` (and every 100 steps; a cancel keeps the "
              "last step). Generation uses the Wan 2.1 template's settings: shift 8, uni_pc, 30 steps, CFG 6.\n\n"
              "Models: `wan2.1_t2v_1.3B_fp16.safetensors` (diffusion_models), "
              "`umt5_xxl_fp8_e4m3fn_scaled.safetensors` (text_encoders), `wan_2.1_vae.safetensors` (vae)."),
        ("unet", "UNETLoader", {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors", "weight_dtype": "default"}, {}),
        *_wan_text("a red kite flying across a clear blue sky above green hills, the camera pans with it, "
                   "daytime, detailed"),
        _wan_vae(),
        ("load", "LoadVideo", {"file": TRAINING_CLIP}, {}),
        ("frames", "GetVideoComponents", {}, {"video": ("load", 0)}),
        ("caption", "CLIPTextEncode", {"text": "a video"}, {"clip": ("clip", 0)}),
        ("train", "TrainFoveatedLoRA", {
            "image_folder": "[None]", "lora_name": "foveated/wan21_foveated_lora", "steps": 500,
            "batch_size": 1, "learning_rate": 1e-4, "rank": 32, "alpha": 32.0, "seed": 0,
            "fovea_mode": "random gaze paths", "periphery": "1/2 resolution", "resolution": 640,
            "target_modules": "", "gradient_checkpointing": True, "training_dtype": "bf16", "save_every": 100,
            "resume_from": "[None]"},
         {"model": ("unet", 0), "vae": ("vae", 0), "images": ("frames", 0), "conditioning": ("caption", 0)}),
        ("loss", "LossGraphNode", {"filename_prefix": "foveated/wan_loss_graph"}, {"loss": ("train", 1)}),
        ("lora", "LoraModelLoader", {"strength_model": 1.0, "bypass": False},
         {"model": ("unet", 0), "lora": ("train", 0)}),
        ("shift", "ModelSamplingSD3", {"shift": 8.0}, {"model": ("lora", 0)}),
        *_wan21_kite_video(),
        *_wan_output("video/foveated_wan21_trained_lora"),
    ],
}

def write_training_clip(directory, frames=9, width=128, height=96):
    """A stand-in for the user's TRAINING_CLIP in `directory` (an input folder): a gradient
    moving right, H.264 at 16 fps (PyAV, which ComfyUI's video nodes use)."""
    import av
    import numpy as np

    ramp = np.linspace(0, 255, width).astype(np.uint8)
    with av.open(str(Path(directory) / TRAINING_CLIP), mode="w") as container:
        stream = container.add_stream("libx264", rate=16)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for f in range(frames):
            rgb = np.repeat(np.roll(ramp, 8 * f)[None, :, None], 3, axis=2).repeat(height, axis=0)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "BOUNDING_BOX"}


def _inputs(node_cls):
    spec = node_cls.INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, value in spec.get(section, {}).items():
            typ = value[0]
            opts = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
            combo = isinstance(typ, list) or typ == "COMBO"
            is_widget = (combo or typ in WIDGET_TYPES) and not opts.get("forceInput", False)
            out.append({"name": name, "type": "COMBO" if combo else typ, "widget": is_widget,
                        "control": bool(opts.get("control_after_generate")), "upload": opts.get("image_upload")})
    return out


def _outputs(node_cls):
    types = list(node_cls.RETURN_TYPES)
    names = list(getattr(node_cls, "RETURN_NAMES", None) or types)
    return [(n, "COMBO" if isinstance(t, list) else t) for n, t in zip(names, types)]


def build(name, node_classes):
    """UI-format workflow (litegraph 0.4) for WORKFLOWS[name]."""
    spec = WORKFLOWS[name]
    ids = {key: i + 1 for i, (key, *_rest) in enumerate(spec["nodes"])}
    depth = {}
    for key, _typ, _w, links, *_opts in spec["nodes"]:
        depth[key] = 1 + max((depth[src] for src, _ in links.values()), default=-1)
    nodes, links, column_y = [], [], {}
    out_links = {}
    link_id = 0
    for order, (key, typ, widgets, conns, *opts) in enumerate(spec["nodes"]):
        opts = opts[0] if opts else {}
        nid = ids[key]
        node = {"id": nid, "type": typ, "pos": [0, 0], "size": [320, 120], "flags": {}, "order": order,
                "mode": opts.get("mode", 0), "inputs": [], "outputs": [], "properties": {"Node name for S&R": typ}}
        if "title" in opts:
            node["title"] = opts["title"]
        models = [{"name": v, "url": MODEL_SOURCES[v][1], "directory": MODEL_SOURCES[v][0]}
                  for v in widgets.values() if isinstance(v, str) and v in MODEL_SOURCES]
        if models:
            node["properties"]["models"] = models
        if typ in FRONTEND_ONLY:
            node["widgets_values"] = [widgets["text"]]
            node["size"] = [380, 260]
        else:
            cls = node_classes[typ]
            values = []
            for inp in _inputs(cls):
                n = inp["name"]
                if inp["widget"]:
                    if n not in widgets:
                        raise KeyError(f"{name}: {typ} needs widget value '{n}'")
                    values.append(widgets[n])
                    if inp["control"]:
                        values.append("fixed")
                    if inp["upload"]:
                        values.append("image")  # the frontend's upload button widget
                    if n in conns:
                        raise ValueError(f"{name}: {typ}.{n} is a widget; do not link it")
                elif n in conns:
                    link_id += 1
                    src, slot = conns[n]
                    src_type = _outputs(node_classes[spec_type(spec, src)])[slot][1]
                    if src_type != inp["type"] and "*" not in (src_type, inp["type"]):
                        raise TypeError(f"{name}: {src}.{slot} ({src_type}) -> {typ}.{n} ({inp['type']})")
                    node["inputs"].append({"name": n, "type": inp["type"], "link": link_id})
                    links.append([link_id, ids[src], slot, nid, len(node["inputs"]) - 1, inp["type"]])
                    out_links.setdefault((ids[src], slot), []).append(link_id)
            unknown = set(widgets) - {i["name"] for i in _inputs(cls)}
            unknown |= set(conns) - {i["name"] for i in _inputs(cls)}
            if unknown:
                raise KeyError(f"{name}: {typ} has no inputs {sorted(unknown)}")
            node["widgets_values"] = values
            for slot, (oname, otype) in enumerate(_outputs(cls)):
                node["outputs"].append({"name": oname, "type": otype, "links": [], "slot_index": slot})
        if typ not in FRONTEND_ONLY:
            rows = len(node["widgets_values"]) + max(len(node["inputs"]), len(node["outputs"]))
            height = 40 + 26 * rows + (CANVAS_HEIGHT if typ in CANVAS_NODES else 0)
            node["size"] = [360, height]
        col = depth[key]
        y = column_y.get(col, 40)
        column_y[col] = y + node["size"][1] + 50
        node["pos"] = [40 + 420 * col, y]
        nodes.append(node)
    for node in nodes:
        for out in node["outputs"]:
            out["links"] = out_links.get((node["id"], out["slot_index"]), [])
    return {
        "last_node_id": len(nodes), "last_link_id": link_id, "nodes": nodes, "links": links,
        "groups": [], "config": {}, "extra": {"foveated_about": spec["about"]}, "version": 0.4,
    }


def spec_type(spec, key):
    for k, typ, *_ in spec["nodes"]:
        if k == key:
            return typ
    raise KeyError(key)


def _connects(a, b):
    """LiteGraph.isValidConnection: "*" or no type fits anything, "A,B" fits A and B."""
    return "*" in (a, b) or "" in (a, b) or bool(set(a.lower().split(",")) & set(b.lower().split(",")))


def api_prompt(name, node_classes, overrides=None, replace=None):
    """The API-format prompt the frontend queues for WORKFLOWS[name]; node ids are the spec's keys.

    As the frontend converts a workflow: frontend-only nodes are left out, and a bypassed node
    is passed through: an input it fed takes what feeds the bypassed node's input at the same
    slot index if its type fits, else its first input of the same type, else its first input
    that fits; with none, the input is left unconnected. For test runs, overrides {key: {widget:
    value}} changes widget values, and replace {key: None or (class_type, widgets)} leaves a node
    out, with every input it fed, or runs another node in its place, keeping the links to the
    inputs it has.
    """
    overrides, replace = overrides or {}, replace or {}
    nodes = {key: (typ, widgets, links, opts[0] if opts else {})
             for key, typ, widgets, links, *opts in WORKFLOWS[name]["nodes"]}
    left_out = {key for key, (typ, _w, _l, opts) in nodes.items()
                if typ in FRONTEND_ONLY or opts.get("mode") == BYPASS or (key in replace and replace[key] is None)}

    def input_types(typ):
        return {i["name"]: i["type"] for i in _inputs(node_classes[typ])}

    def source(key, slot, want):
        """The [node, slot] that output `slot` of node `key` gives an input of type `want`."""
        typ, _widgets, links, opts = nodes[key]
        if opts.get("mode") != BYPASS:
            return None if key in left_out else [key, slot]
        # ExecutableNodeDTO._getBypassSlotIndex, on the input sockets the workflow file has
        sockets = [(n, t) for n, t in input_types(typ).items() if n in links]
        out = _outputs(node_classes[typ])[slot][1]
        fits = [i for i, (_n, t) in enumerate(sockets) if _connects(t, out) and _connects(t, want)]
        if want in ("*", ""):
            order = [slot if slot < len(sockets) else 0]
        else:
            order = [slot] if slot in fits else [i for i, (_n, t) in enumerate(sockets) if t == want] + fits
        return source(*links[sockets[order[0]][0]], want) if order and order[0] < len(sockets) else None

    prompt = {}
    for key, (typ, widgets, links, _opts) in nodes.items():
        if key in left_out:
            continue
        if key in replace:
            typ, inputs = replace[key]
            types = input_types(typ)
            links = {n: link for n, link in links.items() if n in types}
        else:
            inputs, types = {**widgets, **overrides.get(key, {})}, input_types(typ)
            unknown = (set(inputs) | set(links)) - set(types)
            if unknown:
                raise KeyError(f"{name}: {typ} has no inputs {sorted(unknown)}")
        inputs = dict(inputs)
        for n, (src, slot) in links.items():
            linked = source(src, slot, types[n])
            if linked:
                inputs[n] = linked
        prompt[key] = {"class_type": typ, "inputs": inputs}
    return prompt
