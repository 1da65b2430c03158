"""Progressive Resolution (Spectral Progressive Diffusion as a MODEL patch) in real ComfyUI:
the official SamplerSPEED (../shared/reference/speed, loaded as a custom node) is
reproduced; a one-stage schedule is plain sampling bit for bit; every sampler node and
kind of sampler runs it on FLUX and Wan; progressive foveation expands only the fovea;
bad settings are refused before sampling starts."""
import sys
from pathlib import Path

import pytest
import torch

from comfy_fixtures.prompts import FAMILY

pytestmark = pytest.mark.comfyui
SPEED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "speed" / "comfyui"


@pytest.fixture(scope="module")
def speed(env):
    assert SPEED.is_dir(), f"the official SPD code is missing at {SPEED}"
    env.harness.load_custom_node_dir(env.handle, SPEED)
    return next(m for k, m in sys.modules.items() if k.endswith("speed_sampler"))


def _load(env, key):
    from comfy import sd as comfy_sd

    if key.startswith("wan"):
        return comfy_sd.load_diffusion_model(env.infos[key]["path"])
    return comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY[key][0]))


def _progressive(env, model, scales="0.5, 1", noise="SamplerSPEED", transform="dct", switch_at="power law",
                 sigmas="0.85", fovea=None, delta=0.05, spectrum="FLUX"):
    node = env.pack.nodes.progressive_nodes.ProgressiveResolution
    return node.execute(model, scales, switch_at, delta, spectrum, sigmas, transform, noise, 0, 1.0, 1.0,
                        fovea=fovea).result[0]


SHAPES = {"flux1_dev": (1, 16, 32, 32), "flux2_klein": (1, 128, 16, 16), "wan21_t2v": (1, 16, 3, 16, 16)}


def _sample(env, key, model, sampler, steps=10, seed=0, cfg=1.0):
    import comfy.samplers

    shape = SHAPES[key]
    ctx = 4096 if key.startswith("wan") else 64
    cond = env.harness.random_conditioning(7, ctx, 32 if key == "flux1_dev" else None,
                                           guidance=3.5 if key == "flux1_dev" else None)
    latent = torch.zeros(shape)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(cond, cond)
    guider.set_cfg(cfg)
    if isinstance(sampler, str):
        sampler = comfy.samplers.sampler_object(sampler)
    with torch.inference_mode():
        return guider.sample(noise, latent, sampler, sigmas, seed=seed)


@pytest.mark.parametrize("key", ["flux1_dev", "flux2_klein"])
@pytest.mark.parametrize("transform,scales", [("dct", "0.5, 1"), ("dwt", "0.5, 1"), ("dct", "0.25, 0.5, 1")])
def test_reproduces_the_official_sampler(env, speed, key, transform, scales):
    mp = _load(env, key)
    ours = _sample(env, key, _progressive(env, mp, scales, transform=transform), "euler")
    official = speed.SamplerSPEED.execute("euler", transform, "delta_optimal", "flux", scales.replace(" ", ""), 0.05,
                                          "0.85", 1.0, 1.0, 0).result[0]
    ref = _sample(env, key, mp, official)
    plain = _sample(env, key, mp, "euler")
    assert float((ours - ref).abs().max()) < 1e-4, float((ours - ref).abs().max())
    assert float((ours - plain).abs().max()) > 1e-2  # it did switch


def test_manual_switch_sigmas_reproduce_the_official_sampler(env, speed):
    mp = _load(env, "flux1_dev")
    ours = _sample(env, "flux1_dev", _progressive(env, mp, "0.25, 0.5, 1", switch_at="manual sigmas",
                                                  sigmas="0.95, 0.8"), "heun")
    official = speed.SamplerSPEED.execute("heun", "dct", "manual", "flux", "0.25,0.5,1.0", 0.05, "0.95,0.8", 1.0, 1.0,
                                          0).result[0]
    assert float((ours - _sample(env, "flux1_dev", mp, official)).abs().max()) < 1e-4


def test_one_stage_schedule_is_plain_sampling_bit_for_bit(env):
    mp = _load(env, "flux1_dev")
    for noise in ("fast", "SamplerSPEED"):
        assert torch.equal(_sample(env, "flux1_dev", _progressive(env, mp, "1", noise=noise), "dpmpp_2m"),
                           _sample(env, "flux1_dev", mp, "dpmpp_2m"))


def _token_counts(env, model):
    """Record the tokens of every diffusion-model call (an inner DIFFUSION_MODEL wrapper)."""
    import comfy.patcher_extension as pe_ext

    seen = []

    def record(executor, *args, **kwargs):
        x = args[0]
        seen.append(x.shape[-1] // 2 if x.shape[-2] == 2 else x.shape[-1] * x.shape[-2] // 4 * (
            x.shape[2] if x.ndim == 5 else 1))
        return executor(*args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(pe_ext.WrappersMP.DIFFUSION_MODEL, "test_record", record)
    return m, seen


@pytest.mark.parametrize("key", ["flux1_dev", "wan21_t2v"])
@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde"])
def test_every_kind_of_sampler_runs_the_stages(env, key, sampler):
    mp = _load(env, key)
    model, seen = _token_counts(env, _progressive(env, mp, noise="fast"))
    out = _sample(env, key, model, sampler, steps=8)
    assert torch.isfinite(out).all() and out.shape == SHAPES[key]
    full = seen[-1]
    assert seen[0] * 4 == full and set(seen) == {full // 4, full}  # 1/2 stage first, then full resolution


def test_every_sampler_node_runs_it(env):
    from comfy_fixtures.prompts import Prompt, base, ksampler

    p = Prompt()
    m, v, lat, pos, neg = base(p, "flux1_dev")
    pm = p.add("ProgressiveResolution", model=p.out(m), scales="0.5, 1", switch_at="power law", delta=0.05,
               spectrum="FLUX", manual_sigmas="0.85", transform="dct", noise="fast", seed=0, A=1.0, beta=1.0)
    s1 = ksampler(p, pm, pos, neg, lat, steps=6)
    s2 = p.add("KSamplerAdvanced", model=p.out(pm), add_noise="enable", noise_seed=5, steps=6, cfg=1.0,
               sampler_name="dpmpp_2m", scheduler="simple", positive=p.out(pos), negative=p.out(neg),
               latent_image=p.out(lat), start_at_step=0, end_at_step=10000, return_with_leftover_noise="disable")
    s3 = p.add("SamplerCustomAdvanced", noise=p.out(p.add("RandomNoise", noise_seed=9)),
               guider=p.out(p.add("BasicGuider", model=p.out(pm), conditioning=p.out(pos))),
               sampler=p.out(p.add("KSamplerSelect", sampler_name="euler_ancestral")),
               sigmas=p.out(p.add("BasicScheduler", model=p.out(pm), scheduler="simple", steps=6, denoise=1.0)),
               latent_image=p.out(lat))
    r = env.harness.run_prompt(env.handle, p, clear_cache=True)
    for s in (s1, s2, s3):
        assert torch.isfinite(r[s][0]["samples"]).all()
    assert "0.5 -> 1" in r[pm][1]


def test_progressive_foveation_expands_only_the_fovea(env):
    fc = env.pack.fov_core
    mp = _load(env, "flux1_dev")
    fovea = fc.Fovea((fc.Gaze(0.4, 0.5, 0.3),))
    layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(1, 16, 16)))
    model, seen = _token_counts(env, _progressive(env, mp, noise="fast", fovea=fovea))
    out = _sample(env, "flux1_dev", model, "euler", steps=8)
    assert set(seen) == {64, layout.n_tokens} and seen[0] == 64 and seen[-1] == layout.n_tokens
    assert fc.LatentPacking(layout, 2).is_canonical(out)


@pytest.mark.parametrize("kw,match", [
    ({"scales": "1, 0.5"}, "increasing"),
    ({"scales": "0.5, 0.9"}, "last scale must be 1"),
    ({"scales": "0.4, 1"}, "powers of two"),
    ({"delta": 1.5}, "delta"),
    ({"switch_at": "manual sigmas", "sigmas": "0.8, 0.9", "scales": "0.25, 0.5, 1"}, "decreasing"),
    ({"switch_at": "manual sigmas", "sigmas": "0.8, 0.7"}, "one switch sigma per switch"),
])
def test_bad_settings_are_refused_by_the_node(env, kw, match):
    with pytest.raises(ValueError, match=match):
        _progressive(env, _load(env, "flux1_dev"), **kw)


def test_a_latent_not_divisible_by_the_coarsest_block_is_refused_before_sampling(env, monkeypatch):
    import comfy.samplers

    mp = _load(env, "flux1_dev")
    model, seen = _token_counts(env, _progressive(env, mp, "0.25, 0.5, 1"))
    cond = env.harness.random_conditioning(7, 64, 32, guidance=3.5)
    latent = torch.zeros(1, 16, 36, 32)  # 18 x 16 tokens: not divisible by the 4-token block of the 1/4 stage
    sigmas = comfy.samplers.calculate_sigmas(mp.get_model_object("model_sampling"), "simple", 6)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(cond, cond)
    with pytest.raises(ValueError, match="divisible by 4"), torch.inference_mode():
        guider.sample(torch.randn(latent.shape), latent, comfy.samplers.sampler_object("euler"), sigmas, seed=0)
    assert seen == []


def test_fit_power_spectrum_feeds_the_schedule(env):
    g = torch.Generator().manual_seed(0)
    H = 64
    fy, fx = torch.meshgrid(torch.fft.fftfreq(H) * H, torch.fft.fftfreq(H) * H, indexing="ij")
    w = torch.sqrt(fy**2 + fx**2).clamp(min=1)
    spec = torch.randn(8, 4, H, H, generator=g, dtype=torch.complex64) * torch.sqrt(200.0 * w**-2.0)
    latents = torch.fft.ifft2(spec).real * H
    nodes = env.pack.nodes.progressive_nodes
    (A, beta), text = nodes.FitPowerSpectrum.execute(latents={"samples": latents}).result
    assert abs(beta - 2.0) < 0.25 and "beta" in text
    readout = nodes.ProgressiveResolution.execute(_load(env, "flux1_dev"), "0.5, 1", "power law", 0.05, "FLUX",
                                                  "0.85", "dct", "fast", 0, 1.0, 1.0, fitted_spectrum=(A, beta)).result[1]
    assert f"beta {beta:g}" in readout
