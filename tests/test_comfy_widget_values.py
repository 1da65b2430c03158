"""The canvas widgets lose nothing the nodes read: widget values Python wrote in every form the
Fovea and Gaze Path nodes accept (tests/widget_value_cases.py) go through the widgets' edit path
in JavaScript (web/fovea_values.js via tests/web/roundtrip.test.mjs) and back into the real
nodes, which must see the original gazes / keyframes with exactly the edited fields changed."""
import dataclasses
import shutil

import pytest

import widget_value_cases

pytestmark = pytest.mark.comfyui
POLICY = ("1/2 resolution", 2.0, 0.03)


def _gazes(env, v):
    out = env.pack.nodes.fovea_nodes.FoveaNode.execute(
        v["x"], v["y"], v["radius"], v["aspect"], v["rotation"], v["extra_gazes"], 64, 64, *POLICY)
    return list(out.args[0].regions)


def _keyframes(env, v):
    out = env.pack.nodes.fovea_nodes.GazePathNode.execute(v["keyframes"], v["num_frames"], 64, 64, *POLICY)
    return list(out.args[0].path.keyframes)


def _edited_gazes(gazes, edits, gaze_cls):
    gazes = list(gazes)
    for op, *a in edits:
        if op == "move":
            gazes[a[0]] = dataclasses.replace(gazes[a[0]], x=a[1], y=a[2])
        elif op == "radius":
            gazes[a[0]] = dataclasses.replace(gazes[a[0]], radius=a[1])
        elif op == "add":
            gazes.append(gaze_cls(*a))
        elif op == "remove":
            del gazes[a[0]]
    return gazes


def _edited_keyframes(keyframes, edits, keyframe_cls):
    by_frame = {k.frame: k for k in keyframes}
    for op, frame, *a in edits:
        if op == "place":
            x, y, r = a
            by_frame[frame] = (dataclasses.replace(by_frame[frame], x=x, y=y) if frame in by_frame
                               else keyframe_cls(frame, x, y, r))
        elif op == "move":
            by_frame[frame] = dataclasses.replace(by_frame[frame], x=a[0], y=a[1])
        elif op == "radius":
            by_frame[frame] = dataclasses.replace(by_frame[frame], radius=a[0])
        elif op == "remove":
            del by_frame[frame]
    return [by_frame[f] for f in sorted(by_frame)]


def test_nodes_read_back_exactly_what_the_canvas_edited(env, tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the widget's JavaScript was not checked")
    cases = widget_value_cases.cases()
    results = widget_value_cases.run_roundtrip(tmp_path, cases)
    forms = set()
    for case, result in zip(cases, results):
        forms.add((case["node"], case["form"]))
        if case["node"] == "Fovea":
            before = _gazes(env, case["values"])
            expected = _edited_gazes(before, case["edits"], type(before[0]))
            got = _gazes(env, result["values"])
        else:
            before = _keyframes(env, case["values"])
            expected = _edited_keyframes(before, case["edits"], type(before[0]))
            got = _keyframes(env, result["values"])
        assert got == expected, (case, result["changes"])
        if not case["edits"]:
            assert got == before and result["changes"] == {}
    assert len(forms) == len(widget_value_cases.EXTRA_FORMS) + len(widget_value_cases.KEYFRAME_FORMS) + 1
