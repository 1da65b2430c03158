"""Spectral Progressive Diffusion: when to switch resolution (the power-law schedule).

Model each frequency band of a clean latent as x0(w) ~ N(0, P(w)) with a radial power
law P(w) = A |w|^-beta. Frequencies are in cycles per image (for a square N x N latent,
the integer FFT index), so the Nyquist frequency of the full-resolution grid is
    w_max = min(H_lat, W_lat) / 2,
and a stage at scale s (grid s H x s W) represents exactly the bands |w| <= s w_max.
P is the variance of one orthonormal coefficient (white N(0, 1) noise has P = 1), the
same scale on which flow-matching noise has variance t^2 per coefficient.

Activation time of band w for a tolerance delta in (0, 1) (paper, Eq. 9):
    t_w = 1 / (1 + sqrt(delta / (P(w) (1 + P(w) - delta)))).
Identity (solve for the band's signal-to-noise ratio): at t = t_w,
    (1 - t)^2 P(w) / t^2 = delta / (1 + P(w) - delta),
so bands with larger power activate earlier (larger t). Expanding out of stage i
replaces the bands above s_i w_max by pure noise; the switch into stage i + 1 happens at
    t*_i = t_w  at  w = s_i w_max                  (paper, Eq. 10)
i.e. when the highest band the coarse stage cannot hold activates. Smaller delta: later
switch (fewer coarse steps), closer to the full-resolution result.

On a sampler's sigma schedule (flow matching: sigma = t) the official sampler switches at
the first step k with sigma_k <= t*, expands the state at t = sigma_k, overwrites sigma_k
by t~ = r t / (1 + (r - 1) t) and leaves the rest of the schedule alone (same number of
model calls); see plan_switches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from .spectral import time_remap

# Fitted (A, beta) of the official configuration (configs.yaml of the paper's code).
SPECTRUM_PRESETS = {
    "flux": {"A": 203.615097, "beta": 1.915461},   # FLUX.1 VAE latents (16 ch, /8)
    "wan21": {"A": 219.484718, "beta": 2.422687},  # Wan 2.1 VAE latents (16 ch, /8 spatial)
}


def power_spectrum(w, A: float, beta: float):
    """P(w) = A |w|^-beta (w > 0; float or tensor)."""
    return A * abs(w) ** (-beta)


def activation_time(P: float, delta: float) -> float:
    """t_w = 1 / (1 + sqrt(delta / (P (1 + P - delta)))) for band power P and tolerance delta."""
    validate_delta(delta)
    if not P > 0:
        raise ValueError(f"band power P must be > 0, got {P}")
    return 1.0 / (1.0 + math.sqrt(delta / (P * (1.0 + P - delta))))


def validate_delta(delta: float) -> float:
    delta = float(delta)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie strictly between 0 and 1 (0.01 switches late, 0.05 is the "
                         f"paper's recommended speed/quality trade-off); got {delta}")
    return delta


def validate_scales(scales: Sequence[float]) -> Tuple[float, ...]:
    """Scales: strictly increasing fractions of full resolution in (0, 1], ending at 1."""
    try:
        s = tuple(float(v) for v in scales)
    except (TypeError, ValueError):
        raise ValueError(f"scales must be numbers such as (0.5, 1) or (0.25, 0.5, 1); got {scales!r}") from None
    if not s:
        raise ValueError("scales is empty: give the stage sizes, e.g. (0.5, 1) or (0.25, 0.5, 1)")
    if any(not 0.0 < v <= 1.0 for v in s):
        raise ValueError(f"every scale must lie in (0, 1] (a fraction of full resolution); got {list(s)}")
    if any(b <= a for a, b in zip(s, s[1:])):
        raise ValueError(f"scales must be strictly increasing, coarsest first, e.g. (0.25, 0.5, 1); got {list(s)}")
    if abs(s[-1] - 1.0) > 1e-6:
        raise ValueError(f"the last scale must be 1 (the last stage runs at full resolution); got {list(s)}. "
                         f"Append 1, e.g. {list(s) + [1.0]}")
    return s[:-1] + (1.0,)


def stage_sizes(latent_hw: Tuple[int, int], scales: Sequence[float], multiple: int = 1
                ) -> List[Tuple[int, int]]:
    """Latent grid (h, w) of every stage: s H x s W, which must be whole numbers and,
    with `multiple` (e.g. the DiT patch size 2), divisible by it."""
    s = validate_scales(scales)
    H, W = int(latent_hw[0]), int(latent_hw[1])
    if H < 1 or W < 1:
        raise ValueError(f"latent size must be positive, got {(H, W)}")
    sizes = []
    for v in s:
        hf, wf = v * H, v * W
        h, w = round(hf), round(wf)
        if abs(hf - h) > 1e-6 or abs(wf - w) > 1e-6 or h % multiple or w % multiple:
            factor = 1.0 / s[0]
            need = f"{factor:g}" if multiple == 1 else f"{factor:g} x {multiple}"
            raise ValueError(
                f"latent {H}x{W} at scale {v:g} gives a {hf:g}x{wf:g} grid"
                + (f" (sides must be divisible by {multiple})" if multiple > 1 else "")
                + f": use a latent whose height and width are divisible by {need} (times the VAE factor, "
                  f"usually 8, in pixels), or a coarser set of scales")
        sizes.append((h, w))
    return sizes


def switch_times(scales: Sequence[float], delta: float, latent_hw: Tuple[int, int],
                 A: float, beta: float) -> List[float]:
    """t*_i = t_w at w = s_i min(H, W) / 2 for every switch out of stage i (len(scales) - 1 of them).

    latent_hw is the full-resolution latent grid, e.g. (128, 128) for FLUX at 1024^2."""
    s = validate_scales(scales)
    delta = validate_delta(delta)
    if not (A > 0 and beta >= 0):
        raise ValueError(f"power law needs A > 0 and beta >= 0, got A={A}, beta={beta}")
    w_max = min(int(latent_hw[0]), int(latent_hw[1])) / 2.0
    return [activation_time(power_spectrum(si * w_max, A, beta), delta) for si in s[:-1]]


def validate_switch_sigmas(sigmas: Sequence[float], scales: Sequence[float]) -> List[float]:
    """Manual switch sigmas: one per switch, each in (0, 1), strictly decreasing."""
    s = validate_scales(scales)
    try:
        v = [float(x) for x in sigmas]
    except (TypeError, ValueError):
        raise ValueError(f"switch sigmas must be numbers, got {sigmas!r}") from None
    if len(v) != len(s) - 1:
        raise ValueError(f"give one switch sigma per switch: scales {list(s)} have {len(s) - 1} switch(es), "
                         f"got {len(v)} sigma(s) {v}")
    if any(not 0.0 < x < 1.0 for x in v):
        raise ValueError(f"every switch sigma must lie in (0, 1); got {v}")
    if any(b >= a for a, b in zip(v, v[1:])):
        raise ValueError(f"switch sigmas must be strictly decreasing (the coarsest stage ends first), "
                         f"e.g. 0.95, 0.85; got {v}")
    return v


@dataclass(frozen=True)
class Switch:
    """One resolution switch on a sigma schedule."""
    step: int        # index of the first step run at the new scale (its sigma is overwritten)
    ratio: float     # r = s_{i+1} / s_i
    t: float         # sigma the coarse stage ends at and the state is expanded at
    t_tilde: float   # sigma the new stage starts from: r t / (1 + (r - 1) t)


@dataclass(frozen=True)
class SwitchPlan:
    switches: Tuple[Switch, ...]
    sigmas: torch.Tensor              # the schedule with each switch step's sigma overwritten by its t~
    stages: Tuple[torch.Tensor, ...]  # the sigmas each stage steps through, coarsest first


def plan_switches(sigmas, scales: Sequence[float], times: Sequence[float]) -> SwitchPlan:
    """Map switch times to steps exactly as the official ComfyUI sampler does.

    sigmas: the sampler's schedule (n_steps + 1 values, the last usually 0).
    times:  the switch time of each switch (switch_times, or validated manual sigmas).
    Step of switch i: the first k in [0, n_steps) with sigmas[k] <= times[i], searched on
    the schedule as given. Then, switch by switch: t = sigmas[k], t~ = time_remap(t, r),
    sigmas[k] = t~ (if two switches fall on the same step, the second expands from the
    first's t~, as the official loop does). Stage i steps through sigmas[start_i ..
    k_i] where start_i is the previous switch step (0 for the coarsest stage) and the
    last value is still t (the coarse stage ends at t, the next one starts at t~ from
    the same step); the last stage runs to the end of the patched schedule. A stage
    schedule of one value means no step in that stage. Same number of model calls as
    the schedule without switches. A switch that no step reaches makes the official
    sampler stop switching and return a low-resolution latent; here it is a ValueError.
    """
    s = validate_scales(scales)
    times = [float(v) for v in times]
    if len(times) != len(s) - 1:
        raise ValueError(f"need one switch time per switch ({len(s) - 1} for scales {list(s)}), got {len(times)}")
    sig = torch.as_tensor(sigmas).detach().clone()
    if sig.ndim != 1 or sig.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D schedule of at least 2 values, got shape {tuple(sig.shape)}")
    original = [float(v) for v in sig.tolist()]
    n_steps = len(original) - 1
    switches: List[Switch] = []
    stages: List[torch.Tensor] = []
    start = 0
    for i, thr in enumerate(times):
        k = next((j for j in range(n_steps) if original[j] <= thr), None)
        if k is None:
            raise ValueError(
                f"switch {i + 1} (to scale {s[i + 1]:g}) at sigma {thr:.4f} is never reached: every step starts "
                f"above it (the last from sigma {original[n_steps - 1]:.4f}). Use more steps, a larger delta "
                f"or a larger switch sigma, or fewer scales")
        stages.append(sig[start:k + 1].clone())  # ends at t: sig[k] is not yet overwritten
        r = s[i + 1] / s[i]
        t = float(sig[k])
        t_new = time_remap(t, r)
        sig[k] = t_new
        switches.append(Switch(step=k, ratio=r, t=t, t_tilde=t_new))
        start = k
    stages.append(sig[start:].clone())
    return SwitchPlan(tuple(switches), sig, tuple(stages))


# ---------------------------------------------------------------- fitting (A, beta)
def radial_power_spectrum(latents: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power spectrum of latents (..., H, W), e.g. (N, C, H, W).

    Every 2-D slice (per sample, channel and frame) has its spatial mean removed, then
    P(k) = |FFT2_ortho(x)(k)|^2 (white N(0, 1) noise: P = 1), averaged over slices and
    over the annulus round(|w|) = b for b = 1 .. floor(min(H, W) / 2) (inside Nyquist).
    Each annulus is placed at the geometric mean of its members' |w|, not at b: the
    inner annuli are coarse (b = 1 holds |w| = 1 and sqrt 2), and placing them at b
    would bias a power-law fit (beta by about -0.05, A by -10% on exact power laws).
    Frequencies in cycles per min(H, W) pixels: w = (fy, fx) min(H, W) with f in cycles
    per pixel; for a square latent that is the integer FFT index, the unit of w_max.
    Returns (w, P) as 1-D float tensors on the latents' device, empty bins dropped.
    (The official code ships only the fitted constants, no fitting code; the units here
    are the ones its schedule uses: w_max = min(H, W) / 2, P on the noise's scale.)
    """
    if latents.ndim < 2:
        raise ValueError(f"latents need at least two (spatial) axes, got shape {tuple(latents.shape)}")
    H, W = latents.shape[-2:]
    if min(H, W) < 4:
        raise ValueError(f"latents too small for a spectrum fit: {H}x{W} (need at least 4x4)")
    x = latents.to(torch.float32).reshape(-1, H, W)
    x = x - x.mean(dim=(-2, -1), keepdim=True)  # changes only the DC bin (excluded); keeps a large mean's
    #                                             fp32 roundoff out of the other bins
    power = (torch.fft.fft2(x, norm="ortho").abs() ** 2).mean(dim=0)  # (H, W)
    m = min(H, W)
    fy = torch.fft.fftfreq(H, device=x.device) * m
    fx = torch.fft.fftfreq(W, device=x.device) * m
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    bins = torch.round(radius).to(torch.int64).reshape(-1)
    nb = m // 2
    keep = (bins >= 1) & (bins <= nb)
    idx = bins[keep]
    ones = torch.ones_like(idx, dtype=torch.float32)
    counts = torch.zeros(nb + 1, device=x.device).index_add_(0, idx, ones)
    p_sum = torch.zeros(nb + 1, device=x.device).index_add_(0, idx, power.reshape(-1)[keep])
    logw_sum = torch.zeros(nb + 1, device=x.device).index_add_(0, idx, torch.log(radius.reshape(-1)[keep]))
    ok = counts > 0
    ok[0] = False
    return torch.exp(logw_sum[ok] / counts[ok]), p_sum[ok] / counts[ok]


def fit_power_law(latents: torch.Tensor, w_min: float = 1.0, w_max: Optional[float] = None
                  ) -> Tuple[float, float]:
    """Fit P(w) = A w^-beta to latents: least squares of log P = log A - beta log w over the
    radial bins of radial_power_spectrum with w_min <= w <= w_max (default: Nyquist).
    Fit on latents at the resolution the schedule is used for (the presets: FLUX at
    1024^2, a 128 x 128 latent; Wan 2.1 at 720p). Returns (A, beta)."""
    w, P = radial_power_spectrum(latents)
    sel = w >= w_min
    if w_max is not None:
        sel &= w <= w_max
    if int(sel.sum()) < 2:
        raise ValueError(f"need at least two frequency bins in [{w_min}, {w_max}] to fit, got {int(sel.sum())}")
    if bool((P[sel] <= 0).any()):
        raise ValueError("a frequency bin has zero power (constant latents?); cannot fit a power law")
    lw = torch.log(w[sel].double().cpu())
    lp = torch.log(P[sel].double().cpu())
    lw_c = lw - lw.mean()
    slope = float((lw_c * (lp - lp.mean())).sum() / (lw_c * lw_c).sum())
    intercept = float(lp.mean() - slope * lw.mean())
    return math.exp(intercept), -slope
