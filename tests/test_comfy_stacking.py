"""What FLUX users stack on the model, each with a foveated model in a real graph
(README table "Works with"). Nothing silently wrong:

- Guidance that takes statistics over the latent (RescaleCFG, CFGNorm, APG) sees the
  canvas as the image it decodes to: every latent pixel counts once, so a 1/2 token's
  value counts 4 times, as its area. Means, norms and standard deviations are then those
  of the image; in particular they do not change when a latent is replicated, so an
  all-1/2 foveated run with the guidance equals the native half-resolution run with it.
  (Weighting by tokens instead would let the fovea, a small part of the image, dominate.)
- FreSca filters frequencies of the canvas, whose periphery is replicated blocks: its FFT
  also sees the block structure, so it is close to, not exactly, FreSca on the
  low-resolution latent (a caveat, documented).
- Caches (EasyCache, LazyCache), Skip Layer Guidance, ModelSamplingFlux and LoRA stacks
  run unchanged on top of or under the foveation, in either node order.
"""
import pytest
import torch

from comfy_fixtures.prompts import FAMILY, Prompt, base, fovea, ksampler

pytestmark = pytest.mark.comfyui


def run(env, prompt):
    return env.harness.run_prompt(env.handle, prompt, clear_cache=True)


def _model(env):
    from comfy import sd as comfy_sd

    return comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY["flux1_dev"][0]))


GUIDANCE = {
    "RescaleCFG": lambda m: __import__("comfy_extras.nodes_model_advanced", fromlist=["x"]).RescaleCFG().patch(m, 0.7)[0],
    "CFGNorm": lambda m: __import__("comfy_extras.nodes_cfg", fromlist=["x"]).CFGNorm.execute(m, 1.0).result[0],
    "APG": lambda m: __import__("comfy_extras.nodes_apg", fromlist=["x"]).APG.execute(m, 1.0, 5.0, -0.5).result[0],
    "FreSca": lambda m: __import__("comfy_extras.nodes_fresca", fromlist=["x"]).FreSca.execute(m, 1.0, 2.0, 2).result[0],
}


@pytest.mark.parametrize("node", sorted(GUIDANCE))
def test_guidance_statistics_count_every_latent_pixel_once(env, node):
    """All-1/2 foveated + guidance == native half resolution + guidance, for guidance whose
    statistics do not change under replication; FreSca's FFT changes a little (the caveat)."""
    import comfy.sample as comfy_sample

    fc = env.pack.fov_core
    mp = _model(env)
    patch = env.pack.nodes.foveation.FoveationPatch(fc.Fovea((fc.Gaze(0.5, 0.5, 0.3),)),
                                                    env.pack.nodes.adapters.adapter_for(mp))
    patch.layout_for = lambda grid, stage=-1: fc.TokenLayout(torch.ones(1, grid.height, grid.width, dtype=torch.long))
    foveated, native = GUIDANCE[node](patch.install(mp)), GUIDANCE[node](mp)
    pos = env.harness.random_conditioning(7, 64, 32, seed=1, guidance=3.5)
    neg = env.harness.random_conditioning(7, 64, 32, seed=2, guidance=3.5)
    noise = torch.randn(1, 16, 32, 32, generator=torch.Generator().manual_seed(0))

    def sample(model, n):
        with torch.inference_mode():
            return comfy_sample.sample(model, n, 3, 3.0, "euler", "simple", pos, neg, torch.zeros_like(n))

    fov = sample(foveated, noise)
    low = sample(native, noise[..., ::2, ::2].contiguous())
    err = float((fov[..., ::2, ::2] - low).abs().max())
    if node == "FreSca":
        assert 0 < err < 5e-3, err  # filtering the blocky canvas is close to, not exactly, filtering the latent
    else:
        assert err < 1e-4, err


def _stack(env, family, node, order, steps=6, cfg=1.0):
    p = Prompt()
    m, v, lat, pos, neg = base(p, family)
    f = fovea(p, radius=0.25)

    def extra(model):
        if node == "EasyCache":
            return p.add("EasyCache", model=p.out(model), reuse_threshold=0.5, start_percent=0.0, end_percent=1.0,
                         verbose=False)
        if node == "LazyCache":
            return p.add("LazyCache", model=p.out(model), reuse_threshold=0.5, start_percent=0.0, end_percent=1.0,
                         verbose=False)
        if node == "SkipLayerGuidanceDiT":
            return p.add("SkipLayerGuidanceDiT", model=p.out(model), double_layers="0", single_layers="0", scale=3.0,
                         start_percent=0.0, end_percent=1.0, rescaling_scale=0.0)
        if node == "ModelSamplingFlux":
            return p.add("ModelSamplingFlux", model=p.out(model), max_shift=1.15, base_shift=0.5, width=256,
                         height=256)
        if node == "LoRA stack":
            for strength in (0.7, 0.5):
                model = p.add("LoraLoaderModelOnly", model=p.out(model), lora_name=env.lora_name,
                              strength_model=strength)
            return model
        raise KeyError(node)

    if order == "node_then_foveation":
        model = p.add("ApplyFoveation", model=p.out(extra(m)), fovea=p.out(f))
    else:
        model = extra(p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f)))
    plain = p.add("ApplyFoveation", model=p.out(m), fovea=p.out(f))
    s = ksampler(p, model, pos, neg, lat, steps=steps, cfg=cfg)
    s_plain = ksampler(p, plain, pos, neg, lat, steps=steps, cfg=cfg)
    r = run(env, p)
    return r[s][0]["samples"], r[s_plain][0]["samples"], r[f][0]


@pytest.fixture(scope="module")
def lora(env):
    """A LoRA in the format the paper's foveated LoRAs use, for the FLUX.2 test model."""
    from comfy import sd as comfy_sd
    from comfy_fixtures.paper_lora import write_paper_style_lora

    mp = comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY["flux2_klein"][0]))
    path = env.models / "loras" / "stack_test_lora.safetensors"
    write_paper_style_lora(path, mp.model.state_dict(), rank=4, seed=2, magnitude=0.5)
    env.harness.refresh_model_lists(env.handle)
    env.lora_name = path.name
    return path


STACKED = ["EasyCache", "LazyCache", "SkipLayerGuidanceDiT", "ModelSamplingFlux", "LoRA stack"]


@pytest.mark.parametrize("order", ["node_then_foveation", "foveation_then_node"])
@pytest.mark.parametrize("node", STACKED)
def test_stacked_node_runs_on_the_foveated_model(env, lora, node, order):
    cfg = 2.0 if node == "SkipLayerGuidanceDiT" else 1.0
    family = "flux2_klein" if node == "LoRA stack" else "flux1_dev"
    out, plain, fov = _stack(env, family, node, order, cfg=cfg)
    fc = env.pack.fov_core
    patch = 1 if family == "flux2_klein" else 2
    pk = fc.LatentPacking(fc.TokenLayout(fc.rasterize(fov, fc.TokenGrid(1, 16, 16))), patch)
    assert torch.isfinite(out).all() and pk.is_canonical(out)
    assert not torch.equal(out, plain), f"{node} changed nothing"
