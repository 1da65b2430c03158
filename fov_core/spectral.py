"""Spectral Progressive Diffusion (SPD): orthonormal transforms and spectral noise expansion.

SPD runs the early, noise-dominated steps of a flow-matching sampler at low resolution
and grows the latent at a switch time t ("spectral noise expansion"). Flow matching:
    x_t = (1 - t) x0 + t eps,   eps ~ N(0, I),   t = sigma in ComfyUI (1 = pure noise).

Expansion from a (h, w) grid to (H, W) = (r h, r w), r the linear ratio of the stages:
    1. xi = T(x_t)                        orthonormal transform of the low-res state
    2. Xi = t * n  (n ~ N(0, 1), size (H, W)), then Xi[:h, :w] = xi   (low-frequency block)
    3. x~ = kappa * T^-1(Xi),   kappa = r / (1 + (r - 1) t)
    4. continue sampling at t~ = kappa t = r t / (1 + (r - 1) t)
Why (in the transform domain, coefficient by coefficient): a natural-amplitude low-res
latent x0_lo of an image has coefficients 1/r of the matching coefficients X of the
full-res latent (orthonormal transforms: a constant c has DC coefficient c sqrt(h w),
and sqrt(H W) / sqrt(h w) = r). White noise keeps std t per coefficient under any
orthonormal transform. So after steps 1-3, in the block
    kappa ((1 - t) X / r + t e) = (1 - t~) X + t~ e,   since kappa (1 - t) / r
                                  = (1 - t) / (1 + (r - 1) t) = 1 - t~,
i.e. a flow-matching state at t~ on the line from X to the noise; outside the block the
coefficient is t~ e: the true state would add (1 - t~) X there, a band the power-law
schedule (fov_core.schedule) only enters once it is noise-dominated.

Transforms, all over the last two axes, so images (B, C, H, W) and video (B, C, T, H, W)
alike: only H and W change, never the frame axis.
  "dct": orthonormal 2-D DCT-II (a matrix product, exact in fp32); the low-frequency
         block is the top-left one, any integer ratio.
  "dwt": one level of the orthonormal Haar DWT, ratio 2 only. The coefficient image is
         [[LL, HL], [LH, HH]]: LL = (a + b + c + d) / 2, LH = (a + b - c - d) / 2
         (detail along H), HL = (a - b + c - d) / 2 (detail along W),
         HH = (a - b - c + d) / 2, with [[a, b], [c, d]] each 2 x 2 pixel block. These
         are PyWavelets' dwt2(..., "haar", "periodization") cA, cH, cV, cD. For the
         DWT the low-res latent itself is the LL band (a one-level DWT's LL band is the
         image at half resolution, times 2 = r), so step 1 is the identity there.
Computation runs in fp32 (fp64 for fp64 input) on the latent's device; the result comes
back in the latent's dtype.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import torch

Time = Union[float, torch.Tensor]
TRANSFORMS = ("dct", "dwt")


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check_spatial(x: torch.Tensor, what: str = "latent") -> None:
    if x.ndim < 2:
        raise ValueError(f"{what} needs at least two (spatial) axes, got shape {tuple(x.shape)}")


# ---------------------------------------------------------------- DCT-II
@lru_cache(maxsize=64)
def _dct_matrix_cached(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.int64)[:, None]
    i = torch.arange(n, dtype=torch.int64)[None, :]
    # angle pi (2i + 1) k / (2n), reduced exactly modulo 2 pi = 4n in these units
    m = ((2 * i + 1) * k) % (4 * n)
    d = torch.cos(m.to(torch.float64) * (math.pi / (2 * n))) * math.sqrt(2.0 / n)
    d[0] = math.sqrt(1.0 / n)
    return d.to(device=device, dtype=dtype)


def dct_matrix(n: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n x n): D[k, i] = c_k cos(pi (2 i + 1) k / (2 n)),
    c_0 = sqrt(1 / n), c_k = sqrt(2 / n). D D^T = I, so the inverse (DCT-III) is D^T.
    Built once in fp64 per (n, device, dtype) and cached; it is a constant, the latent
    never leaves its device."""
    if n < 1:
        raise ValueError(f"DCT size must be >= 1, got {n}")
    return _dct_matrix_cached(int(n), torch.device(device or "cpu"), dtype)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes: X = D_H x D_W^T (scipy's
    dctn(x, type=2, norm="ortho") on each slice)."""
    _check_spatial(x)
    dt = _work_dtype(x)
    xf = x.to(dt)
    dh = dct_matrix(x.shape[-2], x.device, dt)
    dw = dct_matrix(x.shape[-1], x.device, dt)
    return dh @ xf @ dw.T


def idct2(X: torch.Tensor) -> torch.Tensor:
    """Inverse of dct2: x = D_H^T X D_W."""
    _check_spatial(X, "coefficients")
    dt = _work_dtype(X)
    Xf = X.to(dt)
    dh = dct_matrix(X.shape[-2], X.device, dt)
    dw = dct_matrix(X.shape[-1], X.device, dt)
    return dh.T @ Xf @ dw


def dct_downscale(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """DCT truncation to size (h, w): keep the top-left h x w orthonormal DCT-II block
    and invert it at (h, w), with no amplitude factor, so white N(0, 1) noise stays
    white N(0, 1). This is how the official ComfyUI sampler turns its full-resolution
    input into the coarse initial state (see compatible-noise notes in
    compatible_expansion_noise)."""
    h, w = int(size[0]), int(size[1])
    H, W = x.shape[-2], x.shape[-1]
    if not (1 <= h <= H and 1 <= w <= W):
        raise ValueError(f"DCT downscale: target size {(h, w)} must lie within the source size {(H, W)}")
    return idct2(dct2(x)[..., :h, :w]).to(x.dtype)


# ---------------------------------------------------------------- Haar DWT (one level)
def haar_dwt2(x: torch.Tensor) -> torch.Tensor:
    """One-level orthonormal Haar DWT over the last two axes, as the coefficient image
    [[LL, HL], [LH, HH]] of the same size (see module docstring). H and W must be even."""
    _check_spatial(x)
    H, W = x.shape[-2], x.shape[-1]
    if H % 2 or W % 2:
        raise ValueError(f"Haar DWT needs even height and width, got {(H, W)}")
    xf = x.to(_work_dtype(x))
    a, b = xf[..., 0::2, 0::2], xf[..., 0::2, 1::2]
    c, d = xf[..., 1::2, 0::2], xf[..., 1::2, 1::2]
    ll, lh = (a + b + c + d) / 2, (a + b - c - d) / 2
    hl, hh = (a - b + c - d) / 2, (a - b - c + d) / 2
    top = torch.cat([ll, hl], dim=-1)
    bottom = torch.cat([lh, hh], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def haar_idwt2(X: torch.Tensor) -> torch.Tensor:
    """Inverse of haar_dwt2 (the matrix is symmetric-orthogonal per 2 x 2 block:
    a = (LL + LH + HL + HH) / 2, b = (LL + LH - HL - HH) / 2, c = (LL - LH + HL - HH) / 2,
    d = (LL - LH - HL + HH) / 2)."""
    _check_spatial(X, "coefficients")
    H, W = X.shape[-2], X.shape[-1]
    if H % 2 or W % 2:
        raise ValueError(f"Haar inverse DWT needs even height and width, got {(H, W)}")
    Xf = X.to(_work_dtype(X))
    h, w = H // 2, W // 2
    ll, hl = Xf[..., :h, :w], Xf[..., :h, w:]
    lh, hh = Xf[..., h:, :w], Xf[..., h:, w:]
    out = Xf.new_empty(Xf.shape)
    out[..., 0::2, 0::2] = (ll + lh + hl + hh) / 2
    out[..., 0::2, 1::2] = (ll + lh - hl - hh) / 2
    out[..., 1::2, 0::2] = (ll - lh + hl - hh) / 2
    out[..., 1::2, 1::2] = (ll - lh - hl + hh) / 2
    return out


# ---------------------------------------------------------------- time remap
def kappa(t: Time, r: float) -> Time:
    """State rescale after an expansion by linear ratio r at time t: r / (1 + (r - 1) t)."""
    return r / (1.0 + (r - 1.0) * t)


def time_remap(t: Time, r: float) -> Time:
    """Aligned time after the expansion: t~ = kappa t = r t / (1 + (r - 1) t) (the SD3
    timestep shift with shift = r). r = 2: t~ = 2 t / (1 + t), e.g. 0.85 -> 0.919."""
    return r * t / (1.0 + (r - 1.0) * t)


# ---------------------------------------------------------------- expansion
def _expansion_ratio(src: Sequence[int], dst: Sequence[int]) -> float:
    (h, w), (H, W) = src, dst
    if H * w != W * h or H <= h:
        raise ValueError(
            f"spectral expansion grows height and width by the same ratio > 1; got {(h, w)} -> {(H, W)}. "
            f"Use a latent whose height and width are divisible by the stage factor")
    return H / h


def spectral_expand(x: torch.Tensor, noise: torch.Tensor, t: float, transform: str = "dct"
                    ) -> Tuple[torch.Tensor, float]:
    """Spectral noise expansion of a flow-matching state x at time t (see module docstring).

    x:     (..., h, w) low-res state (images (B, C, h, w), video (B, C, T, h, w)).
    noise: (..., H, W) standard normal coefficients for the target grid, same leading
           axes as x (from expansion_noise or compatible_expansion_noise). Only the part
           outside the low-frequency block is used: for "dct" everything but the top-left
           h x w block, for "dwt" the LH, HL and HH bands of the coefficient image.
    t:     the switch time (the sigma of the step where the switch happens).
    Returns (x~, t~): x~ = kappa T^-1(Xi) in x's dtype, and t~ = r t / (1 + (r - 1) t),
    with r = H / h = W / w (any ratio > 1 for "dct", e.g. 1.5 for scales 2/3 -> 1; 2 for "dwt").
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    _check_spatial(x)
    if noise.shape[:-2] != x.shape[:-2]:
        raise ValueError(f"noise leading axes {tuple(noise.shape[:-2])} must match the latent's {tuple(x.shape[:-2])}")
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"switch time t must lie in [0, 1], got {t}")
    h, w = x.shape[-2:]
    r = _expansion_ratio((h, w), noise.shape[-2:])
    if transform == "dwt" and r != 2:
        raise ValueError(f"the Haar DWT expansion doubles the grid (ratio 2); got ratio {r}. Use transform='dct'")
    dt = _work_dtype(x)
    coeffs = t * noise.to(device=x.device, dtype=dt)   # every coefficient: t * N(0, 1)
    if transform == "dct":
        coeffs[..., :h, :w] = dct2(x)                   # low-frequency block = the state's DCT
        out = idct2(coeffs)
    else:
        coeffs[..., :h, :w] = x.to(dt)                  # LL band = the low-res state itself
        out = haar_idwt2(coeffs)
    return (out * kappa(t, r)).to(x.dtype), time_remap(t, r)


def expansion_noise(x: torch.Tensor, size: Tuple[int, int], generator: Optional[torch.Generator] = None
                    ) -> torch.Tensor:
    """Fast expansion noise: N(0, 1) of shape (*x.shape[:-2], H, W) drawn on x's device
    (a generator, if given, must live on that device)."""
    shape = tuple(x.shape[:-2]) + (int(size[0]), int(size[1]))
    return torch.randn(shape, generator=generator, device=x.device, dtype=_work_dtype(x))


def compatible_seed(seed: int, stage: int) -> int:
    """Seed of the official ComfyUI sampler for the expansion into stage `stage`
    (stage 1 = the first switch, out of the coarsest stage 0): seed + 10000 * stage."""
    if stage < 1:
        raise ValueError(f"stage counts the stage being entered, starting at 1; got {stage}")
    return int(seed) + 10000 * int(stage)


def compatible_expansion_noise(shape: Sequence[int], size: Tuple[int, int], seed: int, stage: int,
                               transform: str = "dct", device=None) -> torch.Tensor:
    """The expansion noise of the official ComfyUI sampler (SamplerSPEED), drawn the same way.

    shape: the low-res latent's shape, (B, C, h, w) or (B, C, T, h, w); size: (H, W).
    One numpy Generator, numpy.random.default_rng(seed + 10000 * stage), per expansion
    (not per slice), drawing float64 standard normals slice after slice and casting each
    to float32. Slice order: images (b, c); video (b, t, c) - the official code flattens
    (B, C, T, h, w) to (B*T, C, h, w) first, so the frame index varies slower than the
    channel. Per slice:
      "dct": one (H, W) draw, the whole coefficient array (its top-left block is
             overwritten by the state's coefficients);
      "dwt": three (h, w) draws in the order LH, HL, HH (PyWavelets' cH, cV, cD), placed
             into the coefficient image; the LL block is left 0 (it is overwritten).
    The draws are inherently numpy's (PCG64 + ziggurat), so they are made on the CPU and
    copied to `device` once; use expansion_noise when bit-compatibility is not needed.
    """
    import numpy as np  # only here: reproducing numpy's generator needs numpy

    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    shape = tuple(int(s) for s in shape)
    H, W = int(size[0]), int(size[1])
    if len(shape) == 5:
        B, C, T, h, w = shape
        lead = (B, T, C)
    elif len(shape) == 4:
        B, C, h, w = shape
        lead = (B, C)
    else:
        raise ValueError(f"expected a 4-D image or 5-D video latent shape, got {shape}")
    rng = np.random.default_rng(compatible_seed(seed, stage))
    out = np.zeros(lead + (H, W), dtype=np.float32)
    for idx in np.ndindex(*lead):
        if transform == "dct":
            out[idx] = rng.standard_normal((H, W)).astype(np.float32)
        else:
            if (H, W) != (2 * h, 2 * w):
                raise ValueError(f"the Haar DWT expansion doubles the grid; got {(h, w)} -> {(H, W)}")
            out[idx][h:, :w] = rng.standard_normal((h, w)).astype(np.float32)   # LH (cH)
            out[idx][:h, w:] = rng.standard_normal((h, w)).astype(np.float32)   # HL (cV)
            out[idx][h:, w:] = rng.standard_normal((h, w)).astype(np.float32)   # HH (cD)
    noise = torch.from_numpy(out)
    if len(shape) == 5:
        noise = noise.permute(0, 2, 1, 3, 4)  # (B, T, C, H, W) -> (B, C, T, H, W)
    return noise.contiguous().to(device=device or "cpu")


# ---------------------------------------------------------------- forward noising
def forward_noise(x: torch.Tensor, t: Time, t_new: Time, noise: torch.Tensor) -> torch.Tensor:
    """Bring a flow-matching state from time t to a noisier time t_new >= t.

        x(t_new) = a x(t) + sqrt(t_new^2 - a^2 t^2) eps',   a = (1 - t_new) / (1 - t).

    Derivation: with x(t) = (1 - t) x0 + t eps, a x(t) = (1 - t_new) x0 + a t eps; adding
    independent Gaussian noise of variance t_new^2 - a^2 t^2 makes the total noise
    variance t_new^2, so x(t_new) ~ (1 - t_new) x0 + t_new eps: the flow-matching
    marginal at t_new, conditionally on x0. The variance is >= 0 exactly when
    t_new (1 - t) >= t (1 - t_new), i.e. t_new >= t. (Progressive foveation: a token
    that reached time t earlier than its neighbours is moved back up to their t_new.)
    t and t_new may be floats or tensors broadcastable to x (per-token times); t < 1
    wherever t_new > t. noise: N(0, 1) shaped like x.
    """
    dt = _work_dtype(x)
    tt = torch.as_tensor(t, dtype=dt, device=x.device)
    tn = torch.as_tensor(t_new, dtype=dt, device=x.device)
    if bool((tn < tt).any()) or bool((tt < 0).any()) or bool((tn > 1).any()):
        raise ValueError("forward noising needs 0 <= t <= t_new <= 1 (it only adds noise)")
    if bool(((tt >= 1) & (tn > tt)).any()):
        raise ValueError("forward noising from t = 1 is undefined (the state is pure noise already)")
    same = tn == tt
    a = torch.where(same, torch.ones_like(tt), (1 - tn) / torch.where(same, torch.ones_like(tt), 1 - tt))
    std = torch.sqrt(torch.clamp(tn * tn - a * a * tt * tt, min=0.0))
    return (a * x.to(dt) + std * noise.to(device=x.device, dtype=dt)).to(x.dtype)
