"""The example workflows: built from tests/workflow_specs.py against the live node
definitions, so widget order, socket types and links are what ComfyUI expects."""
import json
from pathlib import Path

import pytest

import workflow_specs

pytestmark = pytest.mark.comfyui
WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


@pytest.mark.parametrize("name", sorted(workflow_specs.WORKFLOWS))
def test_workflow_file_is_current(env, request, name):
    built = workflow_specs.build(name, env.handle.node_class_mappings)
    path = WORKFLOWS / f"{name}.json"
    if request.config.getoption("--regenerate-workflows"):
        path.write_text(json.dumps(built, indent=2) + "\n")
    assert path.is_file(), f"{path} missing: run with --regenerate-workflows"
    assert json.loads(path.read_text()) == built, f"{path.name} is stale: run with --regenerate-workflows"


def test_every_node_type_exists_in_core_or_this_pack(env):
    files = sorted(WORKFLOWS.glob("*.json"))
    assert len(files) >= 4
    pack_ids = {c.GET_SCHEMA().node_id for c in env.pack.nodes.NODE_CLASSES}
    core_ids = set(env.handle.builtin_node_ids)
    for path in files:
        data = json.loads(path.read_text())
        types = {n["type"] for n in data["nodes"]}
        unknown = types - pack_ids - core_ids - workflow_specs.FRONTEND_ONLY
        assert not unknown, f"{path.name} uses node types that are neither core nor ours: {unknown}"
        assert types & pack_ids, f"{path.name} uses none of the pack's nodes"
        ids = {n["id"] for n in data["nodes"]}
        for link in data["links"]:
            assert link[1] in ids and link[3] in ids
