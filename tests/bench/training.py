"""Part of tests/benchmark.py (--training): foveated vs full-resolution LoRA training, the
step of Train Foveated LoRA.

Both runs are the trainer itself (nodes/lora_training.train) with the paper's LoRA (rank 32
on its target layers, AdamW) on the same random latents: "foveated" draws the paper's
random circles (1/2 periphery; a random gaze path per clip for Wan), "full" keeps every
token at full resolution (a fixed fovea covering the image: exactly the native forward). Reported per run: median seconds per step
after the first (warm-up) step, the mean token ratio of the foveae drawn, and the peak
memory of the steps (CUDA allocator peak, or on the CPU the growth of the process's peak
resident set over the steps; the model and the LoRA are loaded before it is measured).
VAE encoding is not part of a step (the trainer encodes once, up front).
"""
from __future__ import annotations

import statistics
import time

import torch

from .measure import PeakMemory, fmt_bytes

RANK = 32  # the paper's LoRA rank (and alpha)


def _trim():
    """Give freed heap back to the OS, so the CPU peak counts the training steps only."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _run(ctx, size, mode):
    a, fam, pack, fc = ctx["args"], ctx["family"], ctx["pack"], ctx["fc"]
    lt = pack.nodes.lora_training
    shape = fam.latent_shape(*size)
    grid = fam.grid(fc, shape)
    H, W = shape[-2:]
    g = torch.Generator().manual_seed(0)
    low_shape = shape[:-2] + (H // 2, W // 2)
    sample = lt.Sample(torch.randn(shape, generator=g), {1: torch.randn(low_shape, generator=g)}, 0)
    cond = [[torch.randn(1, fam.text_tokens, fam.context_dim, generator=g) * 0.5, {}]]
    policy = fc.LevelPolicy.half()
    frames = (grid.video_frames,) if len(shape) == 5 else ()
    if mode == "foveated":
        foveae = fc.TrainingFoveae("random gaze paths" if frames else "random circles", policy, frames=frames)
    else:
        foveae = fc.TrainingFoveae("saliency", policy, ((fc.Box(0.0, 0.0, 1.0, 1.0),),), frames=frames)
    dataset = lt.Dataset([sample], cond, foveae)
    dtype = "fp32" if ctx["dtype"] == torch.float32 else "bf16"
    settings = lt.TrainSettings(steps=a.train_steps, batch_size=1, learning_rate=1e-4, rank=RANK, alpha=float(RANK),
                                seed=0, gradient_checkpointing=a.checkpointing, training_dtype=dtype, save_every=0)
    drawn = []
    orig = lt._Run.patch_for

    def spy(self, index):
        patch = orig(self, index)
        drawn.append(patch.layout_for(grid).token_ratio)
        return patch

    marks, mem = [], {}

    def progress(done, total, loss):
        marks.append(time.perf_counter())
        if done == 1:
            _trim()
            mem["pm"] = PeakMemory(ctx["device"]).__enter__()
        if done == total:
            mem["pm"].__exit__(None, None, None)

    lt._Run.patch_for = spy
    try:
        lt.train(ctx["mp"], ctx["adapter_cls"], dataset, settings, lt.resolve_save_path(f"bench/{mode}"), None, 0,
                 {}, progress)
    finally:
        lt._Run.patch_for = orig
    per_step = [b - a_ for a_, b in zip(marks, marks[1:])]
    return {"mode": mode, "size": size, "s_per_step": statistics.median(per_step), "steps_timed": len(per_step),
            "token_ratio": statistics.mean(drawn), "peak_bytes": mem["pm"].peak}


def bench_training(ctx, size):
    """Seconds per training step and peak memory, full-resolution then foveated, at size
    (width, height, frames)."""
    a = ctx["args"]
    if a.train_steps < 2:
        raise ValueError("--train-steps must be at least 2 (the first step is a warm-up)")
    print(f"\nTraining (Train Foveated LoRA's step), {'x'.join(map(str, size))}: LoRA rank {RANK} on the paper's "
          f"targets, "
          f"AdamW, gradient checkpointing {'on' if a.checkpointing else 'off'}, median of {a.train_steps - 1} "
          f"steps after a warm-up step")
    rows = []
    with torch.inference_mode():  # as ComfyUI runs nodes; the trainer leaves it for its steps
        for mode in ("full", "foveated"):
            r = _run(ctx, size, mode)
            rows.append(r)
            print(f"{mode:9s} tokens {r['token_ratio'] * 100:5.1f}%  {r['s_per_step']:8.2f} s/step  "
                  f"peak {fmt_bytes(r['peak_bytes'])}", flush=True)
    full, fov = rows
    print(f"speedup {full['s_per_step'] / fov['s_per_step']:.2f}x per step, peak memory "
          f"{fmt_bytes(fov['peak_bytes'])} vs {fmt_bytes(full['peak_bytes'])}")
    return rows
