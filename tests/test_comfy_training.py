"""Train Foveated LoRA through ComfyUI's real executor, on tiny random real-format models."""
import shutil

import pytest
import torch

from comfy_fixtures.prompts import FAMILY, Prompt, base, fovea, ksampler

pytestmark = pytest.mark.comfyui

TRAIN_DEFAULTS = dict(image_folder="[None]", lora_name="foveated/test_lora", steps=4, batch_size=1,
                      learning_rate=1e-3, rank=4, alpha=4.0, seed=0, fovea_mode="random circles",
                      periphery="1/2 resolution", resolution=0, target_modules="", gradient_checkpointing=False,
                      training_dtype="fp32", save_every=0, resume_from="[None]")


@pytest.fixture(scope="module")
def tenv(env):
    src = env.root / "input" / "example.png"
    shutil.copy(src, env.handle.input_dir / "example.png")
    return env


def run(env, prompt, **kw):
    return env.harness.run_prompt(env.handle, prompt, clear_cache=True, **kw)


def images(p, size=64, n=2):
    """n small training images from ComfyUI's example.png (scaled, flipped, rotated)."""
    load = p.add("LoadImage", image="example.png")
    img = p.add("ImageScale", image=p.out(load), upscale_method="area", width=size, height=size, crop="center")
    out = img
    variants = [("ImageFlip", {"flip_method": "y-axis: horizontally"}), ("ImageRotate", {"rotation": "90 degrees"}),
                ("ImageFlip", {"flip_method": "x-axis: vertically"})]
    for kind, kw in variants[: n - 1]:
        v = p.add(kind, image=p.out(img), **kw)
        out = p.add("ImageBatch", image1=p.out(out), image2=p.out(v))
    return out


def trainer(p, m, v, imgs, cond, **kw):
    inputs = dict(TRAIN_DEFAULTS, **kw)
    return p.add("TrainFoveatedLoRA", model=p.out(m), vae=p.out(v), images=p.out(imgs), conditioning=p.out(cond),
                 **inputs)


def test_smoke(tenv):
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux2_klein", width=64, height=64)
    t = trainer(p, m, v, images(p), pos, steps=3)
    r = run(tenv, p)
    lora, loss_map, steps = r[t]
    assert steps == 3 and len(loss_map["loss"]) == 3
    assert any(k.endswith(".lora_up.weight") for k in lora)
