"""Apply Foveation tells the canvas widgets its model: the ui of a real run (ComfyUI's executor,
tiny checkpoints in the real formats) carries the family's name, token size, video frames per
latent frame and FLOP model (every DiTDims field) next to the readout text, and the widget's
JavaScript (web/fovea_geometry.js, run with node) turns that payload into the same token grid and
the same FLOP-ideal speedup as the node's own readout, for FLUX.2, Qwen-Image, Z-Image, Wan 2.1,
Wan 2.2 5B (32 px tokens) and HunyuanVideo."""
import contextlib
import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from comfy_fixtures.prompts import FAMILY, Prompt

pytestmark = pytest.mark.comfyui
ROOT = Path(__file__).resolve().parents[1]
GAZE = {"x": 0.4, "y": 0.5, "radius": 0.35, "aspect": 1.0, "rotation": 0.0}


def _fovea(p, width, height, periphery):
    return p.add("Fovea", **GAZE, extra_gazes="[]", width=width, height=height, periphery=periphery, ring_scale=2.0,
                 feather=0.03)


def _flux2(env, p):
    m = p.add("UNETLoader", unet_name=FAMILY["flux2_klein"][0], weight_dtype="default")
    return m, p.add("EmptyFlux2LatentImage", width=256, height=192, batch_size=1), (256, 192)


def _sd3_latent(env, p, key):
    m = p.add("UNETLoader", unet_name=env.infos[key]["name"], weight_dtype="default")
    return m, p.add("EmptySD3LatentImage", width=256, height=192, batch_size=1), (256, 192)


def _wan21(env, p):
    m = p.add("UNETLoader", unet_name=env.infos["wan21_t2v"]["name"], weight_dtype="default")
    return m, p.add("EmptyHunyuanLatentVideo", width=256, height=128, length=9, batch_size=1), (256, 128)


def _wan22_5b(env, p):
    m = p.add("UNETLoader", unet_name=env.infos["wan22_ti2v_5b"]["name"], weight_dtype="default")
    v = p.add("VAELoader", vae_name=env.infos["wan22_vae"]["name"])
    return m, p.add("Wan22ImageToVideoLatent", vae=p.out(v), width=256, height=192, length=9, batch_size=1), (256, 192)


def _hunyuan(env, p):
    m = p.add("UNETLoader", unet_name=env.infos["hunyuan_video_t2v"]["name"], weight_dtype="default")
    return m, p.add("EmptyHunyuanLatentVideo", width=128, height=96, length=9, batch_size=1), (128, 96)


# family -> (prompt part, expected name, token px, frame stride, video, latent px per token edge)
CASES = {
    "flux2_klein": (_flux2, "FLUX.2", 16, 1, False, 1),
    "qwen_image": (lambda env, p: _sd3_latent(env, p, "qwen_image"), "Qwen-Image", 16, 1, False, 2),
    "z_image": (lambda env, p: _sd3_latent(env, p, "z_image"), "Z-Image", 16, 1, False, 2),
    "wan21_t2v": (_wan21, "Wan", 16, 4, True, 2),
    "wan22_ti2v_5b": (_wan22_5b, "Wan 2.2 5B", 32, 4, True, 2),
    "hunyuan_video_t2v": (_hunyuan, "HunyuanVideo", 16, 4, True, 2),
}


def _expected_dims(env, family, dm):
    """The FLOP model read off the loaded diffusion model itself (not through the adapter)."""
    fc = env.pack.fov_core
    if family.startswith("wan"):  # cross-attention: the context length, no joint text
        return fc.DiTDims(hidden=dm.dim, mlp_hidden=dm.ffn_dim, blocks=len(dm.blocks), context_tokens=dm.text_len)
    if family == "qwen_image":  # plain GELU MLP
        return fc.DiTDims(hidden=dm.inner_dim, mlp_hidden=dm.transformer_blocks[0].img_mlp.net[2].in_features,
                          blocks=len(dm.transformer_blocks), text_tokens=512)
    if family == "z_image":  # the noise and context refiners count as one more block each way: two blocks
        return fc.DiTDims(hidden=dm.dim, mlp_hidden=dm.layers[0].feed_forward.w1.out_features,
                          blocks=len(dm.layers) + len(dm.noise_refiner), text_tokens=512, gated_mlp=True)
    prm = dm.params
    return fc.DiTDims(hidden=prm.hidden_size, mlp_hidden=int(prm.hidden_size * prm.mlp_ratio),
                      blocks=prm.depth + prm.depth_single_blocks, text_tokens=512,  # a typical prompt, assumed
                      gated_mlp=family == "flux2_klein")


def _run_apply(env, family, periphery):
    make, *_ = CASES[family]
    p = Prompt()
    m, lat, (width, height) = make(env, p)
    f = _fovea(p, width, height, periphery)
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f), latent=p.out(lat))
    patch = {"wan22_ti2v_5b": env.tiny_wan.wan22_vae_detection_patch,
             "qwen_image": env.tiny_qwen_zimage.qwen_detection_patch,
             "z_image": env.tiny_qwen_zimage.zimage_detection_patch}.get(family, contextlib.nullcontext)
    with patch():
        r = env.harness.run_prompt(env.handle, p, clear_cache=True)
    ui = env.handle.executor.history_result["outputs"][fm]
    return r, fm, m, lat, ui, (width, height)


def _widget(cases, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the widget's reading of the payload was not checked")
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    res = subprocess.run([node, str(ROOT / "tests" / "web" / "model_payload.mjs")], cwd=ROOT,
                         env={"FOVEA_CASES": str(path), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("periphery", ["1/2 resolution", "rings: 1/2 then 1/4"])
def test_apply_foveation_sends_its_model_to_the_widgets(env, tmp_path, periphery):
    key = env.pack.nodes.apply_node.WIDGET_MODEL_KEY
    widget_cases, expected = [], []
    for family, (_make, name, token_px, stride, video, patch) in CASES.items():
        r, fm, m, lat, ui, (width, height) = _run_apply(env, family, periphery)
        text = r[fm][1]
        assert ui["text"] == [text], ui  # the readout shown on the node, as before
        assert set(ui) == {"text", key} and len(ui[key]) == 1, ui
        payload = ui[key][0]
        assert json.loads(json.dumps(payload)) == payload  # what the server sends as JSON
        dm = r[m][0].model.diffusion_model  # the ModelPatcher UNETLoader gave the executor
        dims = _expected_dims(env, family, dm)
        assert payload == {"family": name, "token_px": token_px, "frame_stride": stride,
                           "dims": dataclasses.asdict(dims)}, (family, payload)
        # the node's readout: the latent's grid in this family's tokens and the FLOP-ideal speedup
        samples = r[lat][0]["samples"]
        h, w = samples.shape[-2:]
        assert (h // patch, w // patch) == (height // token_px, width // token_px), (family, samples.shape)
        m_ = re.search(r"(\d+)/(\d+) tokens .* FLOP-ideal speedup ([\d.]+)x", text)
        assert m_, text
        frames = samples.shape[2] if video else 1
        widget_cases.append({"payload": payload, "width": width, "height": height, "gazes": [GAZE],
                             "periphery": periphery, "ring_scale": 2.0})
        expected.append((family, name, token_px, frames, [int(m_.group(1)), int(m_.group(2))], float(m_.group(3)),
                         dims))
    got = _widget(widget_cases, tmp_path)
    fc = env.pack.fov_core
    for (family, name, token_px, frames, (tokens, full), speedup, dims), g in zip(expected, got):
        assert g["accepted"] and g["key"] == key, (family, g)
        assert g["label"] == f"{name}, {token_px} px tokens", g
        H, W = g["grid"]
        assert full == frames * H * W, (family, g)  # the widget's grid is the node's (32 px tokens: Wan 2.2 5B)
        if frames == 1:  # an image: the whole readout
            assert g["tokens"] == tokens and f"{g['idealSpeedup']:.2f}" == f"{speedup:.2f}", (family, g, speedup)
        # the widget's FLOP model on its one frame = fov_core's with the family's dims
        fovea = fc.Fovea((fc.Gaze(GAZE["x"], GAZE["y"], GAZE["radius"]),),
                         fc.LevelPolicy.half() if periphery == "1/2 resolution" else fc.LevelPolicy.rings(2.0))
        layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(1, H, W, token_px=token_px)))
        r = fc.readout(layout, dims)
        assert g["tokens"] == r["tokens"] and abs(g["idealSpeedup"] - r["ideal_speedup"]) < 1e-9 * r["ideal_speedup"]


def test_without_a_latent_the_model_is_sent_too(env):
    """The widgets need no latent: a bare Apply Foveation still tells them its model."""
    p = Prompt()
    m = p.add("UNETLoader", unet_name=env.infos["wan22_ti2v_5b"]["name"], weight_dtype="default")
    fm = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(_fovea(p, 256, 192, "1/2 resolution")))
    env.harness.run_prompt(env.handle, p, clear_cache=True)
    ui = env.handle.executor.history_result["outputs"][fm]
    payload = ui[env.pack.nodes.apply_node.WIDGET_MODEL_KEY][0]
    assert payload["family"] == "Wan 2.2 5B" and payload["token_px"] == 32, payload
    assert ui["text"][0].startswith("Wan 2.2 5B: connect a latent"), ui
