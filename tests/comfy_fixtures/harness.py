"""In-process, headless ComfyUI for the real-ComfyUI test tier.

Boots a ComfyUI checkout inside the current Python process (CPU only, no HTTP
server), loads this pack through ComfyUI's own custom-node loader, and runs
API-format prompts through ComfyUI's real ``execution.PromptExecutor``.  The
python objects each node produced (LATENT dicts, IMAGE tensors, MODEL
patchers, ...) are read back from the executor's output cache.

Public API (everything else is private)::

    boot_comfyui(comfy_root, models_dir, output_dir, custom_node_dirs=(), *,
                 extra_nodes=None, input_dir=None, temp_dir=None, base_dir=None,
                 cpu=True, attention="pytorch", cache="classic",
                 extra_args=(), strict_custom_nodes=True,
                 log_level=None) -> ComfyHandle
    current_handle() -> ComfyHandle | None
    run_prompt(handle, prompt, outputs=None, *, validate=True, clear_cache=False,
               on_progress=None, extra_data=None, raise_on_error=True,
               preserve_rng_state=True) -> PromptResult
    validate_prompt(handle, prompt, outputs=None) -> list[str]
    register_nodes(handle, nodes, display_names=None) -> list[str]
    unregister_nodes(handle, node_ids) -> None
    load_custom_node_dir(handle, path, strict=True) -> bool
    clear_cache(handle) -> None
    free_memory(handle) -> None
    refresh_model_lists(handle=None) -> None
    interrupt(handle=None) -> None
    harness_test_nodes() -> dict[str, type]      # V3 test-only nodes (random CONDITIONING, ...)
    random_conditioning(n_tokens, context_dim, pooled_dim, seed=0, guidance=None) -> list
    ComfyHandle, PromptResult, HarnessPromptServer
    ComfyHarnessError, PromptValidationError, PromptExecutionError, PromptInterrupted

``boot_comfyui`` is idempotent within one process: ComfyUI keeps its node
registry, model paths and loaded models in module globals, so one process can
host one ComfyUI.  A second call returns the same handle (re-pointing the
model/output folders and loading any custom-node dirs not loaded yet); a second
call with a different ``comfy_root`` raises.

Run ``python tests/comfy_fixtures/harness.py [COMFY_ROOT]`` for a demo that writes
a tiny random FLUX.1 model, samples 2 steps on CPU and prints shapes/timings.
"""
from __future__ import annotations

import asyncio
import copy
import importlib.util
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "boot_comfyui",
    "current_handle",
    "run_prompt",
    "validate_prompt",
    "register_nodes",
    "unregister_nodes",
    "load_custom_node_dir",
    "clear_cache",
    "free_memory",
    "refresh_model_lists",
    "interrupt",
    "harness_test_nodes",
    "random_conditioning",
    "ComfyHandle",
    "PromptResult",
    "HarnessPromptServer",
    "ComfyHarnessError",
    "PromptValidationError",
    "PromptExecutionError",
    "PromptInterrupted",
]

log = logging.getLogger("comfy_harness")

# Test-only nodes registered through register_nodes() report this python module.
TEST_NODE_MODULE = "custom_nodes.comfy_harness_test_nodes"

# ComfyUI model folders the harness points at ``models_dir/<name>``.  ``--models-directory``
# already does this for every folder ComfyUI knows; the explicit list is re-applied
# (as the default path) on re-boot with another models_dir and when comfy.cli_args had
# already been imported without our arguments.
MODEL_FOLDERS = (
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models",
    "clip_vision", "style_models", "embeddings", "diffusers", "vae_approx", "controlnet",
    "gligen", "upscale_models", "latent_upscale_models", "hypernetworks", "photomaker",
    "classifiers", "model_patches", "audio_encoders",
)

_HANDLE: "ComfyHandle | None" = None
_BOOT_LOCK = threading.RLock()


# --------------------------------------------------------------------------- errors

class ComfyHarnessError(Exception):
    """Base class of the harness's errors."""


class PromptValidationError(ComfyHarnessError):
    """The prompt failed ComfyUI's validation (what POST /prompt answers with HTTP 400).

    ``error`` is ComfyUI's top-level error dict (type, message, details, extra_info);
    ``node_errors`` maps node id -> {"errors": [...], "dependent_outputs": [...],
    "class_type": ...}, exactly as the server returns them.  ``str(exc)`` is the
    message the frontend shows.
    """

    def __init__(self, error: dict, node_errors: dict | None = None):
        self.error = dict(error or {})
        self.node_errors = dict(node_errors or {})
        super().__init__(_format_validation_error(self.error, self.node_errors))

    @property
    def type(self) -> str:
        return self.error.get("type", "")

    def reasons(self, node_id: str | None = None) -> list[dict]:
        """The per-node error dicts (all nodes, or one node)."""
        items = self.node_errors.items() if node_id is None else [(node_id, self.node_errors.get(str(node_id), {}))]
        return [r for _, ne in items for r in ne.get("errors", [])]


class PromptExecutionError(ComfyHarnessError):
    """A node raised while the prompt ran (ComfyUI's ``execution_error`` message).

    Attributes mirror the message: node_id, node_type, exception_type,
    exception_message, traceback (list of str, ComfyUI side), current_inputs,
    executed, and ``message`` (the full dict).  ``str(exc)`` is what the error
    dialog shows: "<node_type> (#id): <exception_type>: <exception_message>".
    """

    def __init__(self, message: dict, result: "PromptResult | None" = None):
        self.message = dict(message)
        self.node_id = str(message.get("node_id"))
        self.node_type = message.get("node_type")
        self.exception_type = message.get("exception_type", "")
        self.exception_message = (message.get("exception_message") or "").rstrip("\n")
        self.traceback = list(message.get("traceback") or [])
        self.current_inputs = message.get("current_inputs") or {}
        self.executed = list(message.get("executed") or [])
        self.result = result
        super().__init__(f"{self.node_type} (#{self.node_id}): {self.exception_type}: {self.exception_message}")
        if self.traceback and hasattr(self, "add_note"):
            self.add_note("ComfyUI traceback (most recent call last):\n" + "".join(self.traceback).rstrip())


class PromptInterrupted(ComfyHarnessError):
    """The prompt was interrupted (ComfyUI's ``execution_interrupted`` message)."""

    def __init__(self, message: dict, result: "PromptResult | None" = None):
        self.message = dict(message)
        self.node_id = str(message.get("node_id"))
        self.node_type = message.get("node_type")
        self.executed = list(message.get("executed") or [])
        self.result = result
        super().__init__(f"Prompt interrupted while running {self.node_type} (#{self.node_id})")


def _format_validation_error(error: dict, node_errors: dict) -> str:
    lines = [error.get("message", "Prompt validation failed")]
    if error.get("details") and not node_errors:
        lines[0] += f": {error['details']}"
    for node_id, ne in node_errors.items():
        lines.append(f"* {ne.get('class_type')} {node_id}:")
        for r in ne.get("errors", []):
            lines.append(f"  - {r.get('message')}: {r.get('details')}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- fake server

class HarnessPromptServer:
    """Stands in for ``server.PromptServer`` for the executor and for nodes.

    The executor uses client_id, last_node_id, send_sync; WebUIProgressHandler uses
    sockets_metadata; V3 NodeReplacement uses node_replace_manager; custom nodes
    commonly use ``PromptServer.instance.routes`` (decorators are accepted and
    recorded, never served), send_sync and send_progress_text.  Every message is
    appended to ``messages`` as (event, data, sid).
    """

    def __init__(self):
        from aiohttp import web

        self.client_id: str | None = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets = {}
        self.sockets_metadata: dict = {}
        self.supports = ["custom_nodes_from_web"]
        self.routes = web.RouteTableDef()
        self.messages: list[tuple[Any, Any, Any]] = []
        self.listeners: list[Callable[[Any, Any, Any], None]] = []
        self.on_prompt_handlers: list = []
        self.number = 0
        self.loop = None
        try:
            from app.node_replace_manager import NodeReplaceManager

            self.node_replace_manager = NodeReplaceManager()
        except Exception:  # noqa: BLE001 - older checkouts have no replacements
            self.node_replace_manager = None

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data, sid))
        for listener in list(self.listeners):
            listener(event, data, sid)

    async def send(self, event, data, sid=None):
        self.send_sync(event, data, sid)

    async def send_json(self, event, data, sid=None):
        self.send_sync(event, data, sid)

    def send_progress_text(self, text, node_id, sid=None):
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "replace")
        self.send_sync("progress_text", {"node_id": node_id, "text": text}, sid)

    def queue_updated(self):
        pass

    def add_on_prompt_handler(self, handler):
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data):
        for handler in self.on_prompt_handlers:
            json_data = handler(json_data)
        return json_data

    def events(self, name) -> list:
        """Data of every message with this event name, in order."""
        return [d for e, d, _ in self.messages if e == name]


# --------------------------------------------------------------------------- handle / result

@dataclass
class ComfyHandle:
    """What boot_comfyui returns.  Fields are informative; use the module functions."""

    comfy_root: Path
    models_dir: Path
    output_dir: Path
    input_dir: Path
    temp_dir: Path
    base_dir: Path
    server: HarnessPromptServer
    executor: Any                      # execution.PromptExecutor
    argv: list[str]
    boot_seconds: dict[str, float]     # phase -> seconds
    builtin_node_ids: frozenset[str]   # node ids after built-ins loaded
    builtin_import_failed: list[str]   # comfy_extras files that failed to import
    custom_nodes: dict[str, bool] = field(default_factory=dict)   # abs path -> loaded ok
    custom_node_ids: dict[str, list[str]] = field(default_factory=dict)  # abs path -> node ids it added
    test_node_ids: set[str] = field(default_factory=set)
    progress_callback: Callable | None = None

    @property
    def nodes(self):
        """ComfyUI's ``nodes`` module (NODE_CLASS_MAPPINGS, EXTENSION_WEB_DIRS, ...)."""
        return sys.modules["nodes"]

    @property
    def node_class_mappings(self) -> dict:
        return sys.modules["nodes"].NODE_CLASS_MAPPINGS


class PromptResult(dict):
    """node id -> tuple of that node's output values (one item per output socket).

    A socket's value is unwrapped from ComfyUI's per-socket list when the node ran
    once and the socket is not an OUTPUT_IS_LIST socket (so a KSampler gives
    ``result["3"][0] == {"samples": tensor, ...}``); otherwise it is the list.
    Every node of the prompt whose output is in the cache is present, whether it
    ran in this call or came from the cache.

    Extra attributes: prompt_id, raw (node id -> CacheEntry.outputs, ComfyUI's
    list-of-lists), ui (node id -> UI output dict, i.e. history "outputs"),
    executed (node ids that ran in this call, in order), cached (node ids served
    from the cache), status_messages (executor's (event, data) list), messages
    (every server message), error (execution_error / execution_interrupted data or
    None), seconds (execution wall time).
    """

    prompt_id: str
    raw: dict
    ui: dict
    executed: list
    cached: list
    status_messages: list
    messages: list
    error: dict | None
    seconds: float

    def output(self, node_id, index: int = 0):
        return self[str(node_id)][index]


# --------------------------------------------------------------------------- boot

def current_handle() -> ComfyHandle | None:
    """The handle of the ComfyUI booted in this process, if any."""
    return _HANDLE


def boot_comfyui(
    comfy_root: Path | str,
    models_dir: Path | str,
    output_dir: Path | str,
    custom_node_dirs: Iterable[Path | str] = (),
    *,
    extra_nodes: Mapping[str, type] | Iterable[type] | None = None,
    input_dir: Path | str | None = None,
    temp_dir: Path | str | None = None,
    base_dir: Path | str | None = None,
    cpu: bool = True,
    attention: str | None = "pytorch",
    cache: str = "classic",
    extra_args: Iterable[str] = (),
    strict_custom_nodes: bool = True,
    log_level: int | str | None = None,
) -> ComfyHandle:
    """Boot ComfyUI in-process (once) and return the handle.

    comfy_root        ComfyUI checkout (put on sys.path[0]).
    models_dir        ``--models-directory``: every ComfyUI model folder is models_dir/<name>
                      (diffusion_models, vae, loras, checkpoints, text_encoders, ...).
                      Created if missing, with the MODEL_FOLDERS subfolders.
    output_dir        ``--output-directory``; input_dir/temp_dir default to siblings
                      ``<output_dir>/../input`` and ``<output_dir>/../temp``.
    custom_node_dirs  pack directories (each with __init__.py) or single .py files,
                      loaded with ComfyUI's own ``nodes.load_custom_node``.  The
                      checkout's custom_nodes/ folder is never scanned.
    extra_nodes       test-only nodes: V1 ``{name: class}`` mapping or V3 io.ComfyNode
                      classes (see register_nodes).
    base_dir          ``--base-directory`` (user dir, custom_nodes folder); defaults to
                      ``<output_dir>/../comfy_base`` so nothing is written into the checkout.
    cpu, attention    ``--cpu`` and ``--use-<attention>-cross-attention`` (None: no flag).
    cache             executor cache: "classic" (default; outputs of every node of the
                      last prompt stay readable), "lru", "ram" (ComfyUI's server
                      default; may evict outputs) or "none" (outputs not readable).
    extra_args        more ComfyUI command-line arguments.
    strict_custom_nodes  raise ComfyHarnessError when a custom node dir fails to load.
    log_level         if given, set the root logger's level (ComfyUI logs via root).
    """
    global _HANDLE
    comfy_root = Path(comfy_root).expanduser().resolve()
    models_dir = Path(models_dir).expanduser().resolve()
    output_dir = Path(output_dir).expanduser().resolve()
    with _BOOT_LOCK:
        if _HANDLE is not None:
            if _HANDLE.comfy_root != comfy_root:
                raise ComfyHarnessError(
                    f"ComfyUI is already booted from {_HANDLE.comfy_root} in this process; "
                    f"cannot boot {comfy_root} as well (ComfyUI state is process-global)")
            _repoint_dirs(_HANDLE, models_dir, output_dir, input_dir, temp_dir)
            for d in custom_node_dirs:
                if str(Path(d).resolve()) not in _HANDLE.custom_nodes:
                    load_custom_node_dir(_HANDLE, d, strict=strict_custom_nodes)
            if extra_nodes:
                register_nodes(_HANDLE, extra_nodes)
            return _HANDLE
        _HANDLE = _boot(comfy_root, models_dir, output_dir, list(custom_node_dirs), extra_nodes,
                        input_dir, temp_dir, base_dir, cpu, attention, cache, list(extra_args),
                        strict_custom_nodes, log_level)
        return _HANDLE


def _check_module_clashes(comfy_root: Path):
    """ComfyUI imports top-level modules named nodes, server, execution, folder_paths,
    utils, app, comfy...  If one of them was imported from elsewhere first (this pack
    has a top-level ``nodes/`` folder), ComfyUI would silently get the wrong module."""
    names = ("comfy", "nodes", "execution", "server", "folder_paths", "node_helpers",
             "latent_preview", "comfy_execution", "comfy_api", "comfy_extras", "app", "utils",
             "protocol", "comfyui_version", "hook_breaker_ac10a0")
    bad = []
    for name in names:
        mod = sys.modules.get(name)
        if mod is None:
            continue
        files = [getattr(mod, "__file__", None)] + list(getattr(mod, "__path__", []) or [])
        files = [Path(f).resolve() for f in files if f]
        if files and not any(comfy_root == f or comfy_root in f.parents for f in files):
            bad.append(f"{name} -> {files[0]}")
    if bad:
        raise ComfyHarnessError(
            "modules that ComfyUI needs were already imported from outside the ComfyUI checkout "
            f"({comfy_root}): {', '.join(bad)}. Import them via the pack's package (relative "
            "imports) instead of as top-level modules, or boot ComfyUI before importing them.")


def _boot(comfy_root, models_dir, output_dir, custom_node_dirs, extra_nodes, input_dir, temp_dir,
          base_dir, cpu, attention, cache, extra_args, strict_custom_nodes, log_level) -> ComfyHandle:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    if not (comfy_root / "comfy" / "model_management.py").is_file() or not (comfy_root / "nodes.py").is_file():
        raise ComfyHarnessError(f"{comfy_root} is not a ComfyUI checkout")
    if log_level is not None:
        logging.getLogger().setLevel(log_level)

    input_dir = Path(input_dir).resolve() if input_dir else output_dir.parent / "input"
    temp_dir = Path(temp_dir).resolve() if temp_dir else output_dir.parent / "temp"
    base_dir = Path(base_dir).resolve() if base_dir else output_dir.parent / "comfy_base"
    for d in (models_dir, output_dir, input_dir, temp_dir, base_dir, base_dir / "custom_nodes", base_dir / "user"):
        d.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FOLDERS:
        (models_dir / name).mkdir(exist_ok=True)

    root_s = str(comfy_root)
    if root_s in sys.path:
        sys.path.remove(root_s)
    sys.path.insert(0, root_s)
    _check_module_clashes(comfy_root)

    # --- command line, parsed by comfy.cli_args at import time
    argv = [str(comfy_root / "main.py")]
    if cpu:
        argv.append("--cpu")
    if attention:
        argv.append(f"--use-{attention}-cross-attention")
    argv += [
        "--disable-all-custom-nodes",      # never scan <checkout>/custom_nodes (we load ours explicitly)
        "--disable-api-nodes",             # comfy_api_nodes: network nodes, slow to import
        "--base-directory", str(base_dir),
        "--models-directory", str(models_dir),
        "--output-directory", str(output_dir),
        "--input-directory", str(input_dir),
        "--temp-directory", str(temp_dir),
        "--user-directory", str(base_dir / "user"),
        "--database-url", "sqlite:///:memory:",
        "--preview-method", "none",
    ]
    argv += list(extra_args)

    already = "comfy.cli_args" in sys.modules
    old_argv = sys.argv
    sys.argv = argv
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.cli_args
    finally:
        sys.argv = old_argv
    args = comfy.cli_args.args
    if already:
        # cli_args was imported before (with its defaults): set what we need by hand.
        if "comfy.model_management" in sys.modules and cpu and not args.cpu:
            raise ComfyHarnessError("comfy.model_management was imported before the harness booted "
                                    "without --cpu; boot the harness first")
        args.cpu = args.cpu or cpu
        args.disable_all_custom_nodes = True
        args.disable_api_nodes = True
    timings["argparse"] = time.perf_counter() - t_start

    t = time.perf_counter()
    import folder_paths
    import utils.extra_config  # noqa: F401  (main.py imports it before the rest)
    from utils.mime_types import init_mime_types

    init_mime_types()
    _point_folder_paths(folder_paths, models_dir, output_dir, input_dir, temp_dir, base_dir, default=already)

    import torch  # noqa: F401
    import comfy.utils
    import comfy.model_management
    import execution
    import nodes
    import server
    import hook_breaker_ac10a0
    from comfy_execution.progress import get_progress_state
    from comfy_execution.utils import get_executing_context
    timings["import"] = time.perf_counter() - t

    # --- fake PromptServer: executor + nodes + V3 API (node replacements) need one
    srv = HarnessPromptServer()
    if getattr(server.PromptServer, "instance", None) is None:
        server.PromptServer.instance = srv

    # --- built-in nodes (nodes.py + comfy_extras), the way main.start_comfyui does it
    t = time.perf_counter()
    hook_breaker_ac10a0.save_functions()
    import_failed = _run_async(lambda: nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    hook_breaker_ac10a0.restore_functions()
    builtin = frozenset(nodes.NODE_CLASS_MAPPINGS.keys())
    timings["builtin_nodes"] = time.perf_counter() - t
    if import_failed:
        log.warning("comfy_extras files that failed to import: %s", import_failed)

    # init_external_custom_nodes puts <root>/comfy on sys.path before loading custom nodes
    # ("TODO: remove at some point when custom nodes don't break"); do the same so the pack
    # sees the sys.path it sees in production.
    comfy_dir = str(comfy_root / "comfy")
    if comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)

    # --- progress hook (main.hijack_progress): progress events + interrupt checks
    def progress_hook(value, total, preview_image, prompt_id=None, node_id=None):
        ctx = get_executing_context()
        if prompt_id is None and ctx is not None:
            prompt_id = ctx.prompt_id
        if node_id is None and ctx is not None:
            node_id = ctx.node_id
        cb = handle.progress_callback
        if cb is not None:
            cb(value, total, node_id)
        comfy.model_management.throw_exception_if_processing_interrupted()
        if prompt_id is None:
            prompt_id = srv.last_prompt_id
        if node_id is None:
            node_id = srv.last_node_id
        get_progress_state().update_progress(node_id, value, total, preview_image)
        srv.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}, srv.client_id)

    comfy.utils.set_progress_bar_global_hook(progress_hook)

    executor = _make_executor(execution, srv, cache)

    handle = ComfyHandle(
        comfy_root=comfy_root, models_dir=models_dir, output_dir=output_dir, input_dir=input_dir,
        temp_dir=temp_dir, base_dir=base_dir, server=srv, executor=executor, argv=argv,
        boot_seconds=timings, builtin_node_ids=builtin, builtin_import_failed=list(import_failed or []),
    )

    # --- our pack(s) and test-only nodes
    t = time.perf_counter()
    for d in custom_node_dirs:
        _run_prestartup(Path(d))
    for d in custom_node_dirs:
        load_custom_node_dir(handle, d, strict=strict_custom_nodes)
    if extra_nodes:
        register_nodes(handle, extra_nodes)
    timings["custom_nodes"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    return handle


def _make_executor(execution, srv, cache: str):
    cache_types = {
        "classic": execution.CacheType.CLASSIC,
        "lru": execution.CacheType.LRU,
        "ram": execution.CacheType.RAM_PRESSURE,
        "none": execution.CacheType.NONE,
    }
    if cache not in cache_types:
        raise ValueError(f"cache must be one of {sorted(cache_types)}")
    # execute_async reads cache_args["ram"] / ["ram_inactive"] whatever the cache type.
    cache_args = {"lru": 16 if cache == "lru" else 0, "ram": 4.0, "ram_inactive": 8.0}
    return execution.PromptExecutor(srv, cache_type=cache_types[cache], cache_args=cache_args)


def _point_folder_paths(folder_paths, models_dir, output_dir, input_dir, temp_dir, base_dir, default):
    folder_paths.set_output_directory(str(output_dir))
    folder_paths.set_input_directory(str(input_dir))
    folder_paths.set_temp_directory(str(temp_dir))
    folder_paths.set_user_directory(str(base_dir / "user"))
    for name in MODEL_FOLDERS:
        if name in folder_paths.folder_names_and_paths:
            paths = folder_paths.folder_names_and_paths[name][0]
            if str(models_dir / name) not in paths:
                folder_paths.add_model_folder_path(name, str(models_dir / name), is_default=default)
    # main.apply_custom_paths: nodes that save models (CheckpointSave, ...) write under output/
    for name in ("checkpoints", "clip", "vae", "diffusion_models", "loras"):
        folder_paths.add_model_folder_path(name, str(output_dir / name))
    folder_paths.filename_list_cache.clear()


def _repoint_dirs(handle: ComfyHandle, models_dir, output_dir, input_dir, temp_dir):
    import folder_paths

    changed = False
    if models_dir != handle.models_dir:
        models_dir.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FOLDERS:
            (models_dir / name).mkdir(exist_ok=True)
        handle.models_dir = models_dir
        changed = True
    if output_dir != handle.output_dir:
        output_dir.mkdir(parents=True, exist_ok=True)
        handle.output_dir = output_dir
        changed = True
    if input_dir:
        handle.input_dir = Path(input_dir).resolve()
        changed = True
    if temp_dir:
        handle.temp_dir = Path(temp_dir).resolve()
        changed = True
    if changed:
        handle.input_dir.mkdir(parents=True, exist_ok=True)
        handle.temp_dir.mkdir(parents=True, exist_ok=True)
        _point_folder_paths(folder_paths, handle.models_dir, handle.output_dir, handle.input_dir,
                            handle.temp_dir, handle.base_dir, default=True)


def _run_prestartup(path: Path):
    """main.execute_prestartup_script for one pack dir."""
    script = Path(path) / "prestartup_script.py"
    if not script.is_file():
        return
    spec = importlib.util.spec_from_file_location(str(script.with_suffix("")), script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record):
        try:
            self.records.append(record.getMessage())
        except Exception:  # noqa: BLE001
            pass


def load_custom_node_dir(handle: ComfyHandle, path: Path | str, strict: bool = True) -> bool:
    """Load a custom node pack (dir with __init__.py, or a .py file) with ComfyUI's
    ``nodes.load_custom_node(module_path, ignore=<built-in node ids>, module_parent="custom_nodes")``.

    That is exactly what ComfyUI does for each entry of custom_nodes/: it imports the
    module under ``sys.modules[<path with '.' -> '_x_'>]``, registers WEB_DIRECTORY /
    pyproject [tool.comfy] web in ``nodes.EXTENSION_WEB_DIRS``, then either copies
    NODE_CLASS_MAPPINGS (V1) or awaits ``comfy_entrypoint()`` -> ComfyExtension,
    ``on_load()``, ``get_node_list()`` and registers each node under
    ``schema.node_id`` (V3).  Node ids that clash with built-ins are ignored, as in
    ComfyUI.  ComfyUI swallows import errors (logs them, returns False); with
    strict=True the harness raises ComfyHarnessError carrying that log instead.
    """
    nodes = handle.nodes
    path = Path(path).expanduser().resolve()
    before = set(nodes.NODE_CLASS_MAPPINGS)
    cap = _LogCapture()
    root = logging.getLogger()
    root.addHandler(cap)
    try:
        ok = bool(_run_async(lambda: nodes.load_custom_node(str(path), ignore=set(handle.builtin_node_ids),
                                                            module_parent="custom_nodes")))
    finally:
        root.removeHandler(cap)
    handle.custom_nodes[str(path)] = ok
    handle.custom_node_ids[str(path)] = sorted(set(nodes.NODE_CLASS_MAPPINGS) - before)
    if not ok and strict:
        raise ComfyHarnessError(f"ComfyUI could not load custom node {path}:\n" + "\n".join(cap.records))
    return ok


# --------------------------------------------------------------------------- test nodes

def register_nodes(handle: ComfyHandle, node_classes, display_names: Mapping[str, str] | None = None) -> list[str]:
    """Register test-only nodes in ``nodes.NODE_CLASS_MAPPINGS``.

    node_classes: a V1 mapping ``{name: class}`` (class with INPUT_TYPES/RETURN_TYPES/
    FUNCTION), a mapping ``{ignored_key: V3 class}``, or an iterable of V3
    ``comfy_api.latest.io.ComfyNode`` subclasses (registered under schema.node_id,
    like load_custom_node does).  Test nodes may override existing ids.  Returns the
    registered node ids.
    """
    from comfy_api.internal import _ComfyNodeInternal

    nodes = handle.nodes
    if isinstance(node_classes, Mapping):
        items = list(node_classes.items())
    else:
        items = [(None, c) for c in node_classes]
    registered = []
    for name, cls in items:
        if isinstance(cls, type) and issubclass(cls, _ComfyNodeInternal):
            schema = cls.GET_SCHEMA()
            node_id = schema.node_id
            if schema.display_name:
                nodes.NODE_DISPLAY_NAME_MAPPINGS[node_id] = schema.display_name
        else:
            if name is None:
                raise ComfyHarnessError(f"V1 node {cls!r} needs a name: pass a {{name: class}} mapping")
            node_id = name
        cls.RELATIVE_PYTHON_MODULE = TEST_NODE_MODULE
        nodes.NODE_CLASS_MAPPINGS[node_id] = cls
        if display_names and node_id in display_names:
            nodes.NODE_DISPLAY_NAME_MAPPINGS[node_id] = display_names[node_id]
        handle.test_node_ids.add(node_id)
        registered.append(node_id)
    return registered


def unregister_nodes(handle: ComfyHandle, node_ids: Iterable[str]) -> None:
    nodes = handle.nodes
    for node_id in node_ids:
        nodes.NODE_CLASS_MAPPINGS.pop(node_id, None)
        nodes.NODE_DISPLAY_NAME_MAPPINGS.pop(node_id, None)
        handle.test_node_ids.discard(node_id)


def random_conditioning(n_tokens: int, context_dim: int, pooled_dim: int | None, seed: int = 0,
                        guidance: float | None = None, batch: int = 1, scale: float = 1.0):
    """A CONDITIONING value: ``[[cond (batch, n_tokens, context_dim), {"pooled_output": (batch, pooled_dim)}]]``."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    cond = torch.randn(batch, n_tokens, context_dim, generator=g) * scale
    extra = {}
    if pooled_dim:
        extra["pooled_output"] = torch.randn(batch, pooled_dim, generator=g) * scale
    if guidance is not None:
        extra["guidance"] = float(guidance)
    return [[cond, extra]]


_TEST_NODES: dict[str, type] | None = None


def harness_test_nodes() -> dict[str, type]:
    """V3 test-only nodes (call after boot; register with register_nodes):

    HarnessRandomConditioning(seed, n_tokens, context_dim, pooled_dim, guidance) -> CONDITIONING
        pooled_dim 0 means no pooled_output; guidance < 0 means no "guidance" key.
    HarnessRaise(message, latent?) -> LATENT    raises RuntimeError(message) (error-path tests).
    """
    global _TEST_NODES
    if _TEST_NODES is not None:
        return dict(_TEST_NODES)
    from comfy_api.latest import io

    class HarnessRandomConditioning(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="HarnessRandomConditioning",
                display_name="Harness Random Conditioning",
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
            return io.NodeOutput(random_conditioning(n_tokens, context_dim, pooled_dim or None, seed,
                                                     None if guidance < 0 else guidance))

    class HarnessRaise(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="HarnessRaise",
                display_name="Harness Raise",
                category="testing/harness",
                inputs=[
                    io.String.Input("message", default="boom"),
                    io.Latent.Input("latent", optional=True),
                ],
                outputs=[io.Latent.Output()],
            )

        @classmethod
        def execute(cls, message, latent=None) -> io.NodeOutput:
            raise RuntimeError(message)

    _TEST_NODES = {c.__name__: c for c in (HarnessRandomConditioning, HarnessRaise)}
    return dict(_TEST_NODES)


# --------------------------------------------------------------------------- running prompts

def _run_async(factory: Callable[[], Any]):
    """Run the coroutine made by factory() to completion, from sync code.

    Uses asyncio.run in this thread, or a worker thread when this thread already runs
    an event loop (e.g. inside an async test)."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:  # (not inside the except block: node errors would chain to it)
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def worker():
        try:
            box["v"] = asyncio.run(factory())
        except BaseException as e:  # noqa: BLE001
            box["e"] = e

    th = threading.Thread(target=worker, name="comfy-harness")
    th.start()
    th.join()
    if "e" in box:
        raise box["e"]
    return box.get("v")


def _normalise_prompt(prompt: Mapping) -> dict:
    """Deep copy (the executor writes into the prompt), str node ids, str link ids."""
    out = {str(k): copy.deepcopy(v) for k, v in prompt.items()}
    for node in out.values():
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        for name, value in list(inputs.items()):
            if (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], int)
                    and not isinstance(value[0], bool) and isinstance(value[1], int) and str(value[0]) in out):
                inputs[name] = [str(value[0]), value[1]]
    return out


def _is_output_node(nodes, prompt, node_id) -> bool:
    cls = nodes.NODE_CLASS_MAPPINGS.get(prompt[node_id].get("class_type"))
    return cls is not None and getattr(cls, "OUTPUT_NODE", False) is True


async def _validate(handle: ComfyHandle, prompt: dict, prompt_id: str, targets: list[str] | None) -> list[str]:
    import execution

    nodes = handle.nodes
    valid, error, good_outputs, node_errors = await execution.validate_prompt(prompt_id, prompt, targets)
    if not valid and error.get("type") != "prompt_no_outputs":
        raise PromptValidationError(error, node_errors)
    # ComfyUI only validates from OUTPUT_NODEs; a test prompt may end in a non-output
    # node (KSampler, VAEDecode, ...): validate those targets with the same routine.
    wanted = targets if targets is not None else list(prompt)
    extra = [t for t in wanted if t in prompt and not _is_output_node(nodes, prompt, t)]
    if not valid and not extra:
        raise PromptValidationError(error, node_errors)
    validated: dict = {}
    failures = []
    node_errors = dict(node_errors or {})
    for o in extra:
        try:
            ok, reasons = (await execution.validate_inputs(prompt_id, prompt, o, validated))[:2]
        except Exception as ex:  # noqa: BLE001 - same as execution.validate_prompt
            ok, reasons = False, [{"type": "exception_during_validation", "message": "Exception when validating node",
                                   "details": str(ex), "extra_info": {"exception_type": execution.full_type_name(type(ex)),
                                                                      "traceback": traceback.format_tb(ex.__traceback__)}}]
            validated[o] = (False, reasons, o)
        if ok is True:
            good_outputs = list(good_outputs) + [o]
            continue
        failures.append((o, reasons))
        for node_id, res in validated.items():
            if res[0] is not True and len(res[1]) > 0:
                ne = node_errors.setdefault(node_id, {"errors": res[1], "dependent_outputs": [],
                                                      "class_type": prompt[node_id]["class_type"]})
                if o not in ne["dependent_outputs"]:
                    ne["dependent_outputs"].append(o)
    if failures:
        details = "\n".join(f"{r['message']}: {r['details']}" for _, rs in failures for r in rs)
        raise PromptValidationError({"type": "prompt_outputs_failed_validation",
                                     "message": "Prompt outputs failed validation",
                                     "details": details, "extra_info": {}}, node_errors)
    return list(good_outputs)


def validate_prompt(handle: ComfyHandle, prompt: Mapping, outputs: Iterable | None = None) -> list[str]:
    """Validate like POST /prompt does (``execution.validate_prompt``), raising
    PromptValidationError with ComfyUI's error + node_errors.  ``outputs`` (node ids)
    plays the role of the server's partial_execution_targets; target nodes that are
    not OUTPUT_NODEs (e.g. a lone KSampler) are validated with
    ``execution.validate_inputs``, so prompts without a Save/Preview node can be
    checked too.  Returns the node ids that validated (ComfyUI's good_outputs)."""
    prompt = _normalise_prompt(prompt)
    targets = None if outputs is None else [str(o) for o in outputs]
    if handle.server.node_replace_manager is not None:
        handle.server.node_replace_manager.apply_replacements(prompt)
    return _run_async(lambda: _validate(handle, prompt, uuid.uuid4().hex, targets))


def run_prompt(handle: ComfyHandle, prompt: Mapping, outputs: Iterable | None = None, *,
               validate: bool = True, clear_cache: bool = False,
               on_progress: Callable[[int, int, str | None], None] | None = None,
               extra_data: Mapping | None = None, raise_on_error: bool = True,
               preserve_rng_state: bool = True) -> PromptResult:
    """Run an API-format prompt through ComfyUI's PromptExecutor; return every node's outputs.

    outputs      node ids to execute (with their ancestors).  None: every node of the
                 prompt (ComfyUI itself would run only what feeds OUTPUT_NODEs).
    validate     validate first (validate_prompt); raises PromptValidationError.
    clear_cache  drop the executor cache first so every node re-executes (otherwise
                 nodes whose inputs did not change are served from the cache, as in
                 ComfyUI).
    on_progress  called as on_progress(value, total, node_id) from ComfyUI's progress
                 hook (e.g. once per sampler step), before the interrupt check; call
                 interrupt() from it to interrupt deterministically.
    extra_data   ComfyUI extra_data (e.g. {"extra_pnginfo": ...}); client_id defaults
                 to "harness" so per-node "executing"/"executed" events are recorded.
    raise_on_error  raise PromptExecutionError / PromptInterrupted (else return the
                 partial result with .error set).
    preserve_rng_state  restore torch's global RNG state afterwards: KSampler's
                 comfy.sample.prepare_noise calls torch.manual_seed(seed), which would
                 otherwise reseed the whole test process.
    """
    import execution  # noqa: F401

    prompt = _normalise_prompt(prompt)
    if handle.server.node_replace_manager is not None:
        handle.server.node_replace_manager.apply_replacements(prompt)
    prompt_id = uuid.uuid4().hex
    targets = list(prompt) if outputs is None else [str(o) for o in outputs]
    if validate:
        _run_async(lambda: _validate(handle, prompt, prompt_id, targets))
    if clear_cache:
        handle.executor.reset()

    srv = handle.server
    data = {"client_id": "harness"}
    data.update(extra_data or {})
    srv.messages = []
    srv.last_prompt_id = prompt_id
    handle.progress_callback = on_progress
    import torch

    rng = torch.get_rng_state() if preserve_rng_state else None
    t0 = time.perf_counter()
    try:
        _run_async(lambda: handle.executor.execute_async(prompt, prompt_id, data, targets))
    finally:
        handle.progress_callback = None
        if rng is not None:
            torch.set_rng_state(rng)
    seconds = time.perf_counter() - t0
    ex = handle.executor

    result = _collect(handle, prompt, prompt_id)
    result.seconds = seconds
    result.status_messages = list(ex.status_messages)
    result.messages = list(srv.messages)
    result.ui = dict(getattr(ex, "history_result", {}).get("outputs", {}))
    result.executed = [d["node"] for e, d, _ in srv.messages if e == "executing" and d.get("node") is not None]
    cached = [d for e, d in ex.status_messages if e == "execution_cached"]
    result.cached = list(cached[0]["nodes"]) if cached else []
    result.error = None
    for event, d in ex.status_messages:
        if event == "execution_error":
            result.error = d
            if raise_on_error:
                raise PromptExecutionError(d, result)
        elif event == "execution_interrupted":
            result.error = d
            if raise_on_error:
                raise PromptInterrupted(d, result)
    return result


def _collect(handle: ComfyHandle, prompt: dict, prompt_id: str) -> PromptResult:
    nodes = handle.nodes
    res = PromptResult()
    res.prompt_id = prompt_id
    res.raw = {}
    outputs_cache = handle.executor.caches.outputs
    for node_id, node in prompt.items():
        try:
            entry = outputs_cache.get_local(node_id)
        except Exception:  # noqa: BLE001 - cache without this prompt set
            entry = None
        if entry is None:
            continue
        res.raw[node_id] = entry.outputs
        cls = nodes.NODE_CLASS_MAPPINGS.get(node.get("class_type"))
        is_list = tuple(getattr(cls, "OUTPUT_IS_LIST", None) or ())
        values = []
        for i, slot in enumerate(entry.outputs):
            if i < len(is_list) and is_list[i]:
                values.append(list(slot))
            elif isinstance(slot, list) and len(slot) == 1:
                values.append(slot[0])
            else:
                values.append(slot)
        res[node_id] = tuple(values)
    return res


def clear_cache(handle: ComfyHandle) -> None:
    """Forget every cached node output and node instance (PromptExecutor.reset), so the
    next prompt re-executes everything.  Loaded models stay loaded (see free_memory)."""
    handle.executor.reset()


def free_memory(handle: ComfyHandle) -> None:
    """clear_cache + unload every model ComfyUI holds + gc (the /free endpoint)."""
    import gc

    import comfy.model_management

    handle.executor.reset()
    comfy.model_management.unload_all_models()
    gc.collect()
    comfy.model_management.soft_empty_cache()


def refresh_model_lists(handle: ComfyHandle | None = None) -> None:
    """Forget folder_paths' cached file lists (after writing model files)."""
    import folder_paths

    folder_paths.filename_list_cache.clear()


def interrupt(handle: ComfyHandle | None = None) -> None:
    """What the UI's Cancel button does (POST /interrupt -> nodes.interrupt_processing()).

    Sets comfy.model_management's global interrupt flag; the running node raises
    InterruptProcessingException at the next check (before each node, every
    comfy.ops layer forward, every progress-bar update), and run_prompt raises
    PromptInterrupted.  The executor clears the flag when a prompt starts, so call it
    while the prompt runs (from on_progress, another thread, or a node)."""
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(True)


# --------------------------------------------------------------------------- tiny FLUX.1 (demo/self-test)

def _write_minimal_flux1(path: Path | str, *, hidden_size: int = 128, context_dim: int = 32,
                         vec_dim: int = 16, depth: int = 1, depth_single: int = 1, guidance: bool = True,
                         seed: int = 0, std: float = 0.02) -> dict:
    """Write a random FLUX.1 diffusion model in BFL key format that ComfyUI's
    model_detection recognises as Flux (guidance=True: FLUX.1-dev, else schnell).

    Detection: ``double_blocks.0.img_attn.norm.key_norm.scale`` + ``img_in.weight``
    -> image_model "flux"; axes_dim is fixed at [16, 56, 56] so
    num_heads = hidden_size // 128: the smallest hidden size is 128 (1 head).
    in_channels = img_in.weight.shape[1] // 4 (16 latent channels, 2x2 patches),
    context_in_dim from txt_in, vec_in_dim from vector_in, guidance_embed from
    guidance_in.  Returns the config (context_dim, vec_dim, ...) for conditioning.
    """
    import torch
    from safetensors.torch import save_file

    if hidden_size % 128:
        raise ValueError("FLUX.1 detection fixes head dim at 128: hidden_size must be a multiple of 128")
    H, M, hd, pin = hidden_size, 4 * hidden_size, 128, 16 * 4
    shapes: dict[str, tuple] = {}

    def lin(name, o, i, bias=True):
        shapes[f"{name}.weight"] = (o, i)
        if bias:
            shapes[f"{name}.bias"] = (o,)

    def mlp_embedder(name, i):
        lin(f"{name}.in_layer", H, i)
        lin(f"{name}.out_layer", H, H)

    lin("img_in", H, pin)
    mlp_embedder("time_in", 256)
    mlp_embedder("vector_in", vec_dim)
    if guidance:
        mlp_embedder("guidance_in", 256)
    lin("txt_in", H, context_dim)
    for b in range(depth):
        for s in ("img", "txt"):
            p = f"double_blocks.{b}.{s}"
            lin(f"{p}_mod.lin", 6 * H, H)
            lin(f"{p}_attn.qkv", 3 * H, H)
            shapes[f"{p}_attn.norm.query_norm.scale"] = (hd,)
            shapes[f"{p}_attn.norm.key_norm.scale"] = (hd,)
            lin(f"{p}_attn.proj", H, H)
            lin(f"{p}_mlp.0", M, H)
            lin(f"{p}_mlp.2", H, M)
    for b in range(depth_single):
        p = f"single_blocks.{b}"
        lin(f"{p}.linear1", 3 * H + M, H)
        lin(f"{p}.linear2", H, H + M)
        shapes[f"{p}.norm.query_norm.scale"] = (hd,)
        shapes[f"{p}.norm.key_norm.scale"] = (hd,)
        lin(f"{p}.modulation.lin", 3 * H, H)
    lin("final_layer.linear", pin, H)
    lin("final_layer.adaLN_modulation.1", 2 * H, H)

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shp in shapes.items():
        if k.endswith(".scale"):
            sd[k] = torch.ones(shp)
        elif k.endswith(".bias"):
            sd[k] = torch.zeros(shp)
        else:
            sd[k] = torch.randn(shp, generator=g) * std
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return {"path": path, "hidden_size": H, "context_dim": context_dim, "vec_dim": vec_dim, "depth": depth,
            "depth_single": depth_single, "guidance": guidance, "latent_channels": 16, "n_params": sum(
                t.numel() for t in sd.values())}


def _flux_prompt(unet_name: str, *, width=64, height=64, steps=2, seed=0, n_tokens=8, context_dim=32,
                 vec_dim=16, sampler="euler", scheduler="simple", cfg=1.0, latent_node="EmptySD3LatentImage") -> dict:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet_name, "weight_dtype": "default"}},
        "2": {"class_type": "HarnessRandomConditioning",
              "inputs": {"seed": 1, "n_tokens": n_tokens, "context_dim": context_dim, "pooled_dim": vec_dim,
                         "guidance": 3.5}},
        "3": {"class_type": "HarnessRandomConditioning",
              "inputs": {"seed": 2, "n_tokens": n_tokens, "context_dim": context_dim, "pooled_dim": vec_dim,
                         "guidance": 3.5}},
        "4": {"class_type": latent_node, "inputs": {"width": width, "height": height, "batch_size": 1}},
        "5": {"class_type": "KSampler",
              "inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler,
                         "scheduler": scheduler, "positive": ["2", 0], "negative": ["3", 0],
                         "latent_image": ["4", 0], "denoise": 1.0}},
    }


def _demo(comfy_root: Path) -> int:  # pragma: no cover - manual run
    import tempfile

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tmp = Path(tempfile.mkdtemp(prefix="comfy_harness_demo_"))
    t0 = time.perf_counter()
    h = boot_comfyui(comfy_root, tmp / "models", tmp / "output", [])
    print(f"boot: {time.perf_counter() - t0:.2f}s  phases: "
          + ", ".join(f"{k}={v:.2f}s" for k, v in h.boot_seconds.items()))
    print(f"nodes registered: {len(h.node_class_mappings)} ({len(h.builtin_import_failed)} comfy_extras failed: "
          f"{h.builtin_import_failed})")
    print("idempotent boot:", boot_comfyui(comfy_root, tmp / "models", tmp / "output", []) is h)
    print("test nodes:", register_nodes(h, harness_test_nodes()))

    t = time.perf_counter()
    info = _write_minimal_flux1(h.models_dir / "diffusion_models" / "tiny_flux1.safetensors")
    print(f"wrote tiny FLUX.1 ({info['n_params']} params) in {time.perf_counter() - t:.2f}s")

    prompt = _flux_prompt("tiny_flux1.safetensors", context_dim=info["context_dim"], vec_dim=info["vec_dim"])
    import comfy.model_detection  # noqa: F401
    t = time.perf_counter()
    r = run_prompt(h, prompt)
    lat = r["5"][0]["samples"]
    print(f"run 1: {time.perf_counter() - t:.2f}s executed={r.executed} cached={r.cached}")
    print(f"  model: {type(r['1'][0].model).__name__} / {type(r['1'][0].model.model_config).__name__}")
    print(f"  KSampler LATENT samples {tuple(lat.shape)} {lat.dtype} finite={bool(lat.isfinite().all())}")
    assert tuple(lat.shape) == (1, 16, 8, 8), lat.shape

    t = time.perf_counter()
    r2 = run_prompt(h, prompt)
    print(f"run 2 (cached): {time.perf_counter() - t:.2f}s executed={r2.executed} cached={r2.cached} "
          f"same={bool((r2['5'][0]['samples'] == lat).all())}")
    t = time.perf_counter()
    r3 = run_prompt(h, prompt, clear_cache=True)
    print(f"run 3 (clear_cache): {time.perf_counter() - t:.2f}s executed={r3.executed} "
          f"deterministic={bool((r3['5'][0]['samples'] == lat).all())}")
    p4 = _flux_prompt("tiny_flux1.safetensors", context_dim=info["context_dim"], vec_dim=info["vec_dim"],
                      latent_node="EmptyLatentImage", steps=3)
    r4 = run_prompt(h, p4)
    print(f"run 4 (EmptyLatentImage 4ch -> fixed by KSampler): LATENT {tuple(r4['5'][0]['samples'].shape)} "
          f"executed={r4.executed}")

    # validation error
    bad = _flux_prompt("missing.safetensors")
    try:
        run_prompt(h, bad)
    except PromptValidationError as e:
        print("validation error ->", str(e).replace("\n", " | "))
    # execution error
    p_err = dict(prompt)
    p_err["6"] = {"class_type": "HarnessRaise", "inputs": {"message": "kaboom", "latent": ["5", 0]}}
    try:
        run_prompt(h, p_err)
    except PromptExecutionError as e:
        print("execution error ->", e, "| executed before:", e.executed)
    # interrupt during sampling, deterministically at the first step
    def stop(value, total, node_id):
        if value >= 1:
            interrupt()
    try:
        run_prompt(h, prompt, clear_cache=True, on_progress=stop)
    except PromptInterrupted as e:
        print("interrupted ->", e)
    r5 = run_prompt(h, prompt)
    print(f"after interrupt, next run ok: executed={r5.executed} LATENT {tuple(r5['5'][0]['samples'].shape)}")
    print(f"demo total {time.perf_counter() - t0:.2f}s; files in {tmp}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    root = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_PATH", "/work/comfy/ComfyUI"))
    sys.exit(_demo(root))
