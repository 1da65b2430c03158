"""Widget values in every form the Fovea and Gaze Path nodes accept, and canvas edits on them.

tests/web/roundtrip.test.mjs runs each case through the canvas widgets' edit path
(web/fovea_values.js) and writes the new widget values; `run_roundtrip` returns them. The pure
tier checks the JavaScript side (untouched items written back exactly); the comfyui tier
parses the results with the nodes' own code (tests/test_comfy_widget_values.py).

Edits (the canvas's own operations):
  Fovea     ["move", i, x, y], ["radius", i, r], ["add", x, y, r], ["remove", i]
            (i indexes [primary gaze, *extra_gazes])
  GazePath  ["place", frame, x, y, r] (move the keyframe at frame, or add one with radius r),
            ["move", frame, x, y], ["radius", frame, r], ["remove", frame]
Targets have at most 4 decimals: the widget rounds what it writes to 4 decimals.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRIMARY = {"x": 0.5, "y": 0.5, "radius": 0.35, "aspect": 0.6, "rotation": 20.0}
EXTRA_FORMS = {
    "lists": [[0.2, 0.3, 0.1], [0.7, 0.6, 0.15, 0.5], [0.4, 0.8, 0.2, 2.5, -30.0]],
    "objects": [{"x": 0.25, "y": 0.75, "radius": 0.12}, {"x": 0.8, "y": 0.2, "radius": 0.1, "aspect": 0.4},
                {"x": 0.6, "y": 0.4, "radius": 0.2, "rotation": 45.0},
                {"rotation": 12.5, "radius": 0.05, "y": 0.1, "x": 0.9, "aspect": 3.0, "label": "keep me"}],
    # ints, numeric strings (the node float()s object fields), a bool (Python counts it as 1)
    "mixed": [[1, 0, 1], {"x": "0.3", "y": "0.6", "radius": "0.2", "aspect": "1.5", "rotation": "-90"},
              [0.5, 0.5, 0.2, True], [0.125, 0.875, 0.0625, 0.25, 359.5]],
}
FOVEA_EDITS = [
    [],
    [["move", 0, 0.3, 0.7]],
    [["radius", 0, 0.45]],
    [["move", 2, 0.1, 0.9]],
    [["radius", 3, 0.4]],
    [["add", 0.9, 0.9, 0.2]],
    [["remove", 1]],
    [["remove", 0]],
    [["move", 1, 0.05, 0.95], ["radius", 1, 0.3], ["add", 0.15, 0.25, 0.1], ["remove", 2]],
]

KEYFRAME_FORMS = {
    "objects": [{"frame": 0, "x": 0.3, "y": 0.5, "radius": 0.25},
                {"frame": 40.0, "x": 0.5, "y": 0.2, "radius": 0.3, "note": "peak"},
                {"frame": 80, "x": 0.7, "y": 0.5, "radius": 0.25}],
    "lists": [[0, 0.1, 0.2, 0.3], [10.0, 0.4, 0.5, 0.2], [20, 1, 0, 1], [60, 0.25, 0.75, 0.125]],
}
PATH_EDITS = {
    "objects": [[], [["place", 40, 0.6, 0.6, 0.2]], [["place", 60, 0.2, 0.8, 0.15]], [["move", 80, 0.9, 0.1]],
                [["radius", 0, 0.5]], [["remove", 40]],
                [["place", 5, 0.5, 0.5, 0.1], ["radius", 5, 0.2], ["move", 0, 0.0, 1.0], ["remove", 80]]],
    "lists": [[], [["place", 15, 0.6, 0.6, 0.2]], [["move", 10, 0.9, 0.1]], [["radius", 20, 0.5]],
              [["remove", 0]], [["place", 20, 0.2, 0.3, 0.9], ["remove", 60]]],
}


def cases() -> list:
    out = []
    for form, extra in EXTRA_FORMS.items():
        for indent in (None, 2):  # compact and pretty-printed text
            for edits in FOVEA_EDITS:  # every form has at least 3 extra gazes
                out.append({"node": "Fovea", "form": form,
                            "values": {**PRIMARY, "extra_gazes": json.dumps(extra, indent=indent)}, "edits": edits})
    for edits in FOVEA_EDITS[:3] + [[["add", 0.9, 0.9, 0.2]]]:  # no extra gazes yet
        out.append({"node": "Fovea", "form": "empty", "values": {**PRIMARY, "extra_gazes": "[]"}, "edits": edits})
    for form, kfs in KEYFRAME_FORMS.items():
        for edits in PATH_EDITS[form]:
            out.append({"node": "GazePath", "form": form, "values": {"keyframes": json.dumps(kfs), "num_frames": 81},
                        "edits": edits})
    return out


def run_roundtrip(tmp_path: Path, case_list: list) -> list:
    """The new widget values for every case, from tests/web/roundtrip.test.mjs (asserts it passed)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed")
    src, dst = tmp_path / "cases.json", tmp_path / "results.json"
    src.write_text(json.dumps(case_list))
    res = subprocess.run([node, "--test", str(ROOT / "tests" / "web" / "roundtrip.test.mjs")], cwd=ROOT,
                         env={"FOVEA_VALUE_CASES": str(src), "FOVEA_VALUE_RESULTS": str(dst),
                              "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "# fail 0" in res.stdout, res.stdout[-4000:] + res.stderr[-2000:]
    results = json.loads(dst.read_text())
    assert len(results) == len(case_list)
    return results
