"""The canvas widget's JavaScript equals fov_core's geometry and keeps the nodes' values
(run with node's test runner).

Python writes the expected results for many foveae and paths (for gaze paths over video: the
level map and token count of every LATENT frame, which takes the finest level over the video
frames it covers); tests/web/geometry.test.mjs recomputes them with web/fovea_geometry.js. tests/web/values.test.mjs checks the widgets' pure
logic (lossless widget values, one redraw per frame, node lookup in subgraphs), and
tests/web/roundtrip.test.mjs takes widget values Python wrote in every form the nodes accept
through the canvas edits (tests/test_comfy_widget_values.py parses the results with the nodes).
Skipped (with the reason) without node.
"""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import widget_value_cases

from fov_core import DiTDims, Fovea, Gaze, GazeKeyframe, GazePath, LevelPolicy, TokenGrid, TokenLayout, rasterize, readout

pytestmark = pytest.mark.pure
ROOT = Path(__file__).resolve().parents[1]
KLEIN = DiTDims(hidden=3072, mlp_hidden=9216, blocks=25, text_tokens=512, gated_mlp=True)
POLICY = {"1/2 resolution": lambda s: LevelPolicy.half(), "1/4 resolution": lambda s: LevelPolicy.quarter(),
          "rings: 1/2 then 1/4": lambda s: LevelPolicy.rings(s)}


def _cases():
    import random

    rng = random.Random(7)
    cases = [
        (1024, 1024, "1/2 resolution", 2.0, [(0.5, 0.5, 0.3, 1.0, 0.0)]),
        (1024, 1024, "1/4 resolution", 2.0, [(0.5, 0.5, 0.25, 1.0, 0.0)]),
        (832, 480, "rings: 1/2 then 1/4", 1.8, [(0.3, 0.6, 0.2, 1.0, 0.0)]),
        (1216, 832, "rings: 1/2 then 1/4", 2.5, [(0.7, 0.3, 0.15, 1.0, 0.0), (0.2, 0.8, 0.1, 1.0, 0.0)]),
        (720, 464, "1/4 resolution", 2.0, [(0.999, 0.001, 0.05, 1.0, 0.0)]),
        (512, 512, "1/2 resolution", 2.0, [(0.0, 1.0, 0.0625, 1.0, 0.0), (1.0, 0.5, 0.01, 1.0, 0.0)]),
        (1024, 1024, "1/2 resolution", 2.0, [(0.5, 0.5, 0.3, 0.5, 30.0)]),
    ]
    for _ in range(30):
        w, h = rng.choice([(1024, 1024), (832, 480), (1344, 768), (720, 720), (976, 560)])
        per = rng.choice(list(POLICY))
        gazes = [(round(rng.uniform(0, 1), 3), round(rng.uniform(0, 1), 3), round(rng.uniform(0.02, 0.7), 3),
                  round(rng.choice([1.0, rng.uniform(0.3, 2.5)]), 3), float(rng.choice([0, 0, 15, -40, 90])))
                 for _ in range(rng.randint(1, 3))]
        cases.append((w, h, per, round(rng.uniform(1.2, 3.0), 2), gazes))
    return cases


def make_fixtures():
    foveae = []
    for w, h, per, scale, gazes in _cases():
        grid = TokenGrid(1, max(1, round(h / 16)), max(1, round(w / 16)))
        fovea = Fovea(tuple(Gaze(*g) for g in gazes), POLICY[per](scale))
        levels = rasterize(fovea, grid)[0]
        r = readout(TokenLayout(levels[None]), KLEIN)
        foveae.append({"width": w, "height": h, "periphery": per, "ring_scale": scale,
                       "gazes": [dict(zip(("x", "y", "radius", "aspect", "rotation"), g)) for g in gazes],
                       "grid": [grid.height, grid.width], "levels": levels.flatten().tolist(),
                       "tokens": r["tokens"], "ideal_speedup": r["ideal_speedup"]})
    paths = []
    for kfs, n in [([(0, 0.2, 0.3, 0.1), (30, 0.8, 0.4, 0.3), (50, 0.5, 0.9, 0.2), (80, 0.4, 0.1, 0.25)], 81),
                   ([(5, 0.5, 0.5, 0.3)], 20), ([(0, 0.1, 0.1, 0.1), (9, 0.9, 0.9, 0.4)], 10)]:
        path = GazePath(tuple(GazeKeyframe(*k) for k in kfs), n)
        paths.append({"keyframes": [dict(zip(("frame", "x", "y", "radius"), k)) for k in kfs],
                      "samples": [[f, list(path.sample(f))] for f in range(n)]})
    return {"foveae": foveae, "paths": paths, "video": video_fixtures()}


def _video_cases():
    """(width, height, periphery, ring_scale, num_frames, frame_stride, keyframes (frame, x, y, radius))."""
    import random

    fast = [(0, 0.1, 0.2, 0.12), (20, 0.8, 0.3, 0.2), (40, 0.5, 0.85, 0.1), (80, 0.3, 0.4, 0.25)]
    cases = [
        (832, 480, "1/2 resolution", 2.0, 81, 4, fast),
        (832, 480, "1/4 resolution", 2.0, 81, 4, fast),
        (832, 480, "rings: 1/2 then 1/4", 1.8, 81, 4, fast),
        (832, 480, "rings: 1/2 then 1/4", 2.5, 21, 4, [(10, 0.4, 0.6, 0.2)]),  # a single keyframe
        (480, 832, "1/2 resolution", 2.0, 5, 4, [(0, 0.5, 0.5, 0.3), (4, 0.7, 0.2, 0.1)]),  # 2 latent frames
        # paths that leave the image over the left / right edge and over the top / bottom
        (832, 480, "1/4 resolution", 2.0, 17, 4, [(0, -0.4, 0.5, 0.15), (16, 1.4, 0.5, 0.15)]),
        (640, 640, "rings: 1/2 then 1/4", 2.0, 33, 4, [(0, 0.5, 1.3, 0.1), (12, 0.5, 0.5, 0.2),
                                                        (32, 0.2, -0.3, 0.3)]),
        (720, 464, "1/2 resolution", 2.0, 49, 4, [(3, 0.97, 0.03, 0.02), (45, 0.01, 0.99, 0.04)]),
        # other frame strides (another video family's VAE)
        (832, 480, "1/2 resolution", 2.0, 9, 1, [(0, 0.2, 0.5, 0.2), (8, 0.8, 0.5, 0.2)]),
        (832, 480, "1/4 resolution", 2.0, 25, 8, [(0, 0.1, 0.1, 0.1), (24, 0.9, 0.9, 0.3)]),
    ]
    rng = random.Random(11)
    for _ in range(6):
        w, h = rng.choice([(832, 480), (1280, 720), (480, 832), (960, 544)])
        stride = rng.choice([4, 4, 4, 2])
        n = 1 + stride * rng.randint(1, 20)
        frames = sorted(rng.sample(range(n), rng.randint(1, min(5, n))))
        kfs = [(f, round(rng.uniform(-0.3, 1.3), 3), round(rng.uniform(-0.3, 1.3), 3), round(rng.uniform(0.03, 0.5), 3))
               for f in frames]
        kfs[0] = (kfs[0][0], 0.5, 0.5, kfs[0][3])  # the fovea reaches into the image somewhere
        cases.append((w, h, rng.choice(list(POLICY)), round(rng.uniform(1.2, 3.0), 2), n, stride, kfs))
    return cases


def video_fixtures():
    out = []
    for w, h, per, scale, n, stride, kfs in _video_cases():
        assert (n - 1) % stride == 0
        grid = TokenGrid((n - 1) // stride + 1, round(h / 16), round(w / 16), frame_stride=stride)
        path = GazePath(tuple(GazeKeyframe(*k) for k in kfs), n)
        levels = rasterize(Fovea((), POLICY[per](scale), path=path), grid)
        out.append({"width": w, "height": h, "periphery": per, "ring_scale": scale, "num_frames": n,
                    "frame_stride": stride, "keyframes": [dict(zip(("frame", "x", "y", "radius"), k)) for k in kfs],
                    "grid": [grid.frames, grid.height, grid.width],
                    "video_frames_of": [[r.start, r.stop - 1] for r in map(grid.video_frames_of, range(grid.frames))],
                    "levels": [lv.flatten().tolist() for lv in levels],
                    "tokens": [TokenLayout(lv[None]).n_tokens for lv in levels],
                    "total_tokens": TokenLayout(levels).n_tokens})
    return out


def test_widget_geometry_matches_fov_core(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the widget's JavaScript geometry was not checked")
    fixtures = tmp_path / "fixtures.json"
    fixtures.write_text(json.dumps(make_fixtures()))
    res = subprocess.run([node, "--test", str(ROOT / "tests" / "web" / "geometry.test.mjs")], cwd=ROOT,
                         env={"FOVEA_FIXTURES": str(fixtures), "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "# fail 0" in res.stdout


def _node_test(path, env=None):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the widget's JavaScript was not checked")
    res = subprocess.run([node, "--test", str(path)], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **(env or {})},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "# fail 0" in res.stdout


def test_widget_logic_values_frames_and_subgraph_lookup():
    _node_test(ROOT / "tests" / "web" / "values.test.mjs")


def test_widget_keeps_untouched_fields_of_python_values(tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the widget's JavaScript was not checked")
    cases = widget_value_cases.cases()
    results = widget_value_cases.run_roundtrip(tmp_path, cases)
    for case, result in zip(cases, results):
        if not case["edits"]:  # a no-op leaves every value as it was, text included
            assert result["values"] == case["values"], case
