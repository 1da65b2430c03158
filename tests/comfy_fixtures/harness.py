"""In-process, headless ComfyUI for the real-ComfyUI test tier.

Boots a ComfyUI checkout inside the current Python process (no HTTP server), loads
this pack through ComfyUI's own custom-node loader, and runs API-format prompts
through ComfyUI's real ``execution.PromptExecutor``.  run_prompt returns the python
objects each node produced (LATENT dicts, IMAGE tensors, MODEL patchers, ...), read
back from the executor's output cache.

Public API::

    boot_comfyui(comfy_root, models_dir, output_dir, custom_node_dirs=(), *, cpu=True) -> ComfyHandle
    load_custom_node_dir(handle, path) -> None
    harness_test_nodes() -> list[type]       # V3 test-only nodes: HarnessRandomConditioning
    register_nodes(handle, node_classes) -> None
    random_conditioning(n_tokens, context_dim, pooled_dim, seed=0, guidance=None) -> list
    run_prompt(handle, prompt, *, clear_cache=False, on_progress=None) -> dict
    interrupt(handle) -> None
    refresh_model_lists(handle) -> None
    ComfyHandle, ComfyHarnessError, PromptValidationError, PromptExecutionError, PromptInterrupted

ComfyUI keeps its node registry, model paths and loaded models in module globals, so
boot_comfyui runs once per process, before anything imports ComfyUI's modules.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# ComfyUI's top-level modules; one imported before boot (e.g. this pack's nodes/ package
# as ``nodes``) would silently be the wrong module for ComfyUI.
COMFY_MODULES = ("comfy", "nodes", "execution", "server", "folder_paths", "node_helpers", "latent_preview",
                 "comfy_execution", "comfy_api", "comfy_extras", "app", "utils", "protocol", "comfyui_version")


class ComfyHarnessError(Exception):
    """Base class of the harness's errors."""


class PromptValidationError(ComfyHarnessError):
    """The prompt failed ComfyUI's validation (what POST /prompt answers with HTTP 400)."""

    def __init__(self, error: dict, node_errors: dict):
        lines = [error.get("message", "Prompt validation failed")]
        if error.get("details") and not node_errors:
            lines[0] += f": {error['details']}"
        for node_id, ne in node_errors.items():
            lines.append(f"* {ne['class_type']} {node_id}:")
            lines += [f"  - {r.get('message')}: {r.get('details')}" for r in ne["errors"]]
        super().__init__("\n".join(lines))


class PromptExecutionError(ComfyHarnessError):
    """A node raised while the prompt ran (ComfyUI's ``execution_error`` message).  ``str(exc)``
    is what the error dialog shows: "<node_type> (#id): <exception_type>: <exception_message>";
    ComfyUI's traceback is attached as a note."""

    def __init__(self, message: dict):
        super().__init__(f"{message.get('node_type')} (#{message.get('node_id')}): {message.get('exception_type')}: "
                         f"{(message.get('exception_message') or '').rstrip()}")
        if message.get("traceback") and hasattr(self, "add_note"):  # Python >= 3.11
            self.add_note("ComfyUI traceback (most recent call last):\n" + "".join(message["traceback"]).rstrip())


class PromptInterrupted(ComfyHarnessError):
    """The prompt was interrupted (ComfyUI's ``execution_interrupted`` message)."""


class _PromptServer:
    """Stands in for ``server.PromptServer.instance``: the executor reports to it (messages
    are dropped) and core nodes register node replacements with it (ignored: the harness
    runs prompts as given)."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.sockets_metadata: dict = {}
        self.node_replace_manager = self

    def send_sync(self, event, data, sid=None):
        pass

    def register(self, node_replace):
        pass


@dataclass
class ComfyHandle:
    """What boot_comfyui returns."""

    executor: object                    # execution.PromptExecutor
    builtin_node_ids: frozenset[str]    # node ids after ComfyUI's built-in nodes loaded
    progress_callback: Callable | None = None

    @property
    def node_class_mappings(self) -> dict:
        return sys.modules["nodes"].NODE_CLASS_MAPPINGS


def boot_comfyui(comfy_root: Path | str, models_dir: Path | str, output_dir: Path | str,
                 custom_node_dirs: Iterable[Path | str] = (), *, cpu: bool = True) -> ComfyHandle:
    """Boot ComfyUI in-process and load the custom node packs; return the handle.

    comfy_root        ComfyUI checkout (put on sys.path[0]).
    models_dir        ``--models-directory``: every ComfyUI model folder is models_dir/<name>.
    output_dir        ComfyUI's output folder; input and temp are its siblings
                      ``<output_dir>/../input`` and ``../temp``, and ``../comfy_base`` is
                      ``--base-directory`` (user dir), so nothing is written into the checkout.
    custom_node_dirs  pack directories, loaded with load_custom_node_dir.  The checkout's
                      custom_nodes/ folder is never scanned.
    cpu               ``--cpu``.  Attention is always ``--use-pytorch-cross-attention``.
    """
    comfy_root = Path(comfy_root).expanduser().resolve()
    models_dir = Path(models_dir).expanduser().resolve()
    output_dir = Path(output_dir).expanduser().resolve()
    clashes = [m for m in COMFY_MODULES if m in sys.modules]
    if clashes:
        raise ComfyHarnessError(f"boot_comfyui must run once per process, before anything imports ComfyUI's "
                                f"modules; already imported: {clashes}")
    if not (comfy_root / "comfy" / "model_management.py").is_file() or not (comfy_root / "nodes.py").is_file():
        raise ComfyHarnessError(f"{comfy_root} is not a ComfyUI checkout")

    input_dir, temp_dir = output_dir.parent / "input", output_dir.parent / "temp"
    user_dir = output_dir.parent / "comfy_base" / "user"
    for d in (models_dir, output_dir, input_dir, temp_dir, user_dir):
        d.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(comfy_root))

    # command line, parsed by comfy.cli_args at import time
    argv = [str(comfy_root / "main.py"), "--use-pytorch-cross-attention",
            "--base-directory", str(user_dir.parent), "--models-directory", str(models_dir)]
    if cpu:
        argv.append("--cpu")
    old_argv, sys.argv = sys.argv, argv
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401
    finally:
        sys.argv = old_argv

    import folder_paths

    folder_paths.set_output_directory(str(output_dir))
    folder_paths.set_input_directory(str(input_dir))
    folder_paths.set_temp_directory(str(temp_dir))
    folder_paths.set_user_directory(str(user_dir))

    import comfy.model_management
    import comfy.utils
    import execution
    import nodes
    import server
    from comfy_execution.utils import get_executing_context

    srv = _PromptServer()
    server.PromptServer.instance = srv
    # ComfyUI's built-in nodes (nodes.py + comfy_extras), as main.start_comfyui loads them
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    # init_external_custom_nodes puts <root>/comfy on sys.path before loading custom nodes
    sys.path.insert(0, str(comfy_root / "comfy"))

    # main.hijack_progress: the progress hook is where a running prompt sees an interrupt
    def progress_hook(value, total, preview_image, prompt_id=None, node_id=None):
        ctx = get_executing_context()
        if handle.progress_callback is not None:
            handle.progress_callback(value, total, node_id or (ctx.node_id if ctx else None))
        comfy.model_management.throw_exception_if_processing_interrupted()

    comfy.utils.set_progress_bar_global_hook(progress_hook)
    # execute_async reads cache_args["ram"] / ["ram_inactive"] whatever the cache type
    executor = execution.PromptExecutor(srv, cache_type=execution.CacheType.CLASSIC,
                                        cache_args={"ram": 4.0, "ram_inactive": 8.0})
    handle = ComfyHandle(executor=executor, builtin_node_ids=frozenset(nodes.NODE_CLASS_MAPPINGS))
    for d in custom_node_dirs:
        load_custom_node_dir(handle, d)
    return handle


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def load_custom_node_dir(handle: ComfyHandle, path: Path | str) -> None:
    """Load a custom node pack (a directory with __init__.py) the way ComfyUI loads each
    entry of custom_nodes/: ``nodes.load_custom_node(path, ignore=<built-in node ids>,
    module_parent="custom_nodes")`` imports it as ``sys.modules[<path, '.' -> '_x_'>]`` and
    registers its V1 NODE_CLASS_MAPPINGS or V3 comfy_entrypoint() nodes.  ComfyUI only logs
    an import failure; the harness raises ComfyHarnessError carrying that log."""
    import nodes

    path = Path(path).expanduser().resolve()
    records = _Records()
    logging.getLogger().addHandler(records)
    try:
        ok = asyncio.run(nodes.load_custom_node(str(path), ignore=set(handle.builtin_node_ids),
                                                module_parent="custom_nodes"))
    finally:
        logging.getLogger().removeHandler(records)
    if not ok:
        raise ComfyHarnessError(f"ComfyUI could not load custom node {path}:\n" + "\n".join(records.lines))


def harness_test_nodes() -> list[type]:
    """Test-only V3 nodes (call after boot):

    HarnessRandomConditioning(seed, n_tokens, context_dim, pooled_dim, guidance) -> CONDITIONING
        random_conditioning as a node; pooled_dim 0: no pooled_output, guidance < 0: no "guidance".
    """
    from comfy_api.latest import io

    class HarnessRandomConditioning(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="HarnessRandomConditioning",
                category="testing/harness",
                inputs=[
                    io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF),
                    io.Int.Input("n_tokens", default=8, min=1, max=4096),
                    io.Int.Input("context_dim", default=32, min=1, max=16384),
                    io.Int.Input("pooled_dim", default=16, min=0, max=16384),
                    io.Float.Input("guidance", default=-1.0, min=-1.0, max=100.0),
                ],
                outputs=[io.Conditioning.Output()],
            )

        @classmethod
        def execute(cls, seed, n_tokens, context_dim, pooled_dim, guidance) -> io.NodeOutput:
            return io.NodeOutput(random_conditioning(n_tokens, context_dim, pooled_dim, seed,
                                                     None if guidance < 0 else guidance))

    return [HarnessRandomConditioning]


def register_nodes(handle: ComfyHandle, node_classes: Iterable[type]) -> None:
    """Register V3 ``io.ComfyNode`` classes under their schema.node_id, as load_custom_node does."""
    for cls in node_classes:
        handle.node_class_mappings[cls.GET_SCHEMA().node_id] = cls


def random_conditioning(n_tokens: int, context_dim: int, pooled_dim: int | None, seed: int = 0,
                        guidance: float | None = None) -> list:
    """A CONDITIONING value: ``[[cond (1, n_tokens, context_dim), {"pooled_output": (1, pooled_dim)}]]``,
    without pooled_output when pooled_dim is 0 or None, with ``"guidance"`` when given."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    extra = {}
    cond = torch.randn(1, n_tokens, context_dim, generator=g)
    if pooled_dim:
        extra["pooled_output"] = torch.randn(1, pooled_dim, generator=g)
    if guidance is not None:
        extra["guidance"] = float(guidance)
    return [[cond, extra]]


async def _validate(handle: ComfyHandle, prompt: dict, prompt_id: str) -> None:
    """Validate like POST /prompt does, raising PromptValidationError.  ComfyUI validates from
    the OUTPUT_NODEs only; a test prompt may end anywhere (KSampler, VAEDecode, ...), so every
    other node is validated with the same ``execution.validate_inputs``."""
    import execution

    valid, error, _, node_errors = await execution.validate_prompt(prompt_id, prompt, list(prompt))
    if not valid and error.get("type") != "prompt_no_outputs":
        raise PromptValidationError(error, node_errors)
    validated: dict = {}
    for node_id, node in prompt.items():
        if getattr(handle.node_class_mappings[node["class_type"]], "OUTPUT_NODE", False) is not True:
            await execution.validate_inputs(prompt_id, prompt, node_id, validated)
    failed = {n: {"class_type": prompt[n]["class_type"], "errors": r[1]}
              for n, r in validated.items() if r[0] is not True and r[1]}
    if failed:
        raise PromptValidationError({"message": "Prompt outputs failed validation"}, failed)


def run_prompt(handle: ComfyHandle, prompt: Mapping, *, clear_cache: bool = False,
               on_progress: Callable[[int, int, str | None], None] | None = None) -> dict:
    """Validate an API-format prompt and run every node of it through ComfyUI's PromptExecutor.

    Returns node id -> tuple of that node's output values (one per output socket), for
    every node whose output is in the executor's cache (ran now or served from the cache).
    A socket's value is unwrapped from ComfyUI's per-socket list when the node ran once and
    the socket is not OUTPUT_IS_LIST: a KSampler gives ``result[id][0] == {"samples": ...}``.

    clear_cache  drop the executor cache first so every node re-executes (otherwise nodes
                 whose inputs did not change are served from the cache, as in ComfyUI).
    on_progress  called as on_progress(value, total, node_id) from ComfyUI's progress hook
                 (e.g. once per sampler step) before its interrupt check: call interrupt()
                 from it to interrupt deterministically.
    Raises PromptValidationError, PromptExecutionError or PromptInterrupted.  torch's global
    RNG state is restored afterwards (KSampler's prepare_noise calls torch.manual_seed).
    """
    import torch

    prompt = copy.deepcopy(dict(prompt))  # the executor writes into the prompt
    prompt_id = uuid.uuid4().hex
    asyncio.run(_validate(handle, prompt, prompt_id))
    if clear_cache:
        handle.executor.reset()
    handle.progress_callback = on_progress
    rng = torch.get_rng_state()
    try:
        asyncio.run(handle.executor.execute_async(prompt, prompt_id, {}, list(prompt)))
    finally:
        handle.progress_callback = None
        torch.set_rng_state(rng)
    for event, data in handle.executor.status_messages:
        if event == "execution_error":
            raise PromptExecutionError(data)
        if event == "execution_interrupted":
            raise PromptInterrupted(f"Prompt interrupted while running {data.get('node_type')} "
                                    f"(#{data.get('node_id')})")

    result = {}
    for node_id, node in prompt.items():
        entry = handle.executor.caches.outputs.get_local(node_id)
        if entry is None:
            continue
        is_list = getattr(handle.node_class_mappings[node["class_type"]], "OUTPUT_IS_LIST", None) or ()
        result[node_id] = tuple(
            list(slot) if i < len(is_list) and is_list[i] else slot[0] if isinstance(slot, list) and len(slot) == 1
            else slot for i, slot in enumerate(entry.outputs))
    return result


def interrupt(handle: ComfyHandle) -> None:
    """What the UI's Cancel button does (nodes.interrupt_processing()): sets ComfyUI's global
    interrupt flag; the running prompt stops at its next check and run_prompt raises
    PromptInterrupted.  The executor clears the flag when a prompt starts, so call it while
    the prompt runs (from on_progress)."""
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(True)


def refresh_model_lists(handle: ComfyHandle) -> None:
    """Forget folder_paths' cached file lists (after writing model files)."""
    import folder_paths

    folder_paths.filename_list_cache.clear()
