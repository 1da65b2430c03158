"""Spectral Progressive Diffusion, pure math (fov_core.spectral, fov_core.schedule).

- the DCT-II and Haar DWT are orthonormal and invertible (and match scipy / PyWavelets);
- spectral expansion keeps a flow-matching state on its line (synthetic power-law data);
- time remap, switch times and their paper numbers; the sigma-schedule mapping;
- the forward-noising step reaches its target noise level;
- the power-law fit recovers known constants in the presets' units;
- equivalence with the official code (../shared/reference/speed): utils.py and the
  ComfyUI sampler comfyui/speed_sampler.py, the latter loaded with stand-in comfy
  modules so its own loop runs here with a fake base sampler;
- bad inputs raise ValueError with a message that says what to change.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from fov_core import (
    SPECTRUM_PRESETS, activation_time, compatible_expansion_noise, compatible_seed, dct2, dct_downscale,
    dct_matrix, expansion_noise, fit_power_law, forward_noise, haar_dwt2, haar_idwt2, idct2, kappa,
    plan_switches, power_spectrum, radial_power_spectrum, spectral_expand, stage_sizes, switch_times,
    time_remap, validate_delta, validate_scales, validate_switch_sigmas,
)

pytestmark = pytest.mark.pure

FLUX = SPECTRUM_PRESETS["flux"]
WAN = SPECTRUM_PRESETS["wan21"]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- transforms
@pytest.mark.parametrize("n", [1, 2, 5, 8, 17, 128])
def test_dct_matrix_is_orthonormal(n):
    d = dct_matrix(n, dtype=torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    # row k is c_k cos(pi (2i + 1) k / (2n)): check one entry against the formula
    if n > 3:
        assert math.isclose(float(d[3, 2]), math.sqrt(2 / n) * math.cos(math.pi * 5 * 3 / (2 * n)), abs_tol=1e-12)


def test_dct2_matches_scipy_and_inverts():
    fft = pytest.importorskip("scipy.fft", reason="scipy is needed to compare with scipy's DCT")
    x = torch.randn(2, 3, 4, 6, 10, generator=_gen(0))
    X = dct2(x)
    ref = fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert torch.allclose(X, torch.from_numpy(ref), atol=2e-5)
    assert torch.allclose(idct2(X), x, atol=2e-5)
    assert math.isclose(float(X.norm()), float(x.norm()), rel_tol=1e-5)  # Parseval
    assert X.dtype == torch.float32


def test_haar_dwt_is_orthonormal_and_follows_pywavelets_layout():
    # the transform as a matrix on a 4 x 6 grid: orthogonal
    n = 24
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 4, 6)
    m = haar_dwt2(basis).reshape(n, n)
    assert torch.allclose(m @ m.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    x = torch.randn(2, 3, 5, 8, 6, generator=_gen(1))
    assert torch.allclose(haar_idwt2(haar_dwt2(x)), x, atol=1e-6)
    # one 2 x 2 block [[a, b], [c, d]] -> [[LL, HL], [LH, HH]]
    a, b, c, d = 1.0, 2.0, 3.0, 5.0
    got = haar_dwt2(torch.tensor([[a, b], [c, d]]))
    want = torch.tensor([[(a + b + c + d) / 2, (a - b + c - d) / 2], [(a + b - c - d) / 2, (a - b - c + d) / 2]])
    assert torch.allclose(got, want)
    pywt = _pywt_or_none()
    if pywt is not None:
        y = torch.randn(6, 8, generator=_gen(2), dtype=torch.float64)
        cA, (cH, cV, cD) = pywt.dwt2(y.numpy(), "haar", mode="periodization")
        C = haar_dwt2(y)
        for got, ref in ((C[:3, :4], cA), (C[3:, :4], cH), (C[:3, 4:], cV), (C[3:, 4:], cD)):
            assert torch.allclose(got, torch.from_numpy(ref), atol=1e-12)


def test_dct_downscale_keeps_white_noise_white():
    x = torch.randn(4000, 8, 8, generator=_gen(3))
    y = dct_downscale(x, (4, 4))
    assert y.shape == (4000, 4, 4)
    cov = torch.cov(y.reshape(4000, 16).T)
    assert torch.allclose(cov, torch.eye(16), atol=0.08)
    # constant image: truncation keeps the DC coefficient, so the level grows by r
    assert torch.allclose(dct_downscale(torch.ones(8, 8), (4, 4)), torch.full((4, 4), 2.0), atol=1e-5)


# ---------------------------------------------------------------- time remap
def test_time_remap_and_kappa():
    assert round(time_remap(0.85, 2), 3) == 0.919
    for t in (0.0, 0.3, 0.85, 1.0):
        for r in (1.0, 2.0, 4.0):
            assert math.isclose(time_remap(t, r), r * t / (1 + (r - 1) * t), abs_tol=1e-15)
            assert math.isclose(kappa(t, r) * t, time_remap(t, r), abs_tol=1e-15)
            # the kappa identity the expansion relies on: kappa (1 - t) / r = 1 - t~
            assert math.isclose(kappa(t, r) * (1 - t) / r, 1 - time_remap(t, r), abs_tol=1e-15)
    assert time_remap(0.0, 2) == 0.0 and time_remap(1.0, 2) == 1.0
    tt = torch.tensor([0.2, 0.5])
    assert torch.allclose(time_remap(tt, 2.0), 2 * tt / (1 + tt))


# ---------------------------------------------------------------- expansion statistics
def _power_law_coeffs(n, size, A, beta, transform, gen):
    """Clean full-res latents whose transform coefficients have variance P(w).

    DCT index (ky, kx) is frequency |k| / 2 cycles per image; the Haar LL band holds the
    low frequencies (given the variance of the lowest DCT band), details the high ones."""
    H = size
    if transform == "dct":
        ky, kx = torch.meshgrid(torch.arange(H), torch.arange(H), indexing="ij")
        w = torch.sqrt((ky.double() ** 2 + kx.double() ** 2)) / 2
    else:
        h = H // 2
        w = torch.full((H, H), h / 2, dtype=torch.float64)  # details: around the half-res Nyquist
        w[:h, :h] = 1.0                                      # LL
    P = A * w.clamp(min=0.5) ** (-beta)
    X = torch.randn(n, H, H, generator=gen, dtype=torch.float64) * P.sqrt()
    return X, P


@pytest.mark.parametrize("transform,size,r", [("dct", 16, 2), ("dct", 16, 4), ("dct", 12, 1.5), ("dwt", 16, 2)])
@pytest.mark.parametrize("t", [0.5, 0.85])
def test_expansion_keeps_flow_matching_state_on_its_line(transform, size, r, t):
    """x0 with a power-law spectrum; x0_lo its natural-amplitude low-res latent (the latent
    of the downsampled image: the low block of its coefficients divided by r); the low-res
    state x_t = (1 - t) x0_lo + t eps. After expansion, every coefficient in the low block
    must be (1 - t~) X + t~ e (slope on X, residual variance, total variance
    (1 - t~)^2 P + t~^2) and every other one pure noise of variance t~^2."""
    n, h = 8000, round(size / r)
    fwd = dct2 if transform == "dct" else haar_dwt2
    X, P = _power_law_coeffs(n, size, FLUX["A"], FLUX["beta"], transform, _gen(10))
    x0_lo = (idct2(X[:, :h, :h]) if transform == "dct" else X[:, :h, :h]) / r
    xt = (1 - t) * x0_lo + t * torch.randn(x0_lo.shape, generator=_gen(11), dtype=torch.float64)
    noise = torch.randn(n, size, size, generator=_gen(12), dtype=torch.float64)
    out, t_new = spectral_expand(xt, noise, t, transform)
    assert out.shape == (n, size, size) and out.dtype == torch.float64
    assert math.isclose(t_new, time_remap(t, r))
    Y = fwd(out)
    block = torch.zeros(size, size, dtype=torch.bool)
    block[:h, :h] = True
    assert Y.mean(0).abs().max() < 5 * math.sqrt(float(P.max())) / math.sqrt(n)
    var = Y.var(0)
    slope = (Y * X).mean(0) / (X * X).mean(0)
    resid = (Y - slope * X).var(0)
    want_var = torch.where(block, (1 - t_new) ** 2 * P + t_new ** 2, torch.full_like(P, t_new ** 2))
    assert torch.allclose(var / want_var, torch.ones_like(var), atol=0.12), float((var / want_var - 1).abs().max())
    assert abs(float((var / want_var).mean()) - 1) < 0.01
    assert torch.allclose(slope[block], torch.full_like(slope[block], 1 - t_new), atol=0.04)
    assert slope[~block].abs().max() < 0.04
    assert torch.allclose(resid[block] / t_new ** 2, torch.ones_like(resid[block]), atol=0.12)


def test_expansion_of_video_changes_only_height_and_width():
    x = torch.randn(2, 3, 4, 4, 6, generator=_gen(20))  # (B, C, T, h, w)
    noise = torch.randn(2, 3, 4, 8, 12, generator=_gen(21))
    for transform in ("dct", "dwt"):
        out, t_new = spectral_expand(x, noise, 0.7, transform)
        assert out.shape == (2, 3, 4, 8, 12)
        for f in range(4):  # frame by frame == the image expansion
            img, _ = spectral_expand(x[:, :, f], noise[:, :, f], 0.7, transform)
            assert torch.allclose(out[:, :, f], img, atol=1e-6)
    # t = 0: nothing to add; the low band is kept and the state is the DCT upsample times r / r
    out, t_new = spectral_expand(x[:, :, 0], torch.zeros(2, 3, 8, 12), 0.0, "dct")
    assert t_new == 0.0
    assert torch.allclose(dct_downscale(out, (4, 6)), 2 * x[:, :, 0], atol=1e-5)


def test_expansion_noise_is_on_device_and_reproducible():
    x = torch.zeros(2, 4, 3, 8, 8)
    a = expansion_noise(x, (16, 16), _gen(5))
    b = expansion_noise(x, (16, 16), _gen(5))
    assert a.shape == (2, 4, 3, 16, 16) and a.device == x.device and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert abs(float(a.std()) - 1) < 0.05


# ---------------------------------------------------------------- forward noising
def test_forward_noise_reaches_the_target_level():
    n = 200000
    x0 = 2.0 * torch.randn(n, generator=_gen(30), dtype=torch.float64) + 0.5
    t = torch.tensor([0.3, 0.6], dtype=torch.float64).repeat(n // 2)   # per-token times
    xt = (1 - t) * x0 + t * torch.randn(n, generator=_gen(31), dtype=torch.float64)
    t_new = 0.8
    y = forward_noise(xt, t, t_new, torch.randn(n, generator=_gen(32), dtype=torch.float64))
    for sel in (slice(0, None, 2), slice(1, None, 2)):  # per-token times
        ys, xs = y[sel], x0[sel]
        resid = ys - (1 - t_new) * xs          # must be t_new eps, independent of x0
        assert abs(float(resid.var()) - t_new ** 2) < 0.01
        assert abs(float(resid.mean())) < 0.01
        assert abs(float(((resid - resid.mean()) * (xs - xs.mean())).mean())) < 0.02
    same = forward_noise(xt, 0.6, 0.6, torch.randn(n, dtype=torch.float64))
    assert torch.equal(same, xt)
    with pytest.raises(ValueError, match="only adds noise"):
        forward_noise(xt, 0.8, 0.6, torch.zeros(n))


# ---------------------------------------------------------------- schedule
def test_switch_times_reproduce_the_paper():
    """FLUX at 1024^2 means the 128 x 128 latent (VAE /8); Wan 720p the 90 x 160 latent."""
    lat = (128, 128)
    got = [round(switch_times((0.5, 1), d, lat, **FLUX)[0], 3) for d in (0.01, 0.05, 0.1)]
    assert got == [0.853, 0.718, 0.638]
    got = [switch_times((0.25, 1), d, lat, **FLUX)[0] for d in (0.01, 0.05, 0.1)]
    assert [round(v, 2) for v in got] == [0.93, 0.86, 0.81]   # paper: 0.934 / 0.863 / 0.814
    assert abs(got[0] - 0.934) < 6e-4 and abs(got[1] - 0.863) < 1e-3 and abs(got[2] - 0.814) < 6e-4
    three = switch_times((0.25, 0.5, 1), 0.05, lat, **FLUX)
    assert three == [got[1], switch_times((0.5, 1), 0.05, lat, **FLUX)[0]]
    assert [round(switch_times((0.5, 1), d, (90, 160), **WAN)[0], 3) for d in (0.01, 0.05)] == [0.782, 0.612]
    # the 64 x 64 latent (512^2) would give other numbers: the presets are tied to the grid
    assert round(switch_times((0.5, 1), 0.01, (64, 64), **FLUX)[0], 3) != 0.853


def test_activation_time_formula_and_identity():
    for P in (0.05, 1.0, 30.0):
        for delta in (0.01, 0.1, 0.5):
            t = activation_time(P, delta)
            assert math.isclose(t, 1 / (1 + math.sqrt(delta / (P * (1 + P - delta)))))
            # at t_w the band's signal-to-noise ratio is delta / (1 + P - delta)
            assert math.isclose((1 - t) ** 2 * P / t ** 2, delta / (1 + P - delta), rel_tol=1e-9)
    assert power_spectrum(2.0, 8.0, 3.0) == 1.0
    assert activation_time(10.0, 0.01) > activation_time(1.0, 0.01) > activation_time(1.0, 0.1)


def test_plan_switches_maps_times_to_steps_like_the_official_sampler():
    sig = torch.tensor([1.0, 0.95, 0.9, 0.8, 0.7, 0.5, 0.3, 0.1, 0.0])
    plan = plan_switches(sig, (0.5, 1), [0.85])
    (sw,) = plan.switches
    assert sw.step == 3 and sw.t == pytest.approx(0.8) and sw.ratio == 2.0
    assert sw.t_tilde == pytest.approx(1.6 / 1.8)
    want = sig.clone()
    want[3] = 1.6 / 1.8
    assert torch.equal(plan.sigmas, want)      # only the switch sigma changes
    assert torch.equal(sig, torch.tensor([1.0, 0.95, 0.9, 0.8, 0.7, 0.5, 0.3, 0.1, 0.0]))  # input untouched
    assert torch.equal(plan.stages[0], sig[:4]) and torch.equal(plan.stages[1], want[3:])
    assert sum(len(s) - 1 for s in plan.stages) == len(sig) - 1   # same number of model calls
    # a threshold equal to a sigma switches at that step (sigma <= t*; 0.5 is exact in fp32)
    assert plan_switches(sig, (0.5, 1), [0.5]).switches[0].step == 5
    # three stages whose switches fall on the same step: the second expands from the first's t~
    plan = plan_switches(sig, (0.25, 0.5, 1), [0.78, 0.75])
    a, b = plan.switches
    assert a.step == b.step == 4 and a.t == pytest.approx(0.7) and b.t == pytest.approx(a.t_tilde, abs=1e-7)
    assert len(plan.stages[1]) == 1 and float(plan.sigmas[4]) == pytest.approx(time_remap(a.t_tilde, 2.0), abs=1e-7)
    # switch before the first step: the coarse stage runs no step
    plan = plan_switches(torch.tensor([0.6, 0.3, 0.0]), (0.5, 1), [0.85])
    assert plan.switches[0].step == 0 and len(plan.stages[0]) == 1
    with pytest.raises(ValueError, match="never reached.*more steps"):
        plan_switches(torch.tensor([1.0, 0.9, 0.0]), (0.5, 1), [0.5])


def test_stage_sizes():
    assert stage_sizes((128, 96), (0.25, 0.5, 1)) == [(32, 24), (64, 48), (128, 96)]
    assert stage_sizes((90, 160), (0.5, 1)) == [(45, 80), (90, 160)]
    with pytest.raises(ValueError, match="divisible by 4"):
        stage_sizes((90, 160), (0.25, 0.5, 1))
    with pytest.raises(ValueError, match=r"divisible by 2 x 2"):
        stage_sizes((90, 160), (0.5, 1), multiple=2)


@pytest.mark.parametrize("call,match", [
    (lambda: validate_scales((1.0, 0.5)), "strictly increasing"),
    (lambda: validate_scales((0.5, 0.5, 1)), "strictly increasing"),
    (lambda: validate_scales((0.25, 0.5)), r"last scale must be 1.*Append 1"),
    (lambda: validate_scales(()), "empty"),
    (lambda: validate_scales((0.0, 1)), r"in \(0, 1\]"),
    (lambda: validate_scales("abc"), "numbers"),
    (lambda: validate_delta(0.0), "strictly between 0 and 1"),
    (lambda: validate_delta(1.0), "strictly between 0 and 1"),
    (lambda: switch_times((0.5, 1), 1.5, (128, 128), **FLUX), "delta"),
    (lambda: switch_times((0.5, 1), 0.05, (128, 128), A=-1.0, beta=2.0), "A > 0"),
    (lambda: validate_switch_sigmas([0.8, 0.9], (0.25, 0.5, 1)), "strictly decreasing"),
    (lambda: validate_switch_sigmas([0.8], (0.25, 0.5, 1)), r"one switch sigma per switch.*2 switch"),
    (lambda: validate_switch_sigmas([1.2], (0.5, 1)), r"in \(0, 1\)"),
    (lambda: plan_switches([1.0, 0.5, 0.0], (0.5, 1), [0.9, 0.8]), "one switch time per switch"),
    (lambda: spectral_expand(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 12), 0.5), "same ratio > 1"),
    (lambda: spectral_expand(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 16, 16), 0.5, "dwt"), "ratio 2"),
    (lambda: spectral_expand(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8), 0.5, "fft"), "transform must be"),
    (lambda: spectral_expand(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 8, 8), 0.5), "leading axes"),
    (lambda: spectral_expand(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8), 1.5), r"in \[0, 1\]"),
    (lambda: haar_dwt2(torch.zeros(3, 4)), "even"),
    (lambda: dct_downscale(torch.zeros(4, 4), (8, 2)), "within the source size"),
    (lambda: compatible_seed(0, 0), "starting at 1"),
    (lambda: compatible_expansion_noise((1, 2, 3), (4, 4), 0, 1), "4-D image or 5-D video"),
    (lambda: fit_power_law(torch.zeros(2, 3, 3)), "too small"),
    (lambda: fit_power_law(torch.zeros(2, 16, 16)), "zero power"),
])
def test_bad_inputs_raise_helpful_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- power-law fit
def _field(n, H, W, A, beta, gen):
    """Real random fields with E |FFT_ortho(x)(k)|^2 = A |w_k|^-beta (w in cycles per min(H, W))."""
    m = min(H, W)
    fy = torch.fft.fftfreq(H, dtype=torch.float64) * m
    fx = torch.fft.fftfreq(W, dtype=torch.float64) * m
    w = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    amp = torch.where(w > 0, A * w.clamp(min=1e-9) ** (-beta), torch.zeros_like(w)).sqrt()
    white = torch.fft.fft2(torch.randn(n, H, W, generator=gen, dtype=torch.float64), norm="ortho")
    return torch.fft.ifft2(white * amp, norm="ortho").real.float()


def test_fit_power_law_recovers_known_constants():
    x = _field(24, 64, 64, 200.0, 2.0, _gen(40)).reshape(6, 4, 64, 64) + 3.0  # mean is removed per slice
    A, beta = fit_power_law(x)
    assert abs(beta - 2.0) < 0.03 and abs(A / 200.0 - 1) < 0.06
    x = _field(24, 48, 80, FLUX["A"], FLUX["beta"], _gen(41))   # non-square
    A, beta = fit_power_law(x)
    assert abs(beta - FLUX["beta"]) < 0.04 and abs(A / FLUX["A"] - 1) < 0.08
    # units: white unit noise is P = 1 at every frequency (the scale of the noise t^2)
    A, beta = fit_power_law(torch.randn(64, 64, 64, generator=_gen(42)))
    assert abs(beta) < 0.03 and abs(A - 1) < 0.05
    w, P = radial_power_spectrum(torch.randn(4, 32, 32, generator=_gen(43)))
    assert w.shape == (16,) and torch.allclose(w[1:], torch.arange(2, 17, dtype=torch.float32), atol=0.2)
    assert abs(float(w[0]) - 2 ** 0.25) < 1e-5   # annulus 1 = {|w| = 1, sqrt 2}: geometric mean


# ---------------------------------------------------------------- the official code
_MISSING = object()


def _pywt_or_none():
    if importlib.util.find_spec("pywt") is None:
        return None
    import pywt
    return pywt


@contextlib.contextmanager
def _modules(mods):
    saved = {name: sys.modules.get(name, _MISSING) for name in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _fake_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """A deterministic nonlinear stand-in for a base sampler (no model)."""
    _fake_euler.calls.append((tuple(x.shape), [float(s) for s in sigmas]))
    for i in range(len(sigmas) - 1):
        v = torch.tanh(x) + 0.1 * x.roll(1, -1) - 0.05
        x = x + (sigmas[i + 1] - sigmas[i]) * v
    return x


_fake_euler.calls = []


@pytest.fixture(scope="module")
def official():
    """comfyui/speed_sampler.py (and through it utils.py) of the official code, loaded with
    stand-ins for the comfy modules it imports; PyWavelets / PyYAML stand-ins only when
    missing (then the DWT comparisons skip)."""
    root = Path(os.environ.get("FOV_SPEED_REFERENCE", Path(__file__).resolve().parents[2] / "shared/reference/speed"))
    if not (root / "comfyui" / "speed_sampler.py").is_file():
        pytest.skip(f"official SPEED reference code not found at {root} (set FOV_SPEED_REFERENCE)")
    pytest.importorskip("scipy", reason="the official code needs scipy")
    pytest.importorskip("numpy")
    kds = types.ModuleType("comfy.k_diffusion.sampling")
    kds.sample_euler = _fake_euler
    comfy = types.ModuleType("comfy")
    comfy.samplers, comfy.utils = types.ModuleType("comfy.samplers"), types.ModuleType("comfy.utils")
    comfy.k_diffusion = types.ModuleType("comfy.k_diffusion")
    comfy.k_diffusion.sampling = kds
    latest = types.ModuleType("comfy_api.latest")
    latest.io = types.SimpleNamespace(ComfyNode=object)
    api = types.ModuleType("comfy_api")
    api.latest = latest
    mods = {"comfy": comfy, "comfy.samplers": comfy.samplers, "comfy.utils": comfy.utils,
            "comfy.k_diffusion": comfy.k_diffusion, "comfy.k_diffusion.sampling": kds,
            "comfy_api": api, "comfy_api.latest": latest}
    has_pywt = _pywt_or_none() is not None
    if not has_pywt:
        mods["pywt"] = types.ModuleType("pywt")
    if importlib.util.find_spec("yaml") is None:
        mods["yaml"] = types.ModuleType("yaml")
    with _modules(mods):
        spec = importlib.util.spec_from_file_location("speed_reference_sampler", root / "comfyui" / "speed_sampler.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    mod.has_pywt = has_pywt
    return mod


def _need_dwt(official, transform):
    if transform == "dwt" and not official.has_pywt:
        pytest.skip("PyWavelets is not installed (pip install PyWavelets): "
                    "the DWT comparison with the official code skips")


def test_formulas_equal_the_official(official):
    u = official._speed_utils
    g = _gen(50)
    for _ in range(20):
        t, r = float(torch.rand(1, generator=g)), float(torch.randint(2, 5, (1,), generator=g))
        assert math.isclose(kappa(t, r), u.kappa(t, r), rel_tol=1e-12)
        assert math.isclose(time_remap(t, r), u.align_timestep(t, r), rel_tol=1e-12)
        A, beta = 1 + 500 * float(torch.rand(1, generator=g)), 1 + 2 * float(torch.rand(1, generator=g))
        delta = 0.001 + 0.5 * float(torch.rand(1, generator=g))
        H, W = (int(v) for v in torch.randint(8, 200, (2,), generator=g))
        for scales in ((0.5, 1.0), (0.25, 0.5, 1.0), (0.3, 0.7, 1.0)):
            ours = switch_times(scales, delta, (H, W), A, beta)
            assert ours == pytest.approx(u.delta_optimal_transitions(list(scales), delta, A, beta, H, W), rel=1e-12)


def test_switch_steps_equal_the_official(official):
    g = _gen(51)
    for _ in range(30):
        n = int(torch.randint(2, 40, (1,), generator=g))
        sig = torch.sort(torch.rand(n + 1, generator=g), descending=True).values
        sig[-1] = 0.0
        if bool(torch.rand(1, generator=g) < 0.5):
            sig[0] = 1.0
        scales = [(0.5, 1.0), (0.25, 0.5, 1.0)][int(torch.randint(0, 2, (1,), generator=g))]
        times = sorted((float(v) for v in torch.rand(len(scales) - 1, generator=g) * 0.9 + 0.05), reverse=True)
        ref = official._resolve_manual(sig, list(scales), times)
        if len(ref) < len(times):   # the official drops unreachable switches; we refuse them
            with pytest.raises(ValueError, match="never reached"):
                plan_switches(sig, scales, times)
            continue
        plan = plan_switches(sig, scales, times)
        assert [(s.step, scales[i], scales[i + 1]) for i, s in enumerate(plan.switches)] == ref
        assert [s.step for s in plan.switches] == [official._speed_utils.find_first_step_below(sig, v) for v in times]
    sig = torch.linspace(1, 0, 29)
    t = switch_times((0.25, 0.5, 1), 0.05, (128, 128), **FLUX)
    assert [s.step for s in plan_switches(sig, (0.25, 0.5, 1), t).switches] == \
        [s for s, _, _ in official._resolve_transitions(sig, [0.25, 0.5, 1.0], 0.05, FLUX["A"], FLUX["beta"], 128, 128)]


@pytest.mark.parametrize("transform,shape,scales", [
    ("dct", (2, 3, 8, 12), (0.5, 1.0)),
    ("dct", (1, 2, 3, 4, 6), (0.5, 1.0)),          # video (B, C, T, h, w): slice order b, t, c
    ("dct", (1, 2, 4, 4), (0.25, 1.0)),            # ratio 4
    ("dct", (1, 2, 8, 12), (0.5, 0.75)),           # ratio 1.5
    ("dwt", (2, 3, 8, 12), (0.5, 1.0)),
    ("dwt", (1, 2, 3, 4, 6), (0.5, 1.0)),
])
def test_expansion_with_compatible_noise_equals_the_official(official, transform, shape, scales):
    _need_dwt(official, transform)
    x = torch.randn(shape, generator=_gen(60))
    r = scales[1] / scales[0]
    H, W = round(shape[-2] * r), round(shape[-1] * r)
    for seed, stage, t in ((0, 1, 0.8123), (12345, 2, 0.37)):
        ref, ref_t = official._expand_and_align_torch(
            x, scales[0], scales[1], t, transform=transform, seed=seed + 10000 * stage,
            H_full=round(H / scales[1]), W_full=round(W / scales[1]))
        noise = compatible_expansion_noise(x.shape, (H, W), seed, stage, transform, device=x.device)
        ours, ours_t = spectral_expand(x, noise, t, transform)
        assert ours.shape == ref.shape
        assert torch.allclose(ours, ref, atol=2e-5), float((ours - ref).abs().max())
        assert math.isclose(ours_t, ref_t, rel_tol=1e-12)
    if transform == "dct":  # the noise itself: outside the block, coefficients / (kappa t) are the draws
        coeffs = dct2(ref / kappa(0.37, r)) / 0.37
        mask = torch.ones(H, W, dtype=torch.bool)
        mask[:shape[-2], :shape[-1]] = False
        assert torch.allclose(coeffs[..., mask], noise[..., mask], atol=2e-4)


@pytest.mark.parametrize("shape", [(2, 3, 16, 24), (1, 2, 3, 16, 8)])
def test_dct_downscale_equals_the_official_initial_state(official, shape):
    x = torch.randn(shape, generator=_gen(70))
    for scale in (0.5, 0.25):
        ref = official._initial_dct_downscale(x, scale)
        ours = dct_downscale(x, (round(shape[-2] * scale), round(shape[-1] * scale)))
        assert torch.allclose(ours, ref, atol=2e-5)


@pytest.mark.parametrize("transform,scales,steps,shape", [
    ("dct", (0.5, 1.0), 20, (1, 4, 32, 32)),
    ("dct", (0.25, 0.5, 1.0), 12, (2, 4, 32, 48)),
    ("dwt", (0.25, 0.5, 1.0), 16, (1, 4, 32, 32)),
    ("dct", (0.5, 1.0), 10, (1, 4, 2, 16, 32)),     # video
])
def test_official_sampler_loop_equals_our_plan(official, transform, scales, steps, shape):
    """Run the official sample_speed (with a fake base sampler) and the same loop built from
    fov_core: DCT-truncated initial state, stage schedules from plan_switches, expansions
    with compatible noise at seed + 10000 * stage. Same segments, same result."""
    _need_dwt(official, transform)
    x = torch.randn(shape, generator=_gen(80))
    sigmas = torch.linspace(1, 0, steps + 1)
    sigmas = 3 * sigmas / (1 + 2 * sigmas)   # a shifted flow schedule
    seed, delta = 7, 0.05
    _fake_euler.calls.clear()
    ref = official.sample_speed(None, x.clone(), sigmas.clone(), transform=transform, base_sampler="euler",
                                mode="delta_optimal", scales=list(scales), delta=delta, spectrum_A=FLUX["A"],
                                spectrum_beta=FLUX["beta"], seed=seed)
    ref_calls = list(_fake_euler.calls)

    _fake_euler.calls.clear()
    H, W = shape[-2:]
    sizes = stage_sizes((H, W), scales)
    plan = plan_switches(sigmas, scales, switch_times(scales, delta, (H, W), **FLUX))
    assert len(plan.switches) == len(scales) - 1
    y = dct_downscale(x, sizes[0])
    for i, stage_sigmas in enumerate(plan.stages):
        if len(stage_sigmas) >= 2:
            y = _fake_euler(None, y, stage_sigmas)
        if i < len(plan.switches):
            sw = plan.switches[i]
            noise = compatible_expansion_noise(y.shape, sizes[i + 1], seed, i + 1, transform, device=y.device)
            y, t_new = spectral_expand(y, noise, sw.t, transform)
            assert t_new == sw.t_tilde
    assert [c[0] for c in _fake_euler.calls] == [c[0] for c in ref_calls]   # stage shapes, in order
    for ours, theirs in zip(_fake_euler.calls, ref_calls):                   # and their sigmas
        assert ours[1] == pytest.approx(theirs[1], abs=1e-7)
    assert y.shape == ref.shape == x.shape
    assert torch.allclose(y, ref, atol=1e-4), float((y - ref).abs().max())
