"""Correct gradients through blocks that update their inputs in place.

ComfyUI's FLUX / Chroma blocks update the residual streams in place
(`img += gate * proj(attn)`, then `img += gate * mlp(norm2(img))`), after a LayerNorm has
saved `img` for its backward. Plain autograd then fails ("modified by an inplace
operation"), and torch's non-reentrant checkpoint silently recomputes from the mutated
tensors and gives wrong gradients (tests/test_training_core.py shows both).

`block_forward(forward, checkpoint, trainable)` wraps a block's forward so that
  1. the block runs on copies of its (B, L, C) sequence inputs, so the caller's tensors
     (and a checkpoint's stored inputs) are never mutated;
  2. every tensor autograd saves that shares storage with those copies is snapshotted
     (cloned) when saved, so later in-place updates cannot change it;
  3. with checkpoint=True, it runs under torch's reentrant checkpoint (no activations kept;
     the backward recomputes the block under 1 and 2). Every tensor reachable in the
     arguments (tuples, lists, dicts, dataclasses such as FLUX.2's ModulationOut) is an
     explicit checkpoint input, so gradients reach them, and a dummy input that requires
     grad keeps the block in the graph when no input does (LoRA weights are leaves inside).
Pure PyTorch; nothing here knows ComfyUI.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.utils.checkpoint

_SKIP_KEYS = ("transformer_options",)  # passed through untouched (holds callables, caches)


def _flatten(obj, out: list):
    if isinstance(obj, torch.Tensor):
        out.append(obj)
        return ("t", len(out) - 1)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return ("d", type(obj), {f.name: _flatten(getattr(obj, f.name), out) for f in dataclasses.fields(obj)})
    if isinstance(obj, (list, tuple)):
        return ("s", type(obj), [_flatten(v, out) for v in obj])
    if isinstance(obj, dict):
        return ("m", type(obj), {k: _flatten(v, out) for k, v in obj.items()})
    return ("c", obj)


def _unflatten(spec, tensors):
    kind = spec[0]
    if kind == "t":
        return tensors[spec[1]]
    if kind == "d":
        return spec[1](**{k: _unflatten(v, tensors) for k, v in spec[2].items()})
    if kind == "s":
        vals = [_unflatten(v, tensors) for v in spec[2]]
        if hasattr(spec[1], "_fields"):  # namedtuple
            return spec[1](*vals)
        return spec[1](vals)
    if kind == "m":
        return spec[1]({k: _unflatten(v, tensors) for k, v in spec[2].items()})
    return spec[1]


def _is_stream(t) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.ndim == 3


def run_snapshotting(forward: Callable, args: tuple, kwargs: dict):
    """forward(*args, **kwargs) on copies of the top-level (B, L, C) inputs; saved tensors
    that share their storage are cloned as autograd saves them."""
    args = tuple(a.clone() if _is_stream(a) else a for a in args)
    kwargs = {k: (v.clone() if _is_stream(v) else v) for k, v in kwargs.items()}
    storages = {t.untyped_storage().data_ptr() for t in list(args) + list(kwargs.values()) if _is_stream(t)}

    def pack(t):
        if t.untyped_storage().data_ptr() in storages:
            return t.clone()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        return forward(*args, **kwargs)


def block_forward(forward: Callable, checkpoint: bool, trainable: Callable[[], bool] = lambda: True) -> Callable:
    """A replacement for a block's forward (see the module docstring). trainable(): whether
    the block holds parameters being trained (a checkpointed block whose output needs no
    gradient would make the reentrant checkpoint fail, so such a block just runs)."""
    if not checkpoint:
        def snapshot_forward(*args, **kwargs):
            if not torch.is_grad_enabled():
                return forward(*args, **kwargs)
            return run_snapshotting(forward, args, kwargs)
        return snapshot_forward

    def checkpointed_forward(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        passthrough = {k: kwargs[k] for k in _SKIP_KEYS if k in kwargs}
        rest = {k: v for k, v in kwargs.items() if k not in passthrough}
        tensors: list = []
        spec = _flatten((args, rest), tensors)
        if not (trainable() or any(t.requires_grad for t in tensors)):
            return forward(*args, **kwargs)

        def run(_dummy, *ts):
            a, kw = _unflatten(spec, ts)
            return run_snapshotting(forward, a, dict(kw, **passthrough))

        dummy = torch.empty(0, requires_grad=True)
        return torch.utils.checkpoint.checkpoint(run, dummy, *tensors, use_reentrant=True)

    return checkpointed_forward
