"""Measuring tools of the benchmark: warm medians, peak memory, operations (kernels) per
forward, host time per forward."""
from __future__ import annotations

import math
import statistics
import time

import torch

# top-level operators that launch no kernel (views, metadata, allocation): excluded from
# the CPU proxy of the GPU kernel count
NO_KERNEL_OPS = frozenset(
    f"aten::{n}" for n in (
        "view", "reshape", "slice", "narrow", "expand", "permute", "transpose", "as_strided", "unsqueeze",
        "squeeze", "select", "t", "detach", "alias", "chunk", "split", "unflatten", "flatten", "unbind",
        "contiguous", "empty", "empty_like", "to", "lift_fresh", "_unsafe_view", "movedim", "empty_strided",
    )
)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def host_time(fn, device, repeats: int) -> float:
    """Median time the host spends issuing one call (on the GPU the kernels run behind it;
    the queue is drained between calls). On the CPU this is the wall time."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    sync(device)
    return statistics.median(times)


def op_count(fn, device) -> dict:
    """Operations of one call, from torch.profiler: on CUDA the kernels launched; on the
    CPU the top-level operators, all and those that launch work (the GPU-kernel proxy)."""
    fn()
    acts = [torch.profiler.ProfilerActivity.CPU]
    cuda = torch.device(device).type == "cuda"
    if cuda:
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        fn()
        sync(device)
    events = prof.events()
    top = [e for e in events if e.cpu_parent is None and "::" in e.name]
    out = {"ops": len(top), "work_ops": sum(e.name not in NO_KERNEL_OPS for e in top)}
    if cuda:
        out["kernels"] = sum(e.device_type == torch.autograd.DeviceType.CUDA for e in events)
    return out


def kernels_of(counts: dict) -> int:
    """The figure compared across runs: CUDA kernels, else the CPU proxy."""
    return counts.get("kernels", counts["work_ops"])


class PeakMemory:
    """Peak memory of a block of work: CUDA allocator peak, or on CPU the process's peak
    resident set (VmHWM) after resetting it through /proc/self/clear_refs."""

    def __init__(self, device):
        self.device = torch.device(device)

    @staticmethod
    def _status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.ok = True
            except OSError:
                self.ok = False
            self.base = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            hwm = self._status("VmHWM")
            self.peak = (hwm - self.base) if (self.ok and hwm and self.base) else float("nan")


def fmt_bytes(n):
    return "n/a" if not isinstance(n, (int, float)) or math.isnan(n) else f"{n / 2**30:.2f} GiB"
