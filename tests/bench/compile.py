"""Part of tests/benchmark.py (--compile): foveation under torch.compile, compiled as core
TorchCompileModel compiles (the node's own execute; --compile-backend, inductor by default).

At the first of --sizes with a centered fovea at the first of --ratios, each sampling run
is --steps euler steps (cfg 1) in one process:
  compile cost (wall time of the first compiled run minus a warm eager run of the same
  fovea; inductor's on-disk cache starts empty, as on a first launch) and the graphs dynamo compiled, with its graph breaks, for: the first native
  compiled run; the first foveated compiled run (after the native one, in the same
  process, as users run them); the gaze moved within its padding bucket (no compile is
  the goal); a fovea in another bucket (one compile);
  ms per step, warm (median of --repeats runs after the first): native and foveated, eager
  and compiled.
"""
from __future__ import annotations

import os
import tempfile
import time

import torch

from .measure import sync, timed


def _moved_within_bucket(fc, foveation, grid, radius):
    """A gaze moved away from the center whose packed length differs but pads to the same
    bucket (what moving the gaze on the canvas does), and a larger fovea in another bucket."""
    def rows(f):
        return foveation.strip_rows(fc.TokenLayout(fc.rasterize(f, grid)), True)

    def n_tokens(f):
        return fc.TokenLayout(fc.rasterize(f, grid)).n_tokens

    center = fc.Fovea((fc.Gaze(0.5, 0.5, radius),))
    moved = next((f for dx in (0.02, 0.04, 0.06, 0.08, 0.1, 0.15)
                  for f in [fc.Fovea((fc.Gaze(0.5 + dx, 0.5 - dx / 2, radius),))]
                  if rows(f) == rows(center) and n_tokens(f) != n_tokens(center)), None)
    other = next(f for s in (1.3, 1.6, 2.0, 2.5) for f in [fc.Fovea((fc.Gaze(0.5, 0.5, radius * s),))]
                 if rows(f) != rows(center))
    return center, moved, other


def bench_compile(ctx, size, radius):
    import comfy.sample
    import torch._dynamo as dynamo
    from comfy_extras.nodes_torch_compile import TorchCompileModel
    from torch._dynamo.utils import counters

    a, fc, fam, device, mp, pack = (ctx["args"], ctx["fc"], ctx["family"], ctx["device"], ctx["mp"],
                                    ctx["pack"])
    foveation = pack.nodes.foveation
    g = torch.Generator().manual_seed(3)
    cond = [[(torch.randn(1, fam.text_tokens, fam.context_dim, generator=g) * 0.5), {}]]
    latent = torch.zeros(fam.latent_shape(*size))
    noise = torch.randn(latent.shape, generator=g)
    grid = fam.grid(fc, latent.shape)
    center, moved, other = _moved_within_bucket(fc, foveation, grid, radius)
    print(f"\ntorch.compile ({a.compile_backend}, core TorchCompileModel), {'x'.join(map(str, size))}, "
          f"{a.steps} euler steps a run")

    def apply(model, fovea):
        return pack.nodes.apply_node.ApplyFoveation.execute(model, fovea).result[0]

    def run(model):
        with torch.inference_mode():
            out = comfy.sample.sample(model, noise, a.steps, 1.0, "euler", "simple", cond, cond, latent, seed=0)
        sync(device)
        return out

    def once(model):
        t = time.perf_counter()
        run(model)
        return time.perf_counter() - t

    def ms_per_step(model):
        return timed(lambda: run(model), device, a.repeats) / a.steps * 1e3

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="foveated-bench-inductor-")  # cold compiles
    dynamo.reset()
    counters.clear()
    compiled = TorchCompileModel.execute(mp, a.compile_backend).result[0]
    eager = {None: ms_per_step(mp)}
    for f in (center, moved, other):
        if f is not None:
            eager[f] = ms_per_step(apply(mp, f))
    rows, seen = [], {"graphs": 0, "breaks": 0}

    def first(what, model, fovea):
        eager_ms = eager[fovea]
        t = once(model)
        graphs = counters["stats"]["unique_graphs"]
        breaks = sum(counters["graph_break"].values())
        ratio = 1.0 if fovea is None else fc.TokenLayout(fc.rasterize(fovea, grid)).token_ratio
        row = {"run": what, "ratio": ratio, "first_run_s": t, "compile_s": max(0.0, t - eager_ms * a.steps / 1e3),
               "new_graphs": graphs - seen["graphs"], "graph_breaks": breaks - seen["breaks"]}
        seen.update(graphs=graphs, breaks=breaks)
        rows.append(row)
        print(f"{what:34s} tokens {ratio:6.1%}  first run {t:7.2f} s  compile ~{row['compile_s']:7.2f} s  "
              f"new graphs {row['new_graphs']}  graph breaks {row['graph_breaks']}", flush=True)

    first("native, first compiled run", compiled, None)
    first("foveated, first compiled run", apply(compiled, center), center)
    if moved is not None:
        first("gaze moved within its bucket", apply(compiled, moved), moved)
    first("fovea in another bucket", apply(compiled, other), other)
    steps = {"native_eager_ms": eager[None], "native_compiled_ms": ms_per_step(compiled),
             "foveated_eager_ms": eager[center], "foveated_compiled_ms": ms_per_step(apply(compiled, center))}
    print("ms per step, warm: " + ", ".join(f"{k[:-3].replace('_', ' ')} {v:.1f}" for k, v in steps.items()))
    dynamo.reset()
    return {"size": size, "backend": a.compile_backend, "first_runs": rows, "ms_per_step": steps}
