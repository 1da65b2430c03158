"""Train Foveated LoRA through ComfyUI's real executor, on tiny random real-format models:
the loss falls, the saved file is what LoraLoaderModelOnly loads and it acts exactly like the
in-memory LORA_MODEL, the base model is untouched, zero steps change nothing, a cancel keeps
the last step and training resumes from it, and every bad input fails before training."""
import contextlib
import logging
import os
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_fixtures.prompts import Prompt, base, fovea, ksampler

pytestmark = pytest.mark.comfyui

FAM = "flux1_dev"  # FLUX.1: the fastest tiny family (FLUX.2 pads the text to 512 tokens)
TRAIN_DEFAULTS = dict(image_folder="[None]", lora_name="foveated/test_lora", steps=4, batch_size=1,
                      learning_rate=1e-3, rank=4, alpha=4.0, seed=0, fovea_mode="random circles",
                      periphery="1/2 resolution", resolution=0, target_modules="", gradient_checkpointing=False,
                      training_dtype="fp32", save_every=0, resume_from="[None]")


@pytest.fixture(scope="module")
def tenv(env):
    shutil.copy(env.root / "input" / "example.png", input_dir() / "example.png")
    return env


@pytest.fixture
def lt(tenv):
    return tenv.pack.nodes.lora_training


def run(env, prompt, **kw):
    return env.harness.run_prompt(env.handle, prompt, clear_cache=kw.pop("clear_cache", True), **kw)


def input_dir():
    import folder_paths

    return Path(folder_paths.get_input_directory())


def shown_text(env, node_id):
    """The text a node showed in the last run (its ui output, as ComfyUI's history keeps it)."""
    return env.handle.executor.history_result["outputs"][node_id]["text"][0]


@pytest.fixture
def trainings(lt, monkeypatch):
    """Counts the training runs (lt.train calls) of the test."""
    calls = []
    orig = lt.train
    monkeypatch.setattr(lt, "train", lambda *a, **k: calls.append(1) or orig(*a, **k))
    return calls


def images(p, size=64, n=2):
    """n small training images from ComfyUI's example.png (scaled, flipped, rotated)."""
    load = p.add("LoadImage", image="example.png")
    w, h = (size, size) if isinstance(size, int) else size
    img = p.add("ImageScale", image=p.out(load), upscale_method="area", width=w, height=h, crop="center")
    out = img
    variants = [("ImageFlip", {"flip_method": "y-axis: horizontally"}), ("ImageRotate", {"rotation": "180 degrees"}),
                ("ImageFlip", {"flip_method": "x-axis: vertically"})]
    for kind, kw in variants[: n - 1]:
        v = p.add(kind, image=p.out(img), **kw)
        out = p.add("ImageBatch", image1=p.out(out), image2=p.out(v))
    return out


def trainer(p, m, v, imgs, cond, **kw):
    inputs = dict(TRAIN_DEFAULTS, **kw)
    extra = {}
    if imgs is not None:
        extra["images"] = p.out(imgs)
    if cond is not None:
        extra["conditioning"] = p.out(cond)
    for k in ("bboxes", "clip"):
        if k in inputs:
            extra[k] = p.out(inputs.pop(k))
    return p.add("TrainFoveatedLoRA", model=p.out(m), vae=p.out(v), **extra, **inputs)


def lora_file(env, name):
    return env.models / "loras" / f"{name}.safetensors"


def metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def test_loss_decreases_on_a_tiny_dataset(tenv, monkeypatch):
    import server

    texts = []
    monkeypatch.setattr(server.PromptServer.instance, "send_progress_text",
                        lambda text, node_id, sid=None: texts.append((node_id, text)), raising=False)
    steps_seen = []
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    t = trainer(p, m, v, images(p, n=2), pos, steps=60, learning_rate=1e-2, rank=8, alpha=8.0,
                target_modules="img_in, final_layer.linear, img_attn.qkv, img_attn.proj, img_mlp.0, img_mlp.2, "
                               "linear1, linear2", lora_name="foveated/loss")
    r = run(tenv, p, on_progress=lambda value, total, node: steps_seen.append((node, value, total)))
    lora, loss_map, steps = r[t]
    losses = loss_map["loss"]
    assert steps == 60 and len(losses) == 60 and all(np.isfinite(losses))
    first, last = statistics.mean(losses[:15]), statistics.mean(losses[-15:])
    assert last < 0.92 * first, (first, last)
    assert shown_text(tenv, t).startswith("60 steps")
    texts = [text for node, text in texts if node == t]
    assert texts and texts[-1].startswith("step 60/60  loss ")
    bar = [(value, total) for node, value, total in steps_seen if node == t]
    assert bar and bar[-1] == (60, 60) and [v for v, _ in bar] == sorted(v for v, _ in bar)


def test_saved_file_loads_like_the_in_memory_lora_and_the_base_is_untouched(tenv, trainings, caplog):
    harness = tenv.harness

    def sample(p, model, pos, neg, lat, f):
        return ksampler(p, p.add("ApplyFoveation", model=p.out(model), fovea=p.out(f)), pos, neg, lat, steps=2)

    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    f = fovea(p, x=0.4, radius=0.3, width=64, height=64)
    s_base = sample(p, m, pos, neg, lat, f)
    r0 = run(tenv, p)
    before = r0[s_base][0]["samples"].clone()
    base_sd = {k: t.clone() for k, t in r0[m][0].model.state_dict().items()}

    t = trainer(p, m, v, images(p, n=2), pos, steps=8, learning_rate=1e-2, lora_name="foveated/roundtrip")
    r1 = run(tenv, p, clear_cache=False)  # the base model objects stay cached
    path = lora_file(tenv, "foveated/roundtrip")
    assert path.is_file() and metadata(path)["foveated_lora_steps"] == "8"
    lora = r1[t][0]
    assert any(float(x.abs().max()) > 0 for k, x in lora.items() if k.endswith("lora_down.weight"))
    # the base model: same weights, same output
    assert all(torch.equal(base_sd[k], x) for k, x in r1[m][0].model.state_dict().items())
    assert torch.equal(r1[s_base][0]["samples"], before)

    harness.refresh_model_lists(tenv.handle)
    mem = p.add("LoraModelLoader", model=p.out(m), lora=p.out(t), strength_model=1.0, bypass=False)
    disk = p.add("LoraLoaderModelOnly", model=p.out(m), lora_name="foveated/roundtrip.safetensors",
                 strength_model=1.0)
    s_mem, s_disk = sample(p, mem, pos, neg, lat, f), sample(p, disk, pos, neg, lat, f)
    with caplog.at_level(logging.WARNING):
        r2 = run(tenv, p, clear_cache=False)
    assert len(trainings) == 1, "the trainer's output comes from the cache, not a second training"
    assert not [rec for rec in caplog.records if "lora key not loaded" in rec.getMessage()]
    a, b = r2[s_mem][0]["samples"], r2[s_disk][0]["samples"]
    assert torch.equal(a, b), "the saved file must act exactly like the in-memory LoRA"
    assert not torch.equal(a, before), "the trained LoRA changes the output"
    assert torch.equal(r2[s_base][0]["samples"], before)
    # every tensor of the file is a LoRA key ComfyUI maps onto a model weight
    import comfy.lora
    import comfy.utils

    sd = comfy.utils.load_torch_file(str(path))
    assert set(sd) == set(lora) and all(torch.equal(sd[k], lora[k]) for k in sd)
    key_map = comfy.lora.model_lora_keys_unet(r2[m][0].model, {})
    patches = comfy.lora.load_lora(sd, key_map)
    assert len(patches) == len(sd) // 3
    # ... and the loaded file acts as the LoRA did while training: the trainer's LoraDiff
    # weight wrappers (scale alpha / rank) on the same layers give the same prediction
    import comfy.sample
    from comfy.weight_adapter.lora import LoraDiff

    trained = r2[m][0].clone()
    for key in sd:
        if key.endswith(".lora_up.weight"):
            name = key[: -len(".lora_up.weight")]
            trained.add_weight_wrapper(name + ".weight", LoraDiff(  # alpha as trained, not as saved
                (sd[key], sd[name + ".lora_down.weight"], TRAIN_DEFAULTS["alpha"], None, None, None)))
    loaded = r2[disk][0]
    cond = harness.random_conditioning(7, 64, 32, guidance=3.5)
    noise = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        outs = [comfy.sample.sample(mp, noise, 2, 1.0, "euler", "simple", cond, cond, torch.zeros_like(noise))
                for mp in (trained, loaded, r2[m][0])]
    assert torch.allclose(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(outs[0], outs[2], atol=1e-3)


def test_training_runs_the_foveated_forward_on_the_paper_targets(tenv, lt, monkeypatch):
    """Every training forward goes through Apply Foveation's adapter on a packed sequence
    shorter than the full grid, and the targets' periphery is the latent of the downsampled
    image (the Foveated Encode rule), not a pooled full-resolution latent."""
    import torch.nn.functional as F

    adapters = tenv.pack.nodes.adapters.flux
    seen = []
    orig = adapters.FluxAdapter.forward

    hooks = []

    cudnn_attention = []  # a new fovea each step: no cuDNN SDPA (it builds a plan per new shape)

    def spy(self, executor, args, kwargs, call):
        seen.append((sum(t.shape[0] for t in call.lengths), tuple(args[0].shape)))
        cudnn_attention.append(torch.backends.cuda.cudnn_sdp_enabled())
        qkv = self.running_model(executor).double_blocks[0].img_attn.qkv
        hooks.append(type(getattr(qkv.forward, "__self__", None)).__name__)
        return orig(self, executor, args, kwargs, call)

    monkeypatch.setattr(adapters.FluxAdapter, "forward", spy)
    encoded = []
    orig_enc = lt.encode_dataset
    monkeypatch.setattr(lt, "encode_dataset", lambda *a, **k: encoded.append(orig_enc(*a, **k)) or encoded[-1])
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    img = images(p, size=128, n=1)
    trainer(p, m, v, img, pos, steps=3, batch_size=2, lora_name="foveated/forward")
    before = torch.backends.cuda.cudnn_sdp_enabled()
    r = run(tenv, p)
    assert len(seen) == 6  # 3 steps x 2 samples, each one foveated forward
    assert cudnn_attention == [False] * 6 and torch.backends.cuda.cudnn_sdp_enabled() == before
    full_tokens = (128 // 16) ** 2
    assert all(n < full_tokens for n, _ in seen) and len({n for n, _ in seen}) > 1  # a new fovea per sample
    assert all(shape[-2] == 2 and shape[-1] == 2 * n for n, shape in seen)  # the strip of packed tokens
    assert set(hooks) == {"BypassForwardHook"}  # core's bypass LoRA on the target layers
    (full, low), = encoded[0]
    model, vae, pixels = r[m][0].model, r[v][0], r[img][0]
    fc = tenv.pack.fov_core
    with torch.inference_mode():
        want_full = model.process_latent_in(vae.encode(pixels[..., :3]).float())
        want_low = model.process_latent_in(vae.encode(fc.downsample_image(pixels[..., :3], 2, 8)).float())
    assert torch.allclose(full, want_full, atol=1e-6) and torch.allclose(low[1], want_low, atol=1e-6)
    assert not torch.allclose(low[1], F.avg_pool2d(full, 2), atol=1e-3)


def test_zero_steps_with_a_zero_initialised_lora_is_the_base_model(tenv):
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    f = fovea(p, radius=0.25, width=64, height=64, periphery="1/4 resolution")
    t = trainer(p, m, v, images(p, n=1), pos, steps=0, periphery="1/4 resolution", lora_name="foveated/zero")
    mem = p.add("LoraModelLoader", model=p.out(m), lora=p.out(t), strength_model=1.0, bypass=False)
    s_lora = ksampler(p, p.add("ApplyFoveation", model=p.out(mem), fovea=p.out(f)), pos, neg, lat, steps=2)
    s_base = ksampler(p, p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f)), pos, neg, lat, steps=2)
    s_lora_nat = ksampler(p, mem, pos, neg, lat, steps=2)
    s_base_nat = ksampler(p, m, pos, neg, lat, steps=2)
    r = run(tenv, p)
    lora, losses, steps = r[t]
    assert steps == 0 and losses["loss"] == []
    assert all(float(x.abs().max()) == 0 for k, x in lora.items() if k.endswith("lora_down.weight"))
    assert any(float(x.abs().max()) > 0 for k, x in lora.items() if k.endswith("lora_up.weight"))
    assert torch.equal(r[s_lora][0]["samples"], r[s_base][0]["samples"])
    assert torch.equal(r[s_lora_nat][0]["samples"], r[s_base_nat][0]["samples"])
    assert lora_file(tenv, "foveated/zero").is_file()


def test_flux2_trains_with_gradient_checkpointing_and_bf16(tenv):
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux2_klein", width=64, height=64)
    t = trainer(p, m, v, images(p, n=1), pos, steps=2, gradient_checkpointing=True, training_dtype="bf16",
                lora_name="foveated/flux2")
    lora, losses, steps = run(tenv, p)[t]
    assert steps == 2 and all(np.isfinite(losses["loss"]))
    assert "diffusion_model.single_blocks.0.linear1.lora_up.weight" in lora
    assert "diffusion_model.single_blocks.0.linear2.lora_up.weight" not in lora  # the paper's targets


def test_gradient_checkpointing_and_weight_wrappers_give_the_same_lora(tenv, lt, monkeypatch):
    """Bypass LoRA (default) with and without gradient checkpointing, and core's weight-wrapper
    LoRA (W + scale up @ down, the fallback): the same losses and the same trained LoRA."""
    out = []
    for ck, bypass in ((False, True), (True, True), (False, False)):
        monkeypatch.setattr(lt, "USE_BYPASS", bypass)
        p = Prompt()
        m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
        t = trainer(p, m, v, images(p, n=2), pos, steps=3, learning_rate=1e-2, gradient_checkpointing=ck,
                    lora_name=f"foveated/ck{int(ck)}{int(bypass)}")
        out.append(run(tenv, p)[t])
    a, la, _ = out[0]
    for b, lb, _ in out[1:]:
        assert la["loss"] == pytest.approx(lb["loss"], rel=1e-4)
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k


def test_a_model_with_apply_foveation_trains_like_the_plain_model(tenv):
    out = []
    for with_fovea in (False, True):
        p = Prompt()
        m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
        if with_fovea:
            m = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(fovea(p, width=64, height=64)))
        t = trainer(p, m, v, images(p, n=1), pos, steps=2, lora_name=f"foveated/af{int(with_fovea)}")
        out.append(run(tenv, p)[t][0])
    assert all(torch.equal(out[0][k], out[1][k]) for k in out[0])


def test_cancel_keeps_the_last_step_and_training_resumes(tenv, lt):
    harness = tenv.harness
    name = "foveated/cancel"
    path = lora_file(tenv, name)
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    trainer(p, m, v, images(p, n=2), pos, steps=200, save_every=0, lora_name=name)
    seen = []

    def stop(value, total, node):
        seen.append(value)
        if value >= 3:
            harness.interrupt(tenv.handle)

    with pytest.raises(harness.PromptInterrupted):
        run(tenv, p, on_progress=stop)
    meta = metadata(path)
    done = int(meta["foveated_lora_steps"])
    assert 3 <= done < 200 and meta["foveated_lora_saved"] == "interrupted"
    assert not os.path.exists(str(path) + ".tmp")
    saved = {k: x.clone() for k, x in __import__("comfy.utils").utils.load_torch_file(str(path)).items()}

    harness.refresh_model_lists(tenv.handle)
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    same = trainer(p, m, v, images(p, n=2), pos, steps=0, resume_from=f"{name}.safetensors", lora_name=name)
    r = run(tenv, p)
    lora, _, steps = r[same]
    assert steps == done and all(torch.equal(lora[k], saved[k]) for k in saved)
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    more = trainer(p, m, v, images(p, n=2), pos, steps=2, resume_from=f"{name}.safetensors", lora_name=name)
    lora, _, steps = run(tenv, p)[more]
    assert steps == done + 2 and int(metadata(path)["foveated_lora_steps"]) == done + 2
    assert not all(torch.equal(lora[k], saved[k]) for k in saved)


def test_saliency_and_box_foveae(tenv, lt, monkeypatch):
    seen = []
    orig = lt._Run.patch_for

    def spy(self, index):
        patch = orig(self, index)
        seen.append((index, patch.fovea))
        return patch

    monkeypatch.setattr(lt._Run, "patch_for", spy)
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    box = p.add("PrimitiveBoundingBox", x=8, y=16, width=24, height=20)
    t = trainer(p, m, v, images(p, size=(96, 64), n=1), pos, steps=3, fovea_mode="boxes", bboxes=box,
                lora_name="foveated/boxes")
    run(tenv, p)
    foveae = [f for _, f in seen]
    assert len(foveae) == 3 and all(f is foveae[0] for f in foveae)  # fixed per image
    (b,) = foveae[0].regions
    assert (b.x0, b.y0, b.x1, b.y1) == pytest.approx(((8 - 2.4) / 96, (16 - 2) / 64, (32 + 2.4) / 96, (36 + 2) / 64))
    seen.clear()
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    t = trainer(p, m, v, images(p, n=2), pos, steps=4, fovea_mode="saliency", lora_name="foveated/saliency")
    assert run(tenv, p)[t][2] == 4
    by_image = {}
    for i, f in seen:
        by_image.setdefault(i, set()).add(id(f))
    assert len(by_image) == 2 and all(len(s) == 1 for s in by_image.values())
    g = seen[0][1].regions[0]
    assert 0.2 <= g.radius <= 0.5


def test_image_folder_with_caption_files_and_a_text_encoder(tenv):
    """A folder inside the input directory; each caption file is encoded with the clip input
    (a stand-in text encoder here: the tiny fixtures have none)."""
    folder = input_dir() / "train_set"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i, size in enumerate(((64, 64), (80, 48))):  # images of different sizes are fine
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(f"caption {i}")
    texts = []

    class StubClip:
        def tokenize(self, text):
            texts.append(text)
            return text

        def encode_from_tokens_scheduled(self, tokens):
            return tenv.harness.random_conditioning(5, 64, 32, seed=len(tokens), guidance=3.5)

    from comfy import sd as comfy_sd

    mp = comfy_sd.load_diffusion_model(str(tenv.models / "diffusion_models" / "tiny_flux1_dev.safetensors"))
    vae = comfy_sd.VAE(sd=__import__("comfy.utils").utils.load_torch_file(
        str(tenv.models / "vae" / "tiny_flux_ae.safetensors")))
    node = tenv.pack.nodes.train_node.TrainFoveatedLoRA
    kw = {k: [v] for k, v in dict(TRAIN_DEFAULTS, image_folder="train_set", steps=2,
                                  lora_name="foveated/folder").items()}
    with torch.inference_mode():
        out = node.execute(model=[mp], vae=[vae], clip=[StubClip()], **kw)
    lora, losses, steps = out.result
    assert steps == 2 and len(losses["loss"]) == 2 and texts == ["caption 0", "caption 1"]
    (folder / "img1.txt").unlink()
    with pytest.raises(ValueError, match="no caption file"):
        node.execute(model=[mp], vae=[vae], clip=[StubClip()], **kw)
    (folder / "img1.txt").write_text("caption 1")
    with pytest.raises(ValueError, match="connect the clip input"):
        node.execute(model=[mp], vae=[vae], **kw)


def test_an_image_folder_is_retrained_when_its_files_change(tenv, trainings):
    folder = input_dir() / "train_set2"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"a{i}.png")
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    t = trainer(p, m, v, None, pos, image_folder="train_set2", steps=1, lora_name="foveated/folder2")
    assert run(tenv, p)[t][2] == 1 and len(trainings) == 1
    assert run(tenv, p, clear_cache=False)[t][2] == 1 and len(trainings) == 1  # nothing changed: no retraining
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "a2.png")
    r = run(tenv, p, clear_cache=False)
    assert len(trainings) == 2 and r[t][2] == 1


BAD = {
    "no images": (dict(), "no training images"),
    "captions do not match": (dict(n_images=3, two_captions=True), r"2 captions \(CONDITIONING\) for 3 images"),
    "image smaller than a coarse block": (dict(size=48, periphery="1/4 resolution"),
                                          r"48x48 px.*smaller than one 1/4 periphery block \(64x64 px\)"),
    "name escapes with ..": (dict(lora_name="foveated/../../escaped"), "escapes ComfyUI's loras folder"),
    "absolute name": (dict(lora_name="/tmp/escaped"), "relative to ComfyUI's loras folder"),
    "symlink out of the loras folder": (dict(lora_name="outside_link/escaped"), "resolves outside"),
    "unsupported family": (dict(family="hunyuan_video_t2v"),
                           r"does not support this model \(HunyuanVideo\)\. Supported families: FLUX\.1.*Wan"),
    "image family the trainer does not know": (dict(family="qwen_image"),
                                               r"does not support this model \(QwenImageTransformer2DModel\)"),
    "unknown target modules": (dict(target_modules="img_attn.qkv, no_such_layer"), r"\['no_such_layer'\] match no"),
    "boxes mode without boxes": (dict(fovea_mode="boxes"), "needs the bboxes input"),
    "someone else's file": (dict(lora_name="foreign"), "was not written by Train Foveated LoRA"),
    "vae of another family": (dict(vae="tiny_flux2_ae.safetensors"), "connect the model's own VAE"),
    "folder and images": (dict(image_folder="train_set_bad"), "either as the images input or as image_folder"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_before_any_training(tenv, lt, monkeypatch, case):
    kw, match = BAD[case]
    kw = dict(kw)
    loras = tenv.models / "loras"
    loras.mkdir(exist_ok=True)
    outside = tenv.models.parent / "outside_target"  # not inside the models tree: no symlink loop
    outside.mkdir(exist_ok=True)
    (loras / "outside_link").unlink(missing_ok=True)
    os.symlink(outside, loras / "outside_link")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(loras / "foreign.safetensors"))
    (input_dir() / "train_set_bad").mkdir(exist_ok=True)

    def started(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(lt, "encode_dataset", started)
    monkeypatch.setattr(lt, "train", started)
    p = Prompt()
    m, v, lat, pos, neg = base(p, FAM, width=64, height=64)
    family = kw.pop("family", None)
    if family:
        m = p.add("UNETLoader", unet_name=tenv.infos[family]["name"], weight_dtype="default")
    if "vae" in kw:
        v = p.add("VAELoader", vae_name=kw.pop("vae"))
    cond = pos
    if kw.pop("two_captions", False):
        cond = p.add("ConditioningCombine", conditioning_1=p.out(pos), conditioning_2=p.out(neg))
    imgs = None if case == "no images" else images(p, size=kw.pop("size", 64), n=kw.pop("n_images", 2))
    t = trainer(p, m, v, imgs, cond, **kw)
    detection = tenv.tiny_qwen_zimage.qwen_detection_patch if family == "qwen_image" else contextlib.nullcontext
    with pytest.raises(tenv.harness.PromptExecutionError, match=match) as exc, detection():
        run(tenv, p)
    assert str(exc.value).startswith(f"TrainFoveatedLoRA (#{t}): ValueError: ")  # the trainer refused
    assert "training started" not in str(exc.value)
    try:
        assert not (loras / "escaped.safetensors").exists() and not list(outside.iterdir())
        assert not (tenv.models.parent / "escaped.safetensors").exists()
    finally:
        (loras / "outside_link").unlink()


def test_caption_and_box_inputs_are_split_per_image(tenv, lt):
    parts = [tenv.harness.random_conditioning(5, 64, 32, seed=i, guidance=3.5)[0] for i in range(3)]
    cond = [[torch.cat([c for c, _ in parts]),
             {"pooled_output": torch.cat([e["pooled_output"] for _, e in parts]), "guidance": 3.5}]]
    entries = lt.flatten_conditioning([cond, tenv.harness.random_conditioning(5, 64, 32)])
    assert len(entries) == 4
    for i, (t, extra) in enumerate(entries[:3]):
        assert torch.equal(t, cond[0][0][i : i + 1]) and torch.equal(extra["pooled_output"],
                                                                       cond[0][1]["pooled_output"][i : i + 1])
        assert extra["guidance"] == 3.5
    box = {"x": 1, "y": 2, "width": 3, "height": 4}
    assert lt.per_image_boxes([[[box], []]], 2) == [[box], []]  # RT-DETR on a batch: one list per image
    assert lt.per_image_boxes([box], 3) == [[box]] * 3  # one box for every image
    assert lt.per_image_boxes([[box, box]], 1) == [[box, box]]
    with pytest.raises(ValueError, match="boxes for 2 images but there are 3"):
        lt.per_image_boxes([[[box], [box]]], 3)
