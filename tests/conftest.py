"""Test tiers and how they are found.

pure     fov_core and node logic on CPU; always runs.
comfyui  real ComfyUI: runs when COMFYUI_PATH points at a ComfyUI checkout whose
         dependencies import in this interpreter.
browser  real ComfyUI server + headless Chromium (playwright-core); needs COMFYUI_PATH,
         node and a Chromium binary (CHROMIUM or /usr/bin/chromium).

Every test module carries exactly one tier marker. The run ends with a line per tier
saying whether it ran and, if skipped, why. Under CI (CI=true) a tier that did not run,
or any skipped test, fails the run. FOVEATED_TIER_COUNTS=<file> writes the per-tier
counts as JSON (.ci/run reads it for its last line).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parents[1]
if str(PACK_ROOT) not in sys.path:
    # appended, never first: the pack's nodes/ must not shadow ComfyUI's top-level nodes.py
    sys.path.append(str(PACK_ROOT))
TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

TIERS = ("pure", "comfyui", "browser")


def _comfyui_status():
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        return None, "COMFYUI_PATH is not set"
    root = Path(path).expanduser().resolve()
    if not (root / "comfy" / "model_management.py").is_file() or not (root / "nodes.py").is_file():
        return None, f"COMFYUI_PATH={path} is not a ComfyUI checkout (no comfy/ or nodes.py)"
    if not (root / "comfy" / "ldm" / "models" / "autoencoder.py").is_file():
        return None, (f"COMFYUI_PATH={path} lacks comfy/ldm/models/autoencoder.py (the shared 0.29.0 snapshot "
                      f"drops it): use a git checkout of ComfyUI, or .ci/run, which fills the gap")
    missing = []
    for mod in ("torchvision", "torchaudio", "safetensors", "einops", "aiohttp", "yaml", "av"):
        try:
            __import__(mod)
        except Exception as exc:  # noqa: BLE001 - report any import failure
            missing.append(f"{mod} ({type(exc).__name__})")
    if missing:
        return None, f"ComfyUI's dependencies do not import here: {', '.join(missing)}"
    return root, ""


def _browser_status(comfy_root):
    if comfy_root is None:
        return False, "needs the comfyui tier (COMFYUI_PATH)"
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return False, "no Chromium binary (install Debian's chromium or set CHROMIUM)"
    if not shutil.which("node"):
        return False, "node is not installed"
    if not (PACK_ROOT / "tests" / "browser" / "node_modules" / "playwright-core").is_dir():
        return False, "playwright-core is not installed (cd tests/browser && npm install)"
    return True, ""


COMFY_ROOT, COMFY_REASON = _comfyui_status()
BROWSER_OK, BROWSER_REASON = _browser_status(COMFY_ROOT)
_counts = {t: {"passed": 0, "failed": 0, "skipped": 0} for t in TIERS}


def pytest_addoption(parser):
    parser.addoption("--regenerate-workflows", action="store_true",
                     help="rewrite workflows/*.json from tests/workflow_specs.py (comfyui tier)")


def pytest_configure(config):
    for t in TIERS:
        config.addinivalue_line("markers", f"{t}: {t} test tier (see tests/conftest.py)")
    if COMFY_ROOT is not None:
        os.environ.setdefault("FOVEATED_TEST_COMFYUI", str(COMFY_ROOT))


def pytest_report_header(config):
    lines = ["foveated tiers: pure=on"]
    lines.append(f"  comfyui={'on (' + str(COMFY_ROOT) + ')' if COMFY_ROOT else 'off: ' + COMFY_REASON}")
    lines.append(f"  browser={'on' if BROWSER_OK else 'off: ' + BROWSER_REASON}")
    return lines


def _tier_of(item):
    marks = [t for t in TIERS if item.get_closest_marker(t)]
    return marks


def pytest_collection_modifyitems(config, items):
    for item in items:
        tiers = _tier_of(item)
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid}: every test needs exactly one tier marker {TIERS}, has {tiers}")
        if tiers[0] == "comfyui" and COMFY_ROOT is None:
            item.add_marker(pytest.mark.skip(reason=f"comfyui tier: {COMFY_REASON}"))
        if tiers[0] == "browser" and not BROWSER_OK:
            item.add_marker(pytest.mark.skip(reason=f"browser tier: {BROWSER_REASON}"))


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        tier = next((t for t in TIERS if t in report.keywords), None)
        if tier:
            _counts[tier][report.outcome] = _counts[tier].get(report.outcome, 0) + 1


def _under_ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _ci_problems():
    """Under CI every tier must run, and nothing may be skipped."""
    problems = []
    reasons = {"pure": "", "comfyui": COMFY_REASON, "browser": BROWSER_REASON}
    for t in TIERS:
        c = _counts[t]
        if c["passed"] + c["failed"] == 0:
            problems.append(f"the {t} tier did not run ({reasons[t] or 'no tests selected'})")
        elif c["skipped"]:
            problems.append(f"{c['skipped']} {t} test(s) skipped")
    return problems


def pytest_sessionfinish(session, exitstatus):
    counts_file = os.environ.get("FOVEATED_TIER_COUNTS")
    if counts_file:
        Path(counts_file).write_text(json.dumps(_counts))
    if _under_ci() and _ci_problems() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    tr.section("foveated test tiers")
    reasons = {"pure": "", "comfyui": COMFY_REASON, "browser": BROWSER_REASON}
    for t in TIERS:
        c = _counts[t]
        ran = c["passed"] + c["failed"]
        if ran:
            tr.write_line(f"{t:8s} RAN      {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
        elif c["skipped"]:
            tr.write_line(f"{t:8s} SKIPPED  {c['skipped']} tests: {reasons[t] or 'see skip reasons'}")
        else:
            tr.write_line(f"{t:8s} NOT RUN  no tests of this tier were selected")
    if _under_ci():
        for problem in _ci_problems():
            tr.write_line(f"CI=true: FAILURE: {problem}", red=True)


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    """Booted in-process ComfyUI with tiny real-format models and this pack loaded."""
    if COMFY_ROOT is None:
        pytest.skip(COMFY_REASON)
    from types import SimpleNamespace

    from comfy_fixtures import harness, tiny_models, tiny_wan

    base = tmp_path_factory.mktemp("comfyui")
    models = base / "models"
    infos = tiny_models.write_all(models)
    infos["flux1_fill"] = tiny_models.write_flux1_dit(models / "diffusion_models" / "tiny_flux1_fill.safetensors",
                                                      in_channels=96, seed=5)  # FLUX.1 Fill: 16 + 16 + 64 channels
    infos.update(tiny_wan.write_all(models))
    handle = harness.boot_comfyui(COMFY_ROOT, models, base / "output", [PACK_ROOT])
    harness.register_nodes(handle, harness.harness_test_nodes())
    pack = sys.modules[str(PACK_ROOT).replace(".", "_x_")]
    return SimpleNamespace(handle=handle, pack=pack, models=models, infos=infos, harness=harness,
                           tiny_models=tiny_models, tiny_wan=tiny_wan, root=COMFY_ROOT)
