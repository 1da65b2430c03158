"""Every example workflow runs: its spec (tests/workflow_specs.py) converted to the API prompt
the frontend queues, on the tiny checkpoints, at a tiny size, through ComfyUI's executor.

What the tiny run changes, and nothing else: model files become the tiny ones (the tiny
Qwen-Image, Z-Image and Chroma load inside their detection patches, tests/comfy_fixtures/tiny_qwen_zimage.py
and tiny_models.py); the text encoders become random conditioning of the tiny model's width (the
fixtures have no text encoder; T5 Tokenizer Options goes with them) and the CLIP vision nodes are left out (no CLIP vision fixture; WanImageToVideo runs
without clip_vision_output, as in tests/test_comfy_wan_nodes.py); sizes shrink about 8x (Kontext's
image scale node, which always scales to about 1 MP, becomes an ImageScale to the tiny size),
videos to FRAMES frames (gaze keyframes moved along), sampling and LoRA training to STEPS steps
(training images fitted to the shrunk resolution)."""
import contextlib
import json
import logging
import math
import re
from pathlib import Path

import pytest
import torch

import workflow_specs

pytestmark = pytest.mark.comfyui
STEPS, FRAMES = 2, 5
TINY = {  # the example workflows' files -> the fixture (env.infos key) that stands in
    "flux-2-klein-base-4b.safetensors": "flux2_klein", "flux2-vae.safetensors": "flux2_vae",
    "flux1-dev.safetensors": "flux1_dev", "flux1-dev-kontext_fp8_scaled.safetensors": "flux1_kontext",
    "ae.safetensors": "flux_vae",
    "wan2.1_t2v_1.3B_fp16.safetensors": "wan21_t2v", "wan2.1_i2v_480p_14B_fp16.safetensors": "wan21_i2v",
    "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": "wan22_t2v_14b_high",
    "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": "wan22_t2v_14b_low", "wan_2.1_vae.safetensors": "wan21_vae",
    "hunyuanvideo1.5_720p_t2v_fp16.safetensors": "hunyuan_video15_t2v",
    "hunyuanvideo15_vae_fp16.safetensors": "hunyuan15_vae",
    "qwen_image_fp8_e4m3fn.safetensors": "qwen_image", "qwen_image_vae.safetensors": "wan21_vae",
    "z_image_turbo_bf16.safetensors": "z_image", "Chroma1-HD.safetensors": "chroma",
}
CONTEXT = {"flux": (64, 32), "flux2": (64, 0), "wan": (4096, 0),  # CLIP type -> tiny context_dim, pooled_dim
           "hunyuan_video_15": (64, 8),  # model_base.HunyuanVideo reads a pooled output; 1.5 ignores it
           "qwen_image": (64, 0), "lumina2": (64, 0), "chroma": (64, 0)}
DETECTION = {  # fixture -> (env module, its loader patch): these tiny files load only inside their patch
    "qwen_image": ("tiny_qwen_zimage", "qwen_detection_patch"), "z_image": ("tiny_qwen_zimage", "zimage_detection_patch"),
    "hunyuan15_vae": ("tiny_hunyuan", "hunyuan15_vae_detection_patch"),  # its widths read from the tensors
    "chroma": ("tiny_models", "chroma_detection_patch"),  # its approximator width read from the tensors
}
LEFT_OUT = {"CLIPLoader", "DualCLIPLoader", "CLIPVisionLoader", "CLIPVisionEncode", "T5TokenizerOptions"}


def _px(v):
    """About 1/8 of a workflow's pixel size, in whole 32 px (2 x 2 tokens of 16 px), at least 64."""
    return 32 * max(2, round(v / 256))


def _tiny_widgets(env, typ, w):
    out = {}
    for n, v in w.items():
        if n in ("unet_name", "vae_name"):
            out[n] = env.infos[TINY[v]]["name"]
        elif typ == "PrimitiveBoundingBox":
            out[n] = v // 8
        elif n in ("width", "height") or (n == "resolution" and v):  # resolution 0: images keep their size
            out[n] = _px(v)
        elif n in ("length", "num_frames"):
            out[n] = FRAMES
        elif n == "keyframes":
            out[n] = json.dumps([{**k, "frame": round(k["frame"] * (FRAMES - 1) / (w["num_frames"] - 1))}
                                 for k in json.loads(v)])
        elif n == "steps":
            out[n] = STEPS
        elif n in ("start_at_step", "end_at_step") and v < w["steps"]:
            out[n] = v * STEPS // w["steps"]
    return out


def _expected_size(name):
    """(frames, height, width) of the tiny run's images; the workflow's sized nodes must agree."""
    nodes = [w for _key, typ, w, *_ in workflow_specs.WORKFLOWS[name]["nodes"] if typ != "PrimitiveBoundingBox"]
    sizes = {(w["height"], w["width"]) for w in nodes if {"width", "height"} <= set(w)}
    frames = {w.get("length", w.get("num_frames")) for w in nodes if {"length", "num_frames"} & set(w)}
    assert len(sizes) == 1 and len(frames) <= 1, f"{name}: sizes {sizes} and frame counts {frames} disagree"
    (height, width), = sizes
    return FRAMES if frames else 1, _px(height), _px(width)


def tiny_prompt(env, name):
    """(API prompt, the keys of the nodes it leaves out) for a tiny run of WORKFLOWS[name]."""
    nodes = {key: (typ, w, links) for key, typ, w, links, *_ in workflow_specs.WORKFLOWS[name]["nodes"]}
    overrides, replace = {}, {}
    for key, (typ, w, links) in nodes.items():
        if typ in LEFT_OUT:
            replace[key] = None
        elif typ == "CLIPTextEncode":
            clip = links["clip"][0]
            while "clip" in nodes[clip][2]:  # through CLIP -> CLIP nodes (T5TokenizerOptions) to the loader
                clip = nodes[clip][2]["clip"][0]
            context_dim, pooled_dim = CONTEXT[nodes[clip][1]["type"]]
            replace[key] = ("HarnessRandomConditioning", {"seed": len(replace), "n_tokens": 5, "guidance": -1.0,
                                                          "context_dim": context_dim, "pooled_dim": pooled_dim})
        elif typ == "FluxKontextImageScale":  # it scales to about 1 MP; scale to the workflow's tiny size instead
            _frames, height, width = _expected_size(name)
            replace[key] = ("ImageScale", {"upscale_method": "lanczos", "width": width, "height": height,
                                           "crop": "center"})
        else:
            overrides[key] = _tiny_widgets(env, typ, w)
    prompt = workflow_specs.api_prompt(name, env.handle.node_class_mappings, overrides, replace)
    return prompt, {key for key, new in replace.items() if new is None}


@pytest.fixture(scope="module")
def example_image(env):
    """LoadImage's example.png, as ComfyUI ships it in its input folder, and the clip the Wan
    training workflow's Load Video names (a user's own file)."""
    import folder_paths

    path = Path(folder_paths.get_input_directory()) / "example.png"
    path.write_bytes((env.root / "input" / "example.png").read_bytes())
    workflow_specs.write_training_clip(path.parent)


@pytest.mark.parametrize("name", sorted(workflow_specs.WORKFLOWS))
def test_workflow_runs_on_tiny_models(env, example_image, caplog, name):
    import comfy.utils
    import folder_paths

    prompt, left_out = tiny_prompt(env, name)
    saves = {k: n["inputs"] for k, n in prompt.items() if n["class_type"] in ("SaveImage", "SaveVideo")}
    assert saves, f"{name} saves nothing"
    out_dir = Path(folder_paths.get_output_directory())
    before = {key: set(out_dir.glob(inputs["filename_prefix"] + "*")) for key, inputs in saves.items()}
    tiny = {TINY[v] for _k, _t, w, *_ in workflow_specs.WORKFLOWS[name]["nodes"] for v in w.values()
            if isinstance(v, str) and v in TINY}
    with contextlib.ExitStack() as stack, caplog.at_level(logging.INFO, logger="foveated"):
        for key in sorted(tiny & set(DETECTION)):
            module, patch = DETECTION[key]
            stack.enter_context(getattr(getattr(env, module), patch)())
        r = env.harness.run_prompt(env.handle, prompt, clear_cache=True)

    spec = workflow_specs.WORKFLOWS[name]["nodes"]
    bypassed = {key for key, _t, _w, _l, *opts in spec if opts and opts[0].get("mode") == workflow_specs.BYPASS}
    ran = {key for key, typ, *_ in spec if typ not in workflow_specs.FRONTEND_ONLY} - bypassed - left_out
    assert set(r) == ran

    frames, height, width = _expected_size(name)
    for key, inputs in saves.items():
        if "images" in inputs:
            images = r[inputs["images"][0]][inputs["images"][1]]
        else:
            images = r[inputs["video"][0]][inputs["video"][1]].get_components().images
        assert images.shape == (frames, height, width, 3) and bool(torch.isfinite(images).all())
        assert set(out_dir.glob(inputs["filename_prefix"] + "*")) - before[key], f"{key} wrote no file"

    for key, node in prompt.items():
        if node["class_type"] == "ApplyFoveation":
            ratio = re.search(r"tokens \(([\d.]+)%", r[key][1])
            assert ratio and float(ratio[1]) < 100, r[key][1]
        if node["class_type"] == "ProgressiveResolution":
            scales = [s.strip() for s in node["inputs"]["scales"].split(",")]
            assert r[key][1].startswith(f"stages {' -> '.join(scales)}"), r[key][1]
            logged = [m for m in caplog.messages if m.startswith("Progressive")]
            assert logged and len(re.findall(r"% tokens x \d+ steps", logged[-1])) == len(scales), logged
        if node["class_type"] == "TrainFoveatedLoRA":  # trained STEPS steps and saved the LoRA it gives
            lora, losses, steps = r[key]
            assert steps == STEPS and len(losses["loss"]) == STEPS and all(map(math.isfinite, losses["loss"]))
            saved = Path(folder_paths.get_folder_paths("loras")[0]) / (node["inputs"]["lora_name"] + ".safetensors")
            sd = comfy.utils.load_torch_file(str(saved))
            assert set(sd) == set(lora) and all(torch.equal(sd[k], lora[k]) for k in sd)
        if node["class_type"] == "LossGraphNode":  # the curve is drawn (a preview image, as core's node shows it)
            assert env.handle.executor.history_result["outputs"][key]["images"]


def test_a_bypassed_node_passes_its_input_through(env):
    """As the frontend queues it: the bypassed LoRA loader is left out, its MODEL input goes on."""
    prompt = workflow_specs.api_prompt("flux2_klein_foveated_t2i_paper_lora", env.handle.node_class_mappings)
    assert "lora" not in prompt and "note" not in prompt
    assert prompt["apply"]["inputs"]["model"] == ["unet", 0]
