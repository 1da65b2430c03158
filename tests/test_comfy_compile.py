"""Foveation under torch.compile, the way core TorchCompileModel compiles (its guard filter,
which drops every guard on transformer_options), with the cheap aot_eager backend on CPU.

A foveated run is never silently native, whatever ran before and whatever the node order;
the compiled foveated model equals the eager one; the foveated forward is one graph with
no breaks; moving the gaze (a new packed length) does not compile again."""
import pytest
import torch

from comfy_fixtures.prompts import FAMILY

pytestmark = pytest.mark.comfyui
BACKEND = "aot_eager"


@pytest.fixture()
def dynamo():
    import torch._dynamo as dyn
    from torch._dynamo.utils import counters

    dyn.reset()
    counters.clear()
    yield counters
    dyn.reset()


def _compiled(model):
    """What TorchCompileModel.execute does, with a CPU-cheap backend."""
    from comfy_api.torch_helpers import set_torch_compile_wrapper
    from comfy_extras.nodes_torch_compile import skip_torch_compile_dict

    m = model.clone(disable_dynamic=True)
    set_torch_compile_wrapper(model=m, backend=BACKEND, options={"guard_filter_fn": skip_torch_compile_dict})
    return m


def _fovea(env, x, radius=0.3):
    fc = env.pack.fov_core
    return fc.Fovea((fc.Gaze(x, 0.5, radius),), fc.LevelPolicy.half())


def _apply(env, model, fovea):
    return env.pack.nodes.apply_node.ApplyFoveation.execute(model, fovea).result[0]


@pytest.fixture()
def klein(env):
    from comfy import sd as comfy_sd

    mp = comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY["flux2_klein"][0]))
    cond = env.harness.random_conditioning(6, env.infos["flux2_klein"]["context_in_dim"], None)
    latent = torch.zeros(1, 128, 12, 12)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))

    def sample(model, steps=2):
        import comfy.sample

        with torch.inference_mode():
            return comfy.sample.sample(model, noise, steps, 1.0, "euler", "simple", cond, cond, latent)

    return mp, sample


@pytest.mark.parametrize("order", ["foveation_after_compile", "foveation_before_compile"])
def test_a_native_compiled_run_never_makes_a_foveated_run_native(env, klein, dynamo, order):
    mp, sample = klein
    fovea = _fovea(env, 0.5)
    eager_fov = sample(_apply(env, mp, fovea))
    native_compiled = sample(_compiled(mp))
    assert torch.allclose(native_compiled, sample(mp), atol=1e-5)
    fov_model = _apply(env, _compiled(mp), fovea) if order == "foveation_after_compile" else _compiled(
        _apply(env, mp, fovea))
    compiled_fov = sample(fov_model)
    assert not torch.allclose(compiled_fov, native_compiled, atol=1e-3), "the native compiled graph ran"
    torch.testing.assert_close(compiled_fov, eager_fov, atol=1e-4, rtol=1e-4)


def test_foveated_forward_is_one_graph_without_breaks_and_the_gaze_moves_without_recompiling(env, klein, dynamo):
    mp, sample = klein
    compiled = _compiled(mp)
    fc = env.pack.fov_core
    a, b = _fovea(env, 0.5, 0.35), _fovea(env, 0.6, 0.4)  # 72 and 78 tokens: one padding bucket (128)
    grid = fc.TokenGrid(1, 12, 12)
    len_a, len_b = (fc.TokenLayout(fc.rasterize(f, grid)).n_tokens for f in (a, b))
    assert len_a != len_b and env.pack.nodes.foveation.strip_rows(fc.TokenLayout(fc.rasterize(a, grid)), True) == 128
    out_a = sample(_apply(env, compiled, a))
    assert dynamo["graph_break"] == {}, dict(dynamo["graph_break"])
    graphs = dynamo["stats"]["unique_graphs"]
    assert graphs == 1
    out_b = sample(_apply(env, compiled, b))
    assert dynamo["stats"]["unique_graphs"] == graphs, "moving the gaze compiled again"
    torch.testing.assert_close(out_a, sample(_apply(env, mp, a)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out_b, sample(_apply(env, mp, b)), atol=1e-4, rtol=1e-4)
