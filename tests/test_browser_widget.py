"""Browser tier: the canvas widgets in a real ComfyUI page (headless Chromium).

Starts a ComfyUI server on 127.0.0.1 with this pack installed, drives it with
tests/browser/widget_test.mjs (playwright-core + Debian's chromium) and checks what the
clicks did to the widget values and what queueing sent to the server, with the classic
canvas and with the Vue node renderer. Screenshots: tests/browser/artifacts/.
Set up with: apt-get install chromium; cd tests/browser && npm install.
"""
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

import workflow_specs
from conftest import COMFY_ROOT, PACK_ROOT
from fov_core import (DiTDims, Fovea, Gaze, GazeKeyframe, GazePath, LevelPolicy, TokenGrid, TokenLayout, rasterize,
                      readout)

pytestmark = pytest.mark.browser
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
ARTIFACTS = BROWSER_DIR / "artifacts"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _post(url, data, timeout=30):
    req = urllib.request.Request(url, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:  # validation errors come back as 400 with a JSON body
        return json.loads(e.read())


def _node_errors(server, prompt):
    """The server's validation verdict on an API prompt: [(class_type, error dict), ...].
    (The server queues the outputs that did validate, next to the errors of the others.)"""
    res = _post(f"{server}/prompt", {"prompt": prompt})
    if "prompt_id" in res:  # (partly) valid and queued: stop it, it only had to pass validation
        _post(f"{server}/queue", {"delete": [res["prompt_id"]]})
        _post(f"{server}/interrupt", {})
    errs = [(n.get("class_type"), e) for n in res.get("node_errors", {}).values() for e in n.get("errors", [])]
    return errs if errs or "prompt_id" in res else [(None, res.get("error"))]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_server")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-Foveated-Diffusion").symlink_to(PACK_ROOT)
    # what a fresh ComfyUI install has: its example input image and empty model folders; and
    # the clip of their own a user puts in for the Wan training workflow
    (base / "input").mkdir()
    shutil.copy(COMFY_ROOT / "input" / "example.png", base / "input" / "example.png")
    workflow_specs.write_training_clip(base / "input")
    for directory, _url in workflow_specs.MODEL_SOURCES.values():
        (base / "models" / directory).mkdir(parents=True, exist_ok=True)
    (base / "models" / "loras").mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = open(base / "server.log", "w")
    cmd = [sys.executable, str(COMFY_ROOT / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(port),
           "--base-directory", str(base), "--disable-api-nodes", "--database-url", "sqlite:///:memory:",
           "--preview-method", "none", "--disable-auto-launch"]
    proc = subprocess.Popen(cmd, cwd=COMFY_ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            try:
                if "Fovea" in _get(f"{url}/object_info/Fovea"):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("ComfyUI server did not start:\n" + (base / "server.log").read_text()[-4000:])
            time.sleep(1)
        yield url, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


PRIMARY = ("x", "y", "radius", "aspect", "rotation")


def _check_kept_fields(k, kp):
    """Canvas edits keep every field of the gazes / keyframes they did not touch."""
    extra, start, prim = k["extra"], k["start"], k["afterPrimary"]
    # moving the primary gaze rewrites neither extra_gazes (not even its layout) nor aspect / rotation
    assert prim["extra_gazes"] == start["extra_gazes"] and (prim["aspect"], prim["rotation"]) == (0.6, 20), prim
    assert abs(prim["x"] - 0.45) < 0.01 and abs(prim["y"] - 0.55) < 0.01, prim
    drag = json.loads(k["afterDrag"]["extra_gazes"])  # extra gaze 0 moved, its radius dragged
    assert drag[0][3:] == extra[0][3:] and drag[1:] == extra[1:], drag
    assert abs(drag[0][0] - 0.22) < 0.01 and abs(drag[0][1] - 0.27) < 0.01 and drag[0][2] > 0.12, drag
    wheel = json.loads(k["afterWheel"]["extra_gazes"])
    assert wheel[0][2] < drag[0][2] and wheel[0][3:] == extra[0][3:] and wheel[1:] == extra[1:], wheel
    shift = json.loads(k["afterShift"]["extra_gazes"])
    assert shift[:3] == wheel and len(shift) == 4 and len(shift[3]) == 3, shift
    for step in ("afterDrag", "afterWheel", "afterShift"):
        assert [k[step][f] for f in PRIMARY] == [prim[f] for f in PRIMARY], step
    # removing the primary gaze: extra gaze 0 takes its place with every field exactly
    rem = k["afterRemove"]
    assert [rem[f] for f in PRIMARY] == wheel[0], rem
    assert json.loads(rem["extra_gazes"]) == shift[1:], rem
    before, got = json.loads(kp["start"]), json.loads(kp["keyframes"])
    assert got[0] == before[0], got  # untouched, extra key included
    assert got[1] == {"frame": 20, "x": 0.5, "y": 0.85, "radius": 0.2756}, got  # added, then the wheel
    assert got[2][0] == 80 and got[2][3] == 0.3 and len(got[2]) == 4, got  # dragged: still a list
    assert abs(got[2][1] - 0.7) < 0.01 and abs(got[2][2] - 0.35) < 0.01, got


def _check_video_canvas(v):
    """A Gaze Path at 832x480: the drawn image keeps the aspect, the click lands where it was aimed,
    and the shading drawn at the scrubbed frame is fov_core's level map of its LATENT frame."""
    video, d = v["video"], v["drawn"]
    aspect = video["width"] / video["height"]
    scale = v["canvasPx"][0] / v["canvasBox"]["width"]  # canvas pixels per page pixel
    assert abs((d["right"] - d["left"]) - v["rect"]["rw"] * scale) <= 3, v  # (lines on its edges: +-1.5 px)
    assert abs((d["bottom"] - d["top"]) - v["rect"]["rh"] * scale) <= 3, v
    assert abs((d["right"] - d["left"]) / (d["bottom"] - d["top"]) / aspect - 1) < 0.01, d
    kfs = json.loads(v["keyframes"])
    added = [k for k in kfs if k["frame"] == video["frame"]]
    assert len(kfs) == 5 and len(added) == 1, kfs
    tol = 1.5 / min(v["rect"]["rw"], v["rect"]["rh"]) + 1e-4  # a mouse position is whole pixels
    assert abs(added[0]["x"] - video["click"][0]) < tol and abs(added[0]["y"] - video["click"][1]) < tol, added
    assert min(v["cellPx"]) >= 8, v["cellPx"]  # tokens big enough to read their shade
    path = GazePath(tuple(GazeKeyframe(k["frame"], k["x"], k["y"], k["radius"]) for k in kfs), video["frames"])
    policy = LevelPolicy.rings(1.5)
    grid = TokenGrid((video["frames"] - 1) // 4 + 1, video["height"] // 16, video["width"] // 16, frame_stride=4)
    levels = rasterize(Fovea((), policy, path=path), grid)
    t = (video["frame"] + 3) // 4
    first, last = grid.video_frames_of(t)[0], grid.video_frames_of(t)[-1]
    assert f"frame {video['frame']}/{video['frames'] - 1}" in v["label"], v["label"]
    assert f"latent {t}/{grid.frames - 1}" in v["label"], v["label"]
    drawn = torch.tensor(v["levels"]).reshape(grid.height, grid.width)
    assert torch.equal(drawn, levels[t]), (drawn != levels[t]).nonzero().tolist()
    # (the latent frame's union differs from the scrubbed video frame's own map: the check tells them apart)
    single = rasterize(Fovea((Gaze(*path.sample(video["frame"])),), policy), TokenGrid(1, grid.height, grid.width))
    assert not torch.equal(single[0], levels[t])
    m = re.search(r"latent frame (\d+) \(video frames (\d+)-(\d+)\): (\d+)/(\d+) tokens", v["readout"])
    assert m, v["readout"]
    full = grid.height * grid.width
    assert [int(g) for g in m.groups()] == [t, first, last, TokenLayout(levels[t][None]).n_tokens, full], v["readout"]
    m = re.search(r"video: (\d+)/(\d+) tokens", v["readout"])
    assert m and [int(g) for g in m.groups()] == [TokenLayout(levels).n_tokens, full * grid.frames], v["readout"]


# Models an Apply Foveation reports in its ui (nodes/adapters/base.py FamilyAdapter.widget_model;
# tests/test_comfy_widget_model.py checks real runs): Wan 2.2 TI2V 5B and HunyuanVideo at full size.
MODELS = {
    "image": {"family": "Wan 2.2 5B", "token_px": 32, "frame_stride": 4,
              "dims": dataclasses.asdict(DiTDims(hidden=3072, mlp_hidden=14336, blocks=30, context_tokens=512))},
    "video": {"family": "HunyuanVideo", "token_px": 16, "frame_stride": 4,
              "dims": dataclasses.asdict(DiTDims(hidden=3072, mlp_hidden=12288, blocks=60, text_tokens=512))},
}


def _flops_text(r):
    return f"FLOP-ideal {r['ideal_speedup']:.2f}x"


def _check_models(s):
    """Before a run the widgets say which model they assume; after an Apply Foveation's executed
    event, the canvas nodes feeding it count in its tokens, with its FLOP model and its name."""
    before, after = s["before"], s["after"]
    for k in ("a", "b", "c"):
        assert "/4096 tokens" in before[k] and "(FLUX.2 [klein] 4B, 16 px tokens; assumed until Apply Foveation runs)" \
            in before[k], before[k]
    assert "(Wan 2.1 1.3B, 16 px tokens; assumed until Apply Foveation runs)" in before["path"], before["path"]
    assert after["c"] == before["c"]  # feeds no Apply Foveation
    # the merged chain a -> b -> Apply (in a subgraph): 1024 px in 32 px tokens, Wan 2.2 5B's FLOPs
    f, p = s["fovea"], s["path"]
    assert f["periphery"] == p["periphery"] == "1/2 resolution", (f, p)
    fovea = Fovea((Gaze(f["x"], f["y"], f["radius"], f["aspect"], f["rotation"]),), LevelPolicy.half())
    grid = TokenGrid(1, f["height"] // 32, f["width"] // 32, token_px=32)
    assert s["drawnGrid"] == {"H": grid.height, "W": grid.width}, s["drawnGrid"]
    r = readout(TokenLayout(rasterize(fovea, grid)), DiTDims(**MODELS["image"]["dims"]))
    for k in ("a", "b"):
        assert after[k].startswith(f"{r['tokens']}/{r['full_tokens']} tokens"), after[k]
        assert _flops_text(r) in after[k] and after[k].endswith("(Wan 2.2 5B, 32 px tokens)"), after[k]
    assert "+ connected fovea" in after["b"]
    # the Gaze Path: the whole video's FLOP-ideal speedup with HunyuanVideo's, named
    path = GazePath(tuple(GazeKeyframe(k["frame"], k["x"], k["y"], k["radius"]) for k in json.loads(p["keyframes"])),
                    p["num_frames"])
    vgrid = TokenGrid((p["num_frames"] - 1) // 4 + 1, p["height"] // 16, p["width"] // 16, frame_stride=4)
    rv = readout(TokenLayout(rasterize(Fovea((), LevelPolicy.half(), path=path), vgrid)),
                 DiTDims(**MODELS["video"]["dims"]))
    assert f"video: {rv['tokens']}/{rv['full_tokens']} tokens" in after["path"], after["path"]
    assert f"{_flops_text(rv)} (HunyuanVideo, 16 px tokens)" in after["path"], after["path"]
    assert "assumed" not in after["a"] + after["b"] + after["path"]


def test_canvas_widgets_in_a_real_browser(server):
    server, base = server
    ARTIFACTS.mkdir(exist_ok=True)
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    env = dict(os.environ, COMFY_URL=server, CHROMIUM=chromium, OUT_DIR=str(ARTIFACTS),
               WORKFLOWS_DIR=str(PACK_ROOT / "workflows"), FOVEA_MODELS=json.dumps(MODELS))
    res = subprocess.run([shutil.which("node"), str(BROWSER_DIR / "widget_test.mjs")], cwd=BROWSER_DIR, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    steps = {s["step"]: s for s in out["steps"]}
    assert "pageerror" not in steps, steps.get("pageerror")
    for mode in ("classic", "vue"):
        s = steps[f"fovea_{mode}"]
        b, d = s["before"], s["afterDrag"]
        assert (b["x"], b["y"], b["radius"]) == (0.5, 0.5, 0.35)
        assert d["x"] < 0.5 and d["y"] < 0.5, d  # clicked left of and above the center
        assert d["radius"] != b["radius"] and d["radius"] > 0.05
        assert len(json.loads(s["afterShift"]["extra_gazes"])) == 1
        assert json.loads(s["afterRight"]["extra_gazes"]) == []
        assert "tokens" in s["readout"] and "FLOP-ideal" in s["readout"]
        sent = s["sent"]
        assert sent is not None, "queueing sent no prompt"
        assert sent["x"] == s["afterRight"]["x"] and sent["radius"] == s["afterRight"]["radius"]
        _check_video_canvas(steps[f"video_{mode}"])
        kfs = json.loads(steps[f"path_{mode}"]["keyframes"])
        assert 40 in [k["frame"] for k in kfs], kfs
        assert (ARTIFACTS / f"fovea_widget_{mode}.png").is_file()
        _check_kept_fields(steps[f"keep_fovea_{mode}"], steps[f"keep_path_{mode}"])
        f = steps[f"frames_{mode}"]  # 60 pointer moves in one frame: values follow each, one draw
        assert f["radii"] >= 50 and f["drawsSync"] == f["drawsBefore"], f
        assert f["drawsAfter"] == f["drawsBefore"] + 1, f
        g = steps[f"removed_{mode}"]  # removed nodes release their observer and listeners
        assert g["added"] == g["base"] + 2 and g["removed"] == g["base"], g
        assert g["disposed"] == [True, True] and g["unchanged"] and g["drawsAfter"] == g["drawsBefore"], g
    sub = steps["subgraph"]  # images reach canvas nodes inside subgraphs ("12:5" ids)
    assert ":" in sub["own"]["id"] and sub["own"]["id"] in sub["seen"], sub
    assert sub["own"]["src"] and "type=temp" in sub["own"]["src"], sub
    assert "filename=a.png" in (sub["outerFovea"] or "") and "filename=b.png" in (sub["innerFovea"] or ""), sub
    _check_models(steps["models"])
    r = steps["restore"]
    assert r["x"] == 0.125 and json.loads(r["extra"]) == [[0.75, 0.25, 0.1]]
    assert r["apiInputs"]["x"] == 0.125 and r["apiInputs"]["extra_gazes"] == r["extra"]
    assert r["hasCanvas"]
    loaded = [s for name, s in steps.items() if name.startswith("workflow ")]
    assert len(loaded) >= 4
    for s in loaded:
        assert s["count"] == s["expected"] and not s["unknown"], s
    assert any(s["canvases"] for s in loaded)

    # A user with no model files: every problem the server reports is a missing model file.
    model_files = set(workflow_specs.MODEL_SOURCES)
    for name, s in steps.items():
        if name.startswith("workflow "):
            for cls, err in _node_errors(server, s["api"]):
                assert err and err["type"] == "value_not_in_list", (name, cls, err)
                assert err["extra_info"]["received_value"] in model_files, (name, cls, err)
    # ... and with only the base model files (no LoRA) every workflow passes validation.
    for filename, (directory, _url) in workflow_specs.MODEL_SOURCES.items():
        (base / "models" / directory / filename).write_bytes(b"")
    for name, s in steps.items():
        if name.startswith("workflow "):
            assert _node_errors(server, s["api"]) == [], name
    history = _get(f"{server}/history")
    assert any(h.get("status", {}).get("status_str") == "success" for h in history.values()), history
