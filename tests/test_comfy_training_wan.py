"""Train Foveated LoRA on video (Wan text-to-video) through ComfyUI's real executor, on tiny
random real-format checkpoints: a clip (an IMAGE batch of frames, or a video file in a folder)
trains with a random gaze path per sample through the same foveated forward as inference, the
loss falls, the saved file is what LoraLoaderModelOnly loads and acts exactly like the in-memory
LORA_MODEL, the base model is untouched, and the modes and models that do not fit fail first."""
import logging
import shutil
import statistics
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from comfy_fixtures.prompts import Prompt, base

pytestmark = pytest.mark.comfyui
W, H, FRAMES = 96, 64, 9  # 9 video frames = 3 latent frames of 6 x 4 tokens (16 px)
TRAIN = dict(image_folder="[None]", lora_name="foveated/wan_test", steps=4, batch_size=1, learning_rate=1e-3,
             rank=4, alpha=4.0, seed=0, fovea_mode="random gaze paths", periphery="1/2 resolution", resolution=0,
             target_modules="", gradient_checkpointing=False, training_dtype="fp32", save_every=0,
             resume_from="[None]")


@pytest.fixture(scope="module")
def tenv(env):
    shutil.copy(env.root / "input" / "example.png", input_dir() / "example.png")
    return env


def input_dir():
    import folder_paths

    return Path(folder_paths.get_input_directory())


def run(env, prompt, **kw):
    return env.harness.run_prompt(env.handle, prompt, clear_cache=kw.pop("clear_cache", True), **kw)


def wan(p, env, model="wan21_t2v", vae="wan21_vae"):
    m = p.add("UNETLoader", unet_name=env.infos[model]["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos[vae]["name"])
    c = {"n_tokens": 5, "context_dim": 4096, "pooled_dim": 0, "guidance": -1.0}
    return m, v, p.add("HarnessRandomConditioning", seed=1, **c), p.add("HarnessRandomConditioning", seed=2, **c)


def clip(p, frames=FRAMES, width=W, height=H):
    """A clip of `frames` frames: ComfyUI's example image and its mirror image, alternating."""
    load = p.add("LoadImage", image="example.png")
    img = p.add("ImageScale", image=p.out(load), upscale_method="area", width=width, height=height, crop="center")
    flip = p.add("ImageFlip", image=p.out(img), flip_method="y-axis: horizontally")
    out = img
    for i in range(1, frames):
        out = p.add("ImageBatch", image1=p.out(out), image2=p.out(flip if i % 2 else img))
    return out


def trainer(p, m, v, frames, cond, **kw):
    extra = {"images": p.out(frames)} if frames is not None else {}
    if "clip" in kw:
        extra["clip"] = p.out(kw.pop("clip"))
    return p.add("TrainFoveatedLoRA", model=p.out(m), vae=p.out(v), conditioning=p.out(cond), **extra,
                 **dict(TRAIN, **kw))


def gaze_path(p, frames=FRAMES):
    kf = '[{"frame": 0, "x": 0.3, "y": 0.4, "radius": 0.3}, {"frame": %d, "x": 0.7, "y": 0.6, "radius": 0.3}]' % (
        frames - 1)
    return p.add("GazePath", keyframes=kf, num_frames=frames, width=W, height=H, periphery="1/2 resolution",
                 ring_scale=2.0, feather=0.03)


def sample(p, model, pos, neg, fovea, lat):
    fm = p.add("ApplyFoveation", model=p.out(model), fovea=p.out(fovea), latent=p.out(lat))
    return p.add("KSampler", model=p.out(fm), seed=3, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple",
                 positive=p.out(pos), negative=p.out(neg), latent_image=p.out(lat), denoise=1.0)


def test_a_clip_trains_with_random_gaze_paths_and_the_saved_lora_loads(tenv, monkeypatch, caplog):
    """Wan 2.1 T2V on one 9-frame clip: every sample a new random gaze path (its fovea moves
    between latent frames) through Wan's foveated forward on a packed strip, a falling loss; the file LoraLoaderModelOnly loads gives
    exactly the in-memory LoRA's foveated video; the base model is untouched."""
    fc, pack = tenv.pack.fov_core, tenv.pack.nodes
    drawn, strips = [], []
    orig_draw, orig_forward = fc.TrainingFoveae.draw, pack.adapters.wan.WanAdapter.forward

    def draw(self, index, generator):
        drawn.append(orig_draw(self, index, generator))
        return drawn[-1]

    def forward(self, executor, args, kwargs, call):
        strips.append((sum(t.shape[0] for t in call.lengths), tuple(args[0].shape)))
        return orig_forward(self, executor, args, kwargs, call)

    monkeypatch.setattr(fc.TrainingFoveae, "draw", draw)
    monkeypatch.setattr(pack.adapters.wan.WanAdapter, "forward", forward)
    p = Prompt()
    m, v, pos, neg = wan(p, tenv)
    lat = p.add("EmptyHunyuanLatentVideo", width=W, height=H, length=FRAMES, batch_size=1)
    path = gaze_path(p)
    s_base = sample(p, m, pos, neg, path, lat)
    r0 = run(tenv, p)
    before = r0[s_base][0]["samples"].clone()
    base_sd = {k: t.clone() for k, t in r0[m][0].model.state_dict().items()}
    strips.clear()  # the base model's foveated sampling

    t = trainer(p, m, v, clip(p), pos, steps=40, learning_rate=2e-2, rank=8, alpha=8.0, lora_name="foveated/wan",
                target_modules="q, k, v, o, ffn.0, ffn.2, head.head")  # the output layer too: a faster fall
    r1 = run(tenv, p, clear_cache=False)
    lora, losses, steps = r1[t]
    losses = losses["loss"]
    assert steps == 40 and all(np.isfinite(losses))
    assert statistics.mean(losses[-10:]) < 0.9 * statistics.mean(losses[:10]), losses
    assert len(drawn) == 40 and all(f.path is not None and f.path.num_frames == FRAMES for f in drawn)
    assert len({f.path for f in drawn}) == 40  # a new path per sample
    layout = fc.TokenLayout(fc.rasterize(drawn[0], fc.TokenGrid(3, H // 16, W // 16, frame_stride=4)))
    assert len(strips) == 40 and all(n < 3 * (H // 16) * (W // 16) for n, _ in strips)
    assert all(shape[2:] == (1, 2, 2 * n) for n, shape in strips)  # Wan's strip (B, C, 1, 2, 2L)
    assert len({n for n, _ in strips}) > 1 and strips[0][0] == layout.n_tokens
    assert not torch.equal(layout.level_map[0], layout.level_map[2])  # the path moves the fovea
    assert "diffusion_model.head.head.lora_up.weight" in lora
    assert all(torch.equal(base_sd[k], x) for k, x in r1[m][0].model.state_dict().items())
    assert torch.equal(r1[s_base][0]["samples"], before)

    tenv.harness.refresh_model_lists(tenv.handle)
    mem = p.add("LoraModelLoader", model=p.out(m), lora=p.out(t), strength_model=1.0, bypass=False)
    disk = p.add("LoraLoaderModelOnly", model=p.out(m), lora_name="foveated/wan.safetensors", strength_model=1.0)
    s_mem, s_disk = sample(p, mem, pos, neg, path, lat), sample(p, disk, pos, neg, path, lat)
    with caplog.at_level(logging.WARNING):
        r2 = run(tenv, p, clear_cache=False)
    assert not [rec for rec in caplog.records if "lora key not loaded" in rec.getMessage()]
    a, b = r2[s_mem][0]["samples"], r2[s_disk][0]["samples"]
    assert torch.equal(a, b) and not torch.equal(a, before)
    assert torch.equal(r2[s_base][0]["samples"], before)


def test_a_folder_of_video_files_and_images_trains_clip_by_clip(tenv, monkeypatch):
    """image_folder for Wan: a video file is a clip (decoded as Load Video does, cut to 1 + 4k
    frames), an image a one-frame clip, each with its caption file; the saliency fovea of a clip
    follows it (a gaze path); the default targets are the paper's video ones (q, k, v, o of both
    attentions, ffn.0, ffn.2)."""
    from comfy_api.latest import InputImpl, Types

    folder = input_dir() / "wan_train_set"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    frames = 0.5 + 0.1 * torch.rand(11, H, W, 3, generator=g)
    for f in range(11):
        frames[f, 24:40, 4 + 6 * f : 20 + 6 * f] = 1.0
    InputImpl.VideoFromComponents(Types.VideoComponents(images=frames, frame_rate=Fraction(16))).save_to(
        str(folder / "a_clip.mp4"))
    from PIL import Image

    Image.fromarray((frames[0].numpy() * 255).astype(np.uint8)).save(folder / "b_still.png")
    for name in ("a_clip", "b_still"):
        (folder / f"{name}.txt").write_text(f"caption of {name}")

    lt = tenv.pack.nodes.lora_training
    encoded, foveae = [], []
    orig_enc = lt.encode_dataset
    monkeypatch.setattr(lt, "encode_dataset", lambda m, v, imgs, *a, **k: encoded.append(
        [tuple(i.shape) for i in imgs]) or orig_enc(m, v, imgs, *a, **k))
    orig_foveae = tenv.pack.nodes.train_node.TrainingFoveae
    monkeypatch.setattr(tenv.pack.nodes.train_node, "TrainingFoveae",
                        lambda *a, **k: foveae.append(orig_foveae(*a, **k)) or foveae[-1])

    class StubClip:  # the tiny fixtures have no Wan text encoder
        def tokenize(self, text):
            return text

        def encode_from_tokens_scheduled(self, tokens):
            return tenv.harness.random_conditioning(5, 4096, 0, seed=len(tokens), guidance=-1.0)

    import comfy.utils
    from comfy import sd as comfy_sd

    mp = comfy_sd.load_diffusion_model(tenv.infos["wan21_t2v"]["path"])
    vae = comfy_sd.VAE(sd=comfy.utils.load_torch_file(tenv.infos["wan21_vae"]["path"]))
    node = tenv.pack.nodes.train_node.TrainFoveatedLoRA
    kw = {k: [v] for k, v in dict(TRAIN, image_folder="wan_train_set", fovea_mode="saliency", steps=2,
                                  lora_name="foveated/wan_folder").items()}
    with torch.inference_mode():
        lora, losses, steps = node.execute(model=[mp], vae=[vae], clip=[StubClip()], **kw).result
    assert steps == 2 and all(np.isfinite(losses["loss"]))
    assert encoded == [[(9, H, W, 3), (1, H, W, 3)]]  # 11 frames -> 9; the image: one frame
    layers = {k[len("diffusion_model."): -len(".lora_up.weight")] for k in lora if k.endswith(".lora_up.weight")}
    n_blocks = len(mp.model.diffusion_model.blocks)
    assert layers == {f"blocks.{i}.{a}.{x}" for i in range(n_blocks) for a in ("self_attn", "cross_attn")
                      for x in "qkvo"} | {f"blocks.{i}.ffn.{j}" for i in range(n_blocks) for j in (0, 2)}
    fov = foveae[0]
    assert fov.frames == (9, 1) and [kf.frame for kf in fov.regions[0].keyframes] == [0, 4, 8]
    xs = [kf.x for kf in fov.regions[0].keyframes]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 0.2  # the fovea follows the moving square


BAD = {
    "boxes on a clip": (dict(fovea_mode="boxes"), "'boxes' is for images; this model trains on clips"),
    "image to video": (dict(model="wan21_i2v"), "extra input channels"),
    "targets of another family": (dict(target_modules="img_attn.qkv"), r"match no Linear layer.*q, k, v, o"),
    "clip smaller than a coarse block": (dict(size=(16, 16)), "smaller than one 1/2 periphery block"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_video_input_fails_before_any_training(tenv, monkeypatch, case):
    kw, match = BAD[case]
    kw = dict(kw)
    lt = tenv.pack.nodes.lora_training

    def started(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(lt, "encode_dataset", started)
    p = Prompt()
    m, v, pos, neg = wan(p, tenv, model=kw.pop("model", "wan21_t2v"))
    w, h = kw.pop("size", (W, H))
    t = trainer(p, m, v, clip(p, width=w, height=h), pos, **kw)
    with pytest.raises(tenv.harness.PromptExecutionError, match=match) as exc:
        run(tenv, p)
    assert str(exc.value).startswith(f"TrainFoveatedLoRA (#{t}): ValueError: ")


def test_random_gaze_paths_on_an_image_model_are_refused(tenv):
    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_dev", width=64, height=64)
    t = trainer(p, m, v, clip(p, frames=1), pos)
    with pytest.raises(tenv.harness.PromptExecutionError,
                       match="'random gaze paths' is for video clips.*use one of") as exc:
        run(tenv, p)
    assert str(exc.value).startswith(f"TrainFoveatedLoRA (#{t}): ValueError: ")


def test_wan22_5b_trains_on_its_32_px_tokens(tenv, monkeypatch):
    """Wan 2.2 TI2V 5B (48-channel latents at 16x, 32 px tokens): the clip is cropped to whole
    32 px tokens and every training forward packs that grid."""
    pack = tenv.pack.nodes
    strips, orig = [], pack.adapters.wan.WanAdapter.forward

    def forward(self, executor, args, kwargs, call):
        strips.append((sum(t.shape[0] for t in call.lengths), tuple(args[0].shape)))
        return orig(self, executor, args, kwargs, call)

    monkeypatch.setattr(pack.adapters.wan.WanAdapter, "forward", forward)
    lt, encoded = pack.lora_training, []
    orig_enc = lt.encode_dataset
    monkeypatch.setattr(lt, "encode_dataset", lambda *a, **k: encoded.append(orig_enc(*a, **k)) or encoded[-1])
    p = Prompt()
    m, v, pos, neg = wan(p, tenv, model="wan22_ti2v_5b", vae="wan22_vae")
    t = trainer(p, m, v, clip(p, width=144, height=112), pos, steps=2, lora_name="foveated/wan22")
    with tenv.tiny_wan.wan22_vae_detection_patch():
        lora, losses, steps = run(tenv, p)[t]
    assert steps == 2 and all(np.isfinite(losses["loss"]))
    (latent, _low), = encoded[0]
    assert latent.shape == (1, 48, 3, 96 // 16, 128 // 16)  # 144 x 112 px cropped to 128 x 96 (whole 32 px tokens)
    full = 3 * (96 // 32) * (128 // 32)
    assert len(strips) == 2 and all(shape[1] == 48 and n < full for n, shape in strips)
