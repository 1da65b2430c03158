"""Benchmark: native vs foveated on ComfyUI's real model classes.

    COMFYUI_PATH=/path/to/ComfyUI python tests/benchmark.py [--family flux2|wan21] [--port PATH] [--json out.json]

--family flux2 (default): FLUX.2 [klein] 4B geometry (hidden 3072, 24 heads, SwiGLU MLP
9216, 512 text tokens of width 7680) at --sizes (square, px). --family wan21: Wan 2.1
T2V 1.3B geometry (dim 1536, 12 heads, FFN 8960, 512 text tokens) at --video WxHxFRAMES
(the paper's 832x480x81). Random initialised, written in the real checkpoint format and
loaded by ComfyUI's own loader; depth and width are options (--depth 5 --single 20 is
klein's full depth, --depth 30 Wan's; --hidden 256 makes the narrow model on which the
CPU shows the host cost of issuing operations, the part that limits a GPU at 1024^2).
Attention is PyTorch SDPA (ComfyUI's --use-pytorch-cross-attention), which is
FLOP-faithful. Every forward runs through BaseModel.apply_model, as a sampler step does.
Every timing is a median of --repeats runs after a warm-up run.

Forward, per token ratio: native time; foveated time; measured speedup; FLOP-ideal
speedup (fov_core.flops) and efficiency = measured / ideal; the ceiling = a native
forward over the same number of tokens, and efficiency against it; kernels per forward
(CUDA kernels from torch.profiler; on the CPU the top-level operators that launch work,
the proxy for kernels) of ours, native and the same-token native; host time per forward
(time to issue one forward; on the CPU the wall time); peak memory.
Decode: Foveated Decode vs VAE Decode (the family's VAE, real width by default), VAE
calls per decode, decoded pixels, peak memory.
End to end (warm): --steps sampling steps (euler, cfg 1) + decode, native, ours, and the
existing port with --port PATH (ruwwww/ComfyUI-Foveated_Diffusion checkout, loaded as a
custom node in the same process; its forwards are in the forward table too).
torch.compile (--compile, instead of the tables above): compile cost and graphs of the first
native, first foveated, moved-gaze and new-bucket runs, and ms per step eager vs compiled
(tests/bench/compile.py).
Training (--training, instead of the tables above): Train Foveated LoRA's step, foveated
(the paper's random circles; Wan: random gaze paths) vs full-resolution, seconds per step
and peak memory at the first of --sizes / at --video (tests/bench/training.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PACK_ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench.families import FAMILIES  # noqa: E402
from bench.measure import PeakMemory, fmt_bytes, host_time, kernels_of, op_count, timed  # noqa: E402
from bench.port import Port  # noqa: E402
from bench.compile import bench_compile  # noqa: E402
from bench.training import bench_training  # noqa: E402


def boot(args, fam, workdir: Path):
    from comfy_fixtures import harness

    models = workdir / "models"
    handle = harness.boot_comfyui(args.comfyui, models, workdir / "output", [PACK_ROOT], cpu=args.device == "cpu")
    dit = models / "diffusion_models" / f"bench_{fam.key}_h{args.hidden}_d{args.depth}_s{args.single}.safetensors"
    if not dit.exists():
        print(f"writing {dit.name} (random init) ...", flush=True)
        dit.parent.mkdir(parents=True, exist_ok=True)
        fam.write_model(dit, args.hidden, args.depth, args.single)
    vae = models / "vae" / f"bench_{fam.key}_vae_w{args.vae_width}.safetensors"
    if not vae.exists():
        print(f"writing {vae.name} (random init) ...", flush=True)
        vae.parent.mkdir(parents=True, exist_ok=True)
        fam.write_vae(vae, args.vae_width)
    pack = sys.modules[str(PACK_ROOT).replace(".", "_x_")]
    return handle, harness, pack, dit, vae


def model_dims(ctx_):
    """The FLOP model Apply Foveation's readout uses: the family adapter's, for this prompt."""
    fam = ctx_["family"]
    return ctx_["adapter_cls"](ctx_["mp"]).dims(torch.empty(1, fam.text_tokens, 0), {})


def radius_for_ratio(fc, ratio, grid):
    """Centered circle (1/2 periphery) whose layout keeps ~ratio of the tokens (bisection)."""
    lo, hi = 0.01, 1.5
    for _ in range(40):
        mid = (lo + hi) / 2
        layout = fc.TokenLayout(fc.rasterize(fc.Fovea((fc.Gaze(0.5, 0.5, mid),)), grid))
        lo, hi = (mid, hi) if layout.token_ratio < ratio else (lo, mid)
    return hi


class CountingVAE:
    """The VAE with its decode calls counted."""

    def __init__(self, vae):
        self.vae, self.calls = vae, 0

    def __getattr__(self, name):
        return getattr(self.vae, name)

    def decode(self, *a, **kw):
        self.calls += 1
        return self.vae.decode(*a, **kw)


# ----------------------------------------------------------------------------- forward
def bench_forward(ctx_, size):
    a, fc, fam, device, dtype = ctx_["args"], ctx_["fc"], ctx_["family"], ctx_["device"], ctx_["dtype"]
    shape = fam.latent_shape(*size)
    grid = fam.grid(fc, shape)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device, dtype)
    ctx = (torch.randn(1, fam.text_tokens, fam.context_dim, generator=g) * 0.5).to(device, dtype)
    sigma = torch.full((1,), 0.6, device=device)
    model = ctx_["mp"].model
    dims = model_dims(ctx_)

    def forward(lat, topts):  # what a sampler step calls: BaseModel.apply_model with the wrappers
        def call():
            with torch.inference_mode():
                return model.apply_model(lat, sigma, None, ctx, None, topts)
        return call

    native = forward(x, {})
    native_t = timed(native, device, a.repeats)
    native_ops = op_count(native, device)
    print(f"\n{'x'.join(map(str, size))} ({grid.tokens} image + {fam.text_tokens} text tokens): native forward "
          f"{native_t * 1e3:.1f} ms, "
          f"{kernels_of(native_ops)} kernels, host {host_time(native, device, a.repeats) * 1e3:.1f} ms", flush=True)
    print(f"{'who':5s} {'ratio':>6s} {'fov ms':>8s} {'speedup':>8s} {'ideal':>6s} {'effic':>6s} {'ceil ms':>8s} "
          f"{'vs ceil':>7s} {'kernels':>8s} {'ceil kern':>9s} {'host ms':>8s} {'ceil host':>9s} {'peak':>9s}")
    rows = []
    for target in [float(r) for r in a.ratios.split(",")]:
        radius = radius_for_ratio(fc, target, grid)
        fovea = fc.Fovea((fc.Gaze(0.5, 0.5, radius),))
        patch = ctx_["pack"].nodes.foveation.FoveationPatch(fovea, ctx_["adapter_cls"])
        ours = forward(x, {"wrappers": patch.install(ctx_["mp"]).wrappers})
        layout = patch.layout_for(grid)
        same = forward(torch.randn(fam.strip_shape(layout.n_tokens), generator=g).to(device, dtype), {})
        rows.append(dict(_row("ours", layout, dims, fc, ours, same, native_t, native_ops, device, a), radius=radius))
        if ctx_["port"] is not None:
            H, W = shape[-2:]
            mask = ctx_["port"].mask_for_ratio(target, H, W)
            call, n = ctx_["port"].forward_fn(model, x, sigma, ctx, mask)
            port_layout = fc.TokenLayout(ctx_["port"].level_map(mask.cpu()))
            assert port_layout.n_tokens == n
            same_p = forward(torch.randn(fam.strip_shape(n), generator=g).to(device, dtype), {})
            rows.append(_row("port", port_layout, dims, fc, call, same_p, native_t, native_ops, device, a))
    return {"size": size, "native_s": native_t, "native_ops": native_ops, "rows": rows}, grid


def _row(who, layout, dims, fc, call, same, native_t, native_ops, device, a):
    with PeakMemory(device) as mem:
        fov_t = timed(call, device, a.repeats)
    same_t = timed(same, device, a.repeats)
    ops, same_ops = op_count(call, device), op_count(same, device)
    host, same_host = host_time(call, device, a.repeats), host_time(same, device, a.repeats)
    ideal = fc.readout(layout, dims)["ideal_speedup"]
    r = {"who": who, "tokens": layout.n_tokens, "ratio": layout.token_ratio, "foveated_s": fov_t,
         "speedup": native_t / fov_t, "ideal": ideal, "efficiency": native_t / fov_t / ideal,
         "same_token_s": same_t, "vs_ceiling": same_t / fov_t, "ops": ops, "same_token_ops": same_ops,
         "native_ops": native_ops, "host_s": host, "same_token_host_s": same_host, "peak_bytes": mem.peak}
    print(f"{who:5s} {r['ratio']:6.1%} {fov_t * 1e3:8.1f} {r['speedup']:7.2f}x {ideal:5.2f}x {r['efficiency']:6.2f} "
          f"{same_t * 1e3:8.1f} {r['vs_ceiling']:7.2f} {kernels_of(ops):8d} {kernels_of(same_ops):9d} "
          f"{host * 1e3:8.1f} {same_host * 1e3:9.1f} {fmt_bytes(mem.peak):>9s}", flush=True)
    return r


# ----------------------------------------------------------------------------- decode
def bench_decode(ctx_, size, grid, radii):
    from comfy import sd, utils

    a, fc, fam, device = ctx_["args"], ctx_["fc"], ctx_["family"], ctx_["device"]
    vae = CountingVAE(sd.VAE(sd=utils.load_torch_file(str(ctx_["vae_path"]))))
    node = ctx_["pack"].nodes.latent_nodes.FoveatedDecode
    z = torch.randn(fam.latent_shape(*size), generator=torch.Generator().manual_seed(2)) * 0.5
    with torch.inference_mode(), PeakMemory(device) as mem_n:
        native_t = timed(lambda: vae.vae.decode(z), device, a.decode_repeats)
    print(f"\ndecode {'x'.join(map(str, size))}: VAE Decode {native_t:.3f} s, peak {fmt_bytes(mem_n.peak)}")
    print(f"{'ratio':>6s} {'fov decode s':>12s} {'speedup':>8s} {'VAE calls':>9s} {'decoded px':>10s} {'peak':>9s}")
    rows = []
    for radius in radii:
        fovea = fc.Fovea((fc.Gaze(0.5, 0.5, radius),))
        layout = fc.TokenLayout(fc.rasterize(fovea, grid))
        canvas = fc.LatentPacking(layout, fam.patch).canonicalize(z)
        with torch.inference_mode(), PeakMemory(device) as mem_f:
            fov_t = timed(lambda: node.execute({"samples": canvas}, vae, fovea, 2), device, a.decode_repeats)
        vae.calls = 0
        with torch.inference_mode():
            node.execute({"samples": canvas}, vae, fovea, 2)
        frac = fc.SplitDecoder(layout, fam.patch, 16, fovea.feather, 2).decoded_pixels()
        rows.append({"ratio": layout.token_ratio, "native_s": native_t, "foveated_s": fov_t,
                     "speedup": native_t / fov_t, "vae_calls": vae.calls, "decoded_pixels": frac,
                     "native_peak_bytes": mem_n.peak, "foveated_peak_bytes": mem_f.peak})
        print(f"{layout.token_ratio:6.1%} {fov_t:12.3f} {native_t / fov_t:7.2f}x {vae.calls:9d} {frac:10.2f} "
              f"{fmt_bytes(mem_f.peak):>9s}", flush=True)
    return {"size": size, "native_s": native_t, "rows": rows}


# ----------------------------------------------------------------------------- end to end
def bench_end_to_end(ctx_, size, grid, radii):
    """Warm end to end: sampling (--steps, euler, cfg 1) + decode; median after a warm-up."""
    import comfy.sample
    from comfy import sd, utils

    a, fc, fam, device, mp = ctx_["args"], ctx_["fc"], ctx_["family"], ctx_["device"], ctx_["mp"]
    vae = sd.VAE(sd=utils.load_torch_file(str(ctx_["vae_path"])))
    g = torch.Generator().manual_seed(3)
    cond = [[(torch.randn(1, fam.text_tokens, fam.context_dim, generator=g) * 0.5), {}]]
    latent = torch.zeros(fam.latent_shape(*size))
    noise = torch.randn(latent.shape, generator=g)
    print(f"\nend to end {'x'.join(map(str, size))}, warm: {a.steps} steps (euler, cfg 1) + decode, median of "
          f"{a.repeats}")
    print(f"{'who':16s} {'ratio':>6s} {'total s':>8s}")

    def sample(model):
        return comfy.sample.sample(model, noise, a.steps, 1.0, "euler", "simple", cond, cond, latent, seed=0)

    rows = []

    def run(who, ratio, fn):
        def call():
            with torch.inference_mode():  # as ComfyUI's executor runs nodes
                return fn()
        s = timed(call, device, a.repeats)
        rows.append({"who": who, "ratio": ratio, "total_s": s})
        print(f"{who:16s} {ratio:6.1%} {s:8.2f}", flush=True)

    def cached(model):  # core EasyCache, defaults but for the threshold
        from comfy_extras.nodes_easycache import EasyCacheNode

        return EasyCacheNode.execute(model, a.easycache, 0.15, 0.95, False).result[0]

    run("native", 1.0, lambda: vae.decode(sample(mp)))
    if a.easycache:
        run("native+EasyCache", 1.0, lambda: vae.decode(sample(cached(mp))))
    node = ctx_["pack"].nodes.latent_nodes.FoveatedDecode
    for radius in radii:
        fovea = fc.Fovea((fc.Gaze(0.5, 0.5, radius),))
        patched = ctx_["pack"].nodes.foveation.FoveationPatch(fovea, ctx_["adapter_cls"]).install(mp)
        ratio = fc.TokenLayout(fc.rasterize(fovea, grid)).token_ratio
        run("ours", ratio, lambda: node.execute({"samples": sample(patched)}, vae, fovea, 2))
        if a.easycache:
            run("ours+EasyCache", ratio, lambda: node.execute({"samples": sample(cached(patched))}, vae, fovea, 2))
        port = ctx_["port"]
        if port is not None:
            H, W = latent.shape[-2:]
            mask = port.mask_for_ratio(ratio, H, W)

            def port_run():
                z, fmask = port.sample(mp, cond, latent, mask, a.steps)
                return port.decode(z, vae, fmask)

            run("port", port.token_ratio(mask, H, W), port_run)
    return {"size": size, "rows": rows}


# ----------------------------------------------------------------------------- progressive
def bench_progressive(ctx_, size, grid):
    """Progressive Resolution alone and progressive foveation vs native (and the official
    SamplerSPEED with --speed): warm sampling time and the FLOP-ideal speedup of the whole
    schedule (every stage's tokens times its steps)."""
    import comfy.samplers

    a, fc, fam, device, mp, pack = ctx_["args"], ctx_["fc"], ctx_["family"], ctx_["device"], ctx_["mp"], ctx_["pack"]
    g = torch.Generator().manual_seed(4)
    cond = [[(torch.randn(1, fam.text_tokens, fam.context_dim, generator=g) * 0.5), {}]]
    latent = torch.zeros(fam.latent_shape(*size))
    noise = torch.randn(latent.shape, generator=g)
    sigmas = comfy.samplers.calculate_sigmas(mp.get_model_object("model_sampling"), "simple", a.steps)
    dims = model_dims(ctx_)
    scales = (0.5, 1.0)
    radius = radius_for_ratio(fc, a.spd_ratio, grid)
    fovea = fc.Fovea((fc.Gaze(0.5, 0.5, radius),))
    node = pack.nodes.progressive_nodes.ProgressiveResolution
    preset = "FLUX" if fam.key == "flux2" else "Wan 2.1"

    def ideal(final):
        """FLOP-ideal speedup of the schedule whose last stage is `final` (a level map)."""
        A, beta = node_presets[preset]["A"], node_presets[preset]["beta"]
        plan = fc.plan_switches(sigmas, scales, fc.switch_times(scales, a.spd_delta, latent.shape[-2:], A, beta))
        stages = [fc.TokenLayout(m) for m in fc.stage_level_maps(final, scales)]
        steps = [len(st) - 1 for st in plan.stages]
        native = fc.step_flops(dims, None, grid.tokens) * sum(steps)
        return native / sum(n * fc.step_flops(dims, lay) for lay, n in zip(stages, steps)), steps

    node_presets = pack.nodes.progressive_nodes.PRESETS
    full = torch.zeros((grid.frames, grid.height, grid.width), dtype=torch.long)
    rows = []
    print(f"\nprogressive {'x'.join(map(str, size))}: {a.steps} steps (euler, simple), scales 0.5 -> 1, delta "
          f"{a.spd_delta}, median of {a.repeats}")
    print(f"{'who':24s} {'sampling s':>10s} {'speedup':>8s} {'ideal':>6s} {'steps/stage':>12s}")

    def run(who, model, sampler, ideal_steps):
        def call():
            guider = comfy.samplers.CFGGuider(model)
            guider.set_conds(cond, cond)
            guider.set_cfg(1.0)
            with torch.inference_mode():
                return guider.sample(noise, latent, sampler, sigmas, seed=0)
        t = timed(call, device, a.repeats)
        base = rows[0]["seconds"] if rows else t
        rows.append({"who": who, "seconds": t, "speedup": base / t, "ideal": ideal_steps[0],
                     "steps": ideal_steps[1]})
        print(f"{who:24s} {t:10.2f} {base / t:7.2f}x {ideal_steps[0]:5.2f}x {str(ideal_steps[1]):>12s}", flush=True)

    euler = comfy.samplers.sampler_object("euler")
    run("native", mp, euler, (1.0, [a.steps]))
    prog = node.execute(mp, "0.5, 1", "power law", a.spd_delta, preset, "0.85", "dct", "fast", 0, 1.0, 1.0).result[0]
    run("progressive", prog, euler, ideal(full))
    pf = node.execute(mp, "0.5, 1", "power law", a.spd_delta, preset, "0.85", "dct", "fast", 0, 1.0, 1.0,
                      fovea=fovea).result[0]
    layout = fc.TokenLayout(fc.rasterize(fovea, grid))
    run(f"progressive foveation {layout.token_ratio:.0%}", pf, euler, ideal(layout.level_map))
    fov = pack.nodes.foveation.FoveationPatch(fovea, ctx_["adapter_cls"]).install(mp)
    run(f"foveation alone {layout.token_ratio:.0%}", fov, euler,
        (fc.readout(layout, dims)["ideal_speedup"], [a.steps]))
    if a.speed:
        ctx_["harness"].load_custom_node_dir(ctx_["handle"], a.speed)
        speed = next(m for k, m in sys.modules.items() if k.endswith("speed_sampler"))
        official = speed.SamplerSPEED.execute("euler", "dct", "delta_optimal", "flux" if fam.key == "flux2" else "wan21",
                                              "0.5,1.0", a.spd_delta, "0.85", 1.0, 1.0, 0).result[0]
        run("official SamplerSPEED", mp, official, ideal(full))
    return {"size": size, "rows": rows}


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI checkout (or COMFYUI_PATH)")
    ap.add_argument("--family", default="flux2", choices=sorted(FAMILIES), help="model geometry")
    ap.add_argument("--sizes", default="1024", help="flux2: square image sides in px, comma separated")
    ap.add_argument("--video", default="832x480x81", help="wan21: WIDTHxHEIGHTxFRAMES (paper: 832x480x81)")
    ap.add_argument("--hidden", type=int, help="width (default: the model's, klein 3072, Wan 1.3B 1536)")
    ap.add_argument("--depth", type=int, default=1, help="double blocks (klein 4B has 5) / Wan blocks (1.3B: 30)")
    ap.add_argument("--single", type=int, default=1, help="single blocks (klein 4B has 20; flux2 only)")
    ap.add_argument("--ratios", default="0.26,0.31,0.40,0.48,0.60", help="target token ratios")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats after one warm-up (median)")
    ap.add_argument("--decode-repeats", type=int, default=3, help="timed decode repeats after one warm-up")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--vae-width", type=int, help="VAE width (default: real, FLUX.2 decoder 128, Wan 2.1 96)")
    ap.add_argument("--no-decode", dest="decode", action="store_false", help="skip the decode timing")
    ap.add_argument("--no-e2e", dest="e2e", action="store_false", help="skip the end-to-end timing")
    ap.add_argument("--steps", type=int, default=4, help="sampling steps end to end (klein distilled: 4)")
    ap.add_argument("--easycache", type=float, default=0.0,
                    help="also end to end with core EasyCache at this reuse threshold (e.g. 0.2)")
    ap.add_argument("--port", help="checkout of ruwwww/ComfyUI-Foveated_Diffusion to compare against")
    ap.add_argument("--progressive", action="store_true", help="also time Progressive Resolution (SPD) schedules")
    ap.add_argument("--spd-delta", type=float, default=0.05, help="the progressive schedule's delta")
    ap.add_argument("--spd-ratio", type=float, default=0.43, help="token ratio of the progressive foveation fovea")
    ap.add_argument("--speed", help="the official SPD ComfyUI node folder (speed/comfyui) to compare against")
    ap.add_argument("--training", action="store_true",
                    help="time LoRA training steps, foveated vs full resolution, instead of inference")
    ap.add_argument("--train-steps", type=int, default=4, help="training steps per run; the first is a warm-up")
    ap.add_argument("--no-checkpointing", dest="checkpointing", action="store_false",
                    help="training keeps activations instead of recomputing each block")
    ap.add_argument("--compile", action="store_true", help="time torch.compile (TorchCompileModel) instead")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend for --compile")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "foveated-bench"))
    ap.add_argument("--json", help="write all figures to this file")
    a = ap.parse_args(argv)
    if not a.comfyui:
        ap.error("set COMFYUI_PATH or --comfyui to a ComfyUI checkout")
    fam = FAMILIES[a.family]
    a.hidden = a.hidden or fam.hidden
    a.vae_width = a.vae_width or (128 if a.family == "flux2" else 96)
    if a.port and a.family != "flux2":
        ap.error("the existing port supports FLUX.2 only")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
             "auto": torch.float32 if a.device == "cpu" else torch.bfloat16}[a.dtype]
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    handle, harness, pack, dit_path, vae_path = boot(a, fam, workdir)
    from comfy import model_management, sd

    device = model_management.get_torch_device()
    mp = sd.load_diffusion_model(str(dit_path), model_options={"dtype": dtype})
    model_management.load_models_gpu([mp], force_full_load=True)
    ctx = {"args": a, "family": fam, "fc": pack.fov_core, "pack": pack, "mp": mp, "dm": mp.model.diffusion_model,
           "adapter_cls": pack.nodes.adapters.adapter_for(mp), "device": device, "dtype": dtype,
           "vae_path": vae_path, "port": Port(harness, handle, a.port) if a.port else None,
           "harness": harness, "handle": handle}
    info = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
                       f"{torch.__version__}, " + (torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"),
            "config": {"family": fam.name, "hidden": a.hidden, "depth": a.depth, "single": a.single,
                       "dtype": str(dtype), "attention": "pytorch SDPA", "text_tokens": fam.text_tokens}}
    blocks = f"{a.depth} double + {a.single} single blocks" if a.family == "flux2" else f"{a.depth} blocks"
    print(f"{fam.name} geometry at width {a.hidden}, {blocks}, {dtype}, {info['machine']}, PyTorch SDPA attention")
    if a.family == "flux2":
        sizes = [(int(s), int(s), 1) for s in a.sizes.split(",")]
    else:
        sizes = [tuple(int(v) for v in a.video.split("x"))]
    if a.training:
        info["training"] = bench_training(ctx, sizes[0])
    elif a.compile:
        ratio = float(a.ratios.split(",")[0])
        grid = fam.grid(pack.fov_core, fam.latent_shape(*sizes[0]))
        info["compile"] = bench_compile(ctx, sizes[0], radius_for_ratio(pack.fov_core, ratio, grid))
    else:
        info["forward"], grids = zip(*[bench_forward(ctx, s) for s in sizes])
        radii = [r["radius"] for r in info["forward"][0]["rows"] if r["who"] == "ours"]
        if a.decode:
            info["decode"] = bench_decode(ctx, sizes[0], grids[0], radii)
        if a.e2e:
            info["end_to_end"] = bench_end_to_end(ctx, sizes[0], grids[0], radii)
        if a.progressive:
            info["progressive"] = [bench_progressive(ctx, s, g) for s, g in zip(sizes, grids)]
    if a.json:
        Path(a.json).write_text(json.dumps(info, indent=2, default=float))
        print(f"\nwrote {a.json}")
    return info


if __name__ == "__main__":
    main()
