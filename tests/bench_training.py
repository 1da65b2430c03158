"""Benchmark: foveated vs full-resolution LoRA training (Train Foveated LoRA's step).

    COMFYUI_PATH=/path/to/ComfyUI python tests/bench_training.py [--size 1024] [--json out.json]

ComfyUI's real FLUX.2 class at FLUX.2 [klein] 4B width (hidden 3072, 24 heads, SwiGLU 9216,
512 text tokens of width 7680), random initialised, reduced depth (--depth / --single), the
paper's LoRA (rank 32 on its target layers), AdamW. Both runs are the trainer itself
(nodes/lora_training.train) on the same random latents: "foveated" draws the paper's random
circles (1/2 periphery), "full" keeps every token at full resolution (a fovea covering the
image: exactly the native forward). Reported per run: median seconds per step after the
first (warm-up) step, the mean token ratio of the foveae drawn, and the peak memory of the
steps (CUDA allocator peak, or on the CPU the growth of the process's peak resident set
over the steps; the model and the LoRA are loaded before it is measured). Attention is
PyTorch SDPA. VAE encoding is not part of a step (the trainer encodes once, up front).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PACK_ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench.measure import PeakMemory  # noqa: E402

KLEIN_4B = dict(hidden=3072, context_in_dim=7680, text_tokens=512)


def _trim():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def mib(n):
    return "n/a" if n != n else f"{n / 2**20:.0f} MiB"


def run_one(pack, mp, adapter_cls, size, mode, a, device):
    lt = pack.nodes.lora_training
    fc = pack.fov_core
    H = W = size // 16
    g = torch.Generator().manual_seed(0)
    sample = lt.Sample(torch.randn(1, 128, H, W, generator=g), {1: torch.randn(1, 128, H // 2, W // 2, generator=g)}, 0)
    cond = [[torch.randn(1, KLEIN_4B["text_tokens"], KLEIN_4B["context_in_dim"], generator=g) * 0.5, {}]]
    policy = fc.LevelPolicy.half()
    if mode == "foveated":
        foveae = fc.TrainingFoveae("random circles", policy)
    else:
        foveae = fc.TrainingFoveae("boxes", policy, ((fc.Box(0.0, 0.0, 1.0, 1.0),),))
    dataset = lt.Dataset([sample], cond, foveae)
    settings = lt.TrainSettings(steps=a.steps, batch_size=1, learning_rate=1e-4, rank=32, alpha=32.0, seed=0,
                                gradient_checkpointing=a.checkpointing, training_dtype=a.dtype, save_every=0)
    drawn = []
    orig = lt._Run.patch_for

    def spy(self, index):
        patch = orig(self, index)
        drawn.append(patch.layout_for(fc.TokenGrid(1, H, W)).token_ratio)
        return patch

    lt._Run.patch_for = spy
    marks, mem = [], {}

    def progress(done, total, loss):
        marks.append(time.perf_counter())
        if done == 1:
            _trim()  # freed heap back to the OS, so the CPU peak below counts the steps only
            mem["pm"] = PeakMemory(device).__enter__()
        if done == total:
            mem["pm"].__exit__(None, None, None)

    try:
        lt.train(mp, adapter_cls, dataset, settings, lt.resolve_save_path(f"bench/{mode}"), None, 0, {}, progress)
    finally:
        lt._Run.patch_for = orig
    per_step = [b - a_ for a_, b in zip(marks, marks[1:])]
    return {"mode": mode, "size": size, "s_per_step": statistics.median(per_step), "steps_timed": len(per_step),
            "token_ratio": statistics.mean(drawn), "peak_bytes": mem["pm"].peak}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI checkout (or COMFYUI_PATH)")
    ap.add_argument("--size", type=int, default=None, help="image side in px (default 1024 on a GPU, 512 on the CPU)")
    ap.add_argument("--hidden", type=int, default=KLEIN_4B["hidden"], help="width (klein 4B: 3072)")
    ap.add_argument("--depth", type=int, default=1, help="double blocks (klein 4B has 5)")
    ap.add_argument("--single", type=int, default=1, help="single blocks (klein 4B has 20)")
    ap.add_argument("--steps", type=int, default=4, help="training steps per run; the first is a warm-up")
    ap.add_argument("--dtype", default=None, choices=["bf16", "fp32"], help="default bf16 on a GPU, fp32 on the CPU")
    ap.add_argument("--no-checkpointing", dest="checkpointing", action="store_false",
                    help="keep activations instead of recomputing each block")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "foveated-bench"))
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args(argv)
    if not a.comfyui:
        ap.error("set COMFYUI_PATH or --comfyui to a ComfyUI checkout")
    cuda = torch.cuda.is_available()
    a.size = a.size or (1024 if cuda else 512)
    a.dtype = a.dtype or ("bf16" if cuda else "fp32")
    from comfy_fixtures import harness, tiny_models

    workdir = Path(a.workdir)
    models = workdir / "models"
    harness.boot_comfyui(a.comfyui, models, workdir / "output", [PACK_ROOT], cpu=not cuda, attention="pytorch")
    dit = models / "diffusion_models" / f"bench_flux2_h{a.hidden}_d{a.depth}_s{a.single}.safetensors"
    if not dit.exists():
        print(f"writing {dit.name} (random init) ...", flush=True)
        tiny_models.write_flux2_dit(dit, hidden=a.hidden, context_in_dim=KLEIN_4B["context_in_dim"],
                                    depth=a.depth, depth_single=a.single)
    pack = sys.modules[str(PACK_ROOT).replace(".", "_x_")]
    from comfy import model_management, sd

    device = model_management.get_torch_device()
    mp = sd.load_diffusion_model(str(dit))
    adapter_cls = pack.nodes.adapters.adapter_for(mp)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               + (torch.cuda.get_device_name(0) if cuda else "CPU"))
    print(f"FLUX.2 [klein] 4B width {a.hidden}, {a.depth} double + {a.single} single blocks, {a.size}x{a.size} "
          f"({(a.size // 16) ** 2} image + {KLEIN_4B['text_tokens']} text tokens), LoRA rank 32 on the paper's "
          f"targets, {a.dtype}, gradient checkpointing {'on' if a.checkpointing else 'off'}, {machine}", flush=True)
    rows = []
    with torch.inference_mode():  # as ComfyUI runs nodes
        for mode in ("full", "foveated"):
            rows.append(run_one(pack, mp, adapter_cls, a.size, mode, a, device))
            r = rows[-1]
            print(f"{mode:9s} tokens {r['token_ratio'] * 100:5.1f}%  {r['s_per_step']:8.2f} s/step  "
                  f"peak {mib(r['peak_bytes'])}", flush=True)
    full, fov = rows
    print(f"speedup {full['s_per_step'] / fov['s_per_step']:.2f}x per step, peak memory "
          f"{mib(fov['peak_bytes'])} vs {mib(full['peak_bytes'])}")
    info = {"machine": machine, "config": vars(a), "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(info, indent=2, default=str))
    return info


if __name__ == "__main__":
    main()
