"""Benchmark: native vs foveated forwards on ComfyUI's real FLUX.2 architecture.

    COMFYUI_PATH=/path/to/ComfyUI python tests/benchmark.py [--port PATH] [--json out.json]

FLUX.2 [klein] 4B geometry (hidden 3072, 24 heads, SwiGLU MLP 9216, 512 text tokens of
width 7680) at full width and reduced depth (default 1 double + 1 single block), random
initialised, written in the real checkpoint format and loaded by ComfyUI's own loader;
1024x1024 image = 4096 image tokens. Native and foveated forwards run side by side in
one process. Attention is PyTorch SDPA (ComfyUI's --use-pytorch-cross-attention), which
is FLOP-faithful; ComfyUI's default CPU attention (sub-quadratic) is not.

Per token ratio it prints: native time, foveated time, measured speedup, FLOP-ideal
speedup (analytic linear + attention FLOPs of both layouts, fov_core.flops) and
efficiency = measured / ideal; the share of a step spent in pack/unpack and layout work;
peak memory of both forwards. Then decode time: Foveated Decode vs a native VAE decode
(FLUX.2 VAE at its real decoder width).

--port PATH adds the existing ComfyUI port (ruwwww/ComfyUI-Foveated_Diffusion, a checkout
you provide; it is loaded as a custom node in the same process): its forwards at the same
token ratios, and end-to-end times (sampling + decode) of native, ours and the port.
"""
from __future__ import annotations

import argparse
import json
import math
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

KLEIN_4B = dict(hidden=3072, context_in_dim=7680, text_tokens=512)


# ----------------------------------------------------------------------------- memory
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


def timed(fn, device, repeats):
    def sync():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    fn()  # warm-up (layout build, allocator, kernels)
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ----------------------------------------------------------------------------- setup
def boot(args, workdir: Path):
    from comfy_fixtures import harness, tiny_models

    models = workdir / "models"
    handle = harness.boot_comfyui(args.comfyui, models, workdir / "output", [PACK_ROOT],
                                  cpu=args.device == "cpu", attention="pytorch")
    dit = models / "diffusion_models" / f"bench_flux2_klein4b_d{args.depth}_s{args.single}.safetensors"
    if not dit.exists():
        print(f"writing {dit.name} (random init, full width) ...", flush=True)
        tiny_models.write_flux2_dit(dit, hidden=KLEIN_4B["hidden"], context_in_dim=KLEIN_4B["context_in_dim"],
                                    depth=args.depth, depth_single=args.single)
    vae = models / "vae" / "bench_flux2_vae_full_decoder.safetensors"
    if args.decode and not vae.exists():
        print(f"writing {vae.name} (random init, real decoder width 128) ...", flush=True)
        tiny_models.write_flux2_vae(vae, decoder_ch=128)
    pack = sys.modules[str(PACK_ROOT).replace(".", "_x_")]
    return handle, harness, pack, dit, vae


def load_model(path, device, dtype):
    from comfy import model_management, sd

    mp = sd.load_diffusion_model(str(path), model_options={"dtype": dtype})
    model_management.load_models_gpu([mp], force_full_load=True)
    return mp


def radius_for_ratio(fc, ratio, grid, policy):
    """Centered circle whose layout keeps ~ratio of the tokens (bisection)."""
    lo, hi = 0.01, 1.5
    for _ in range(40):
        mid = (lo + hi) / 2
        layout = fc.TokenLayout(fc.rasterize(fc.Fovea((fc.Gaze(0.5, 0.5, mid),), policy), grid))
        if layout.token_ratio < ratio:
            lo = mid
        else:
            hi = mid
    return hi


def fmt_bytes(n):
    return "n/a" if not isinstance(n, (int, float)) or math.isnan(n) else f"{n / 2**30:.2f} GiB"


# ----------------------------------------------------------------------------- the port
class Port:
    """The existing ComfyUI port, loaded as a custom node from a checkout (not vendored)."""

    def __init__(self, harness, handle, path):
        path = Path(path).resolve()
        harness.load_custom_node_dir(handle, path)
        self.module = sys.modules[str(path).replace(".", "_x_")]
        self.tok = sys.modules[self.module.__name__ + ".foveated_tokenizer"]
        self.sampler = self.module.NODE_CLASS_MAPPINGS["FoveatedKSampler"]()
        self.decoder = self.module.NODE_CLASS_MAPPINGS["FoveatedVAEDecode"]()

    def mask_for_ratio(self, ratio, h, w):
        lo, hi = 0.01, 2.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if self.token_ratio(self.tok.build_fovea_mask(h, w, 0.0, 0.0, mid, "circular"), h, w) < ratio:
                lo = mid
            else:
                hi = mid
        return self.tok.build_fovea_mask(h, w, 0.0, 0.0, hi, "circular")

    @staticmethod
    def level_map(mask):
        blocks = torch.nn.functional.max_pool2d(mask.float()[None, None], 2)[0, 0] > 0
        hr = blocks.repeat_interleave(2, 0).repeat_interleave(2, 1)
        return (~hr).long()[None]

    def token_ratio(self, mask, h, w):
        lm = self.level_map(mask)
        return (int((lm == 0).sum()) + int((lm == 1).sum()) // 4) / (h * w)


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI checkout (or COMFYUI_PATH)")
    ap.add_argument("--size", type=int, default=1024, help="image side in px (default 1024)")
    ap.add_argument("--depth", type=int, default=1, help="double blocks (klein 4B has 5)")
    ap.add_argument("--single", type=int, default=1, help="single blocks (klein 4B has 20)")
    ap.add_argument("--ratios", default="0.26,0.31,0.40,0.48,0.60", help="target token ratios")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats after one warm-up (median)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--no-decode", dest="decode", action="store_false", help="skip the decode timing")
    ap.add_argument("--port", help="checkout of ruwwww/ComfyUI-Foveated_Diffusion to compare against")
    ap.add_argument("--steps", type=int, default=2, help="sampling steps of the end-to-end comparison")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "foveated-bench"))
    ap.add_argument("--json", help="write all figures to this file")
    args = ap.parse_args(argv)
    if not args.comfyui:
        ap.error("set COMFYUI_PATH or --comfyui to a ComfyUI checkout")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
             "auto": torch.float32 if args.device == "cpu" else torch.bfloat16}[args.dtype]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    handle, harness, pack, dit_path, vae_path = boot(args, workdir)
    fc = pack.fov_core
    from comfy import model_management

    device = model_management.get_torch_device()
    mp = load_model(dit_path, device, dtype)
    dm = mp.model.diffusion_model
    adapter_cls = pack.nodes.adapters.adapter_for(mp)
    H = W = args.size // 16
    grid = fc.TokenGrid(1, H, W)
    n_txt = KLEIN_4B["text_tokens"]
    dims = fc.DiTDims(hidden=dm.params.hidden_size, mlp_hidden=int(dm.params.hidden_size * dm.params.mlp_ratio),
                      blocks=dm.params.depth + dm.params.depth_single_blocks, text_tokens=n_txt, gated_mlp=True)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 128, H, W, generator=g).to(device, dtype)
    ctx = (torch.randn(1, n_txt, KLEIN_4B["context_in_dim"], generator=g) * 0.5).to(device, dtype)
    t = torch.full((1,), 0.6, device=device)

    def forward(topts):
        with torch.inference_mode():
            return dm(x, t, ctx, None, None, None, None, topts)

    info = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   + (torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"),
        "config": {"size": args.size, "depth": args.depth, "single": args.single, "dtype": str(dtype),
                   "attention": "pytorch SDPA", "image_tokens": H * W, "text_tokens": n_txt},
        "rows": [],
    }
    print(f"\nFLUX.2 [klein] 4B geometry, {args.depth} double + {args.single} single blocks, "
          f"{args.size}x{args.size} ({H * W} image + {n_txt} text tokens), {dtype}, {info['machine']}, "
          f"PyTorch SDPA attention\n", flush=True)

    with PeakMemory(device) as mem_native:
        native_t = timed(lambda: forward({}), device, args.repeats)
    info["native"] = {"seconds": native_t, "peak_bytes": mem_native.peak}
    print(f"native forward: {native_t:.3f} s, peak {fmt_bytes(mem_native.peak)}", flush=True)

    header = (f"{'who':6s} {'tokens':>13s} {'ratio':>6s} {'native s':>9s} {'fov s':>8s} {'speedup':>8s} "
              f"{'ideal':>6s} {'effic.':>6s} {'pack+layout':>11s} {'peak mem':>10s}")
    print(header)
    port = Port(harness, handle, args.port) if args.port else None
    for target in [float(r) for r in args.ratios.split(",")]:
        policy = fc.LevelPolicy.half()
        radius = radius_for_ratio(fc, target, grid, policy)
        fovea = fc.Fovea((fc.Gaze(0.5, 0.5, radius),), policy)
        patch = pack.nodes.foveation.FoveationPatch(fovea, adapter_cls)
        patched = patch.install(mp)
        t0 = time.perf_counter()
        layout = patch.layout_for(grid)
        cold_layout_s = time.perf_counter() - t0
        packing = patch.packing_for(layout, 1)
        topts = {"wrappers": patched.wrappers}
        with PeakMemory(device) as mem:
            fov_t = timed(lambda: forward(topts), device, args.repeats)
        # pack/unpack and per-step layout work (cache hits), on the real tensors
        strip = packing.pack_strip(x)
        reps = 20

        def overhead():
            patch.layout_for(grid)
            layout.cached(("plan", n_txt, 0), lambda: None)
            s = packing.pack_strip(x)
            packing.unpack_strip(s)

        over_t = timed(lambda: [overhead() for _ in range(reps)], device, 1) / reps
        ideal = fc.readout(layout, dims)["ideal_speedup"]
        row = {"who": "ours", "target": target, "radius": radius, "tokens": layout.n_tokens,
               "ratio": layout.token_ratio, "native_s": native_t, "foveated_s": fov_t,
               "speedup": native_t / fov_t, "ideal": ideal, "efficiency": native_t / fov_t / ideal,
               "overhead_share": over_t / fov_t, "cold_layout_s": cold_layout_s, "peak_bytes": mem.peak}
        info["rows"].append(row)
        print(f"{'ours':6s} {layout.n_tokens:6d}/{H * W:6d} {layout.token_ratio:6.1%} {native_t:9.3f} {fov_t:8.3f} "
              f"{row['speedup']:7.2f}x {ideal:5.2f}x {row['efficiency']:6.2f} {row['overhead_share']:10.2%} "
              f"{fmt_bytes(mem.peak):>10s}", flush=True)
        del strip
        if port is not None:
            row_p = bench_port_forward(port, fc, dm, mp, x, ctx, t, target, H, W, dims, native_t, device, args)
            info["rows"].append(row_p)

    if args.decode:
        info["decode"] = bench_decode(pack, fc, vae_path, H, W, device, args, info)
    if port is not None:
        info["end_to_end"] = bench_end_to_end(pack, fc, port, mp, adapter_cls, vae_path, H, W, ctx, device, args)
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2, default=float))
        print(f"\nwrote {args.json}")
    return info


def bench_port_forward(port, fc, dm, mp, x, ctx, t, target, H, W, dims, native_t, device, args):
    """The port's forward: its DIFFUSION_MODEL wrapper on its packed token sequence."""
    import comfy.patcher_extension as pe_ext

    mask = port.mask_for_ratio(target, H, W)
    mod = sys.modules[port.module.__name__ + ".nodes"]
    spatial = x.permute(0, 2, 3, 1).reshape(1, H, W, -1)  # FLUX.2: patch 1, tokens = latent pixels
    seq, idx = port.tok.build_foveated_tokens(spatial, mask.to(x.device), 2)
    topts = {"fov_state": {"mask": mask.to(x.device), "lr_factor": 2, "fov_indices": idx, "h_len": H, "w_len": W,
                           "C_patched": spatial.shape[-1]}}
    pe_ext.add_wrapper_with_key(pe_ext.WrappersMP.DIFFUSION_MODEL, "foveated_diffusion",
                                mod._foveated_diffusion_model_wrapper, topts, is_model_options=False)

    def forward():
        with torch.inference_mode():
            return dm(seq, t, ctx, None, None, None, None, topts)

    with PeakMemory(device) as mem:
        fov_t = timed(forward, device, args.repeats)
    layout = fc.TokenLayout(port.level_map(mask.cpu()))
    assert layout.n_tokens == seq.shape[1], (layout.n_tokens, seq.shape)
    ideal = fc.readout(layout, dims)["ideal_speedup"]
    row = {"who": "port", "target": target, "tokens": layout.n_tokens, "ratio": layout.token_ratio,
           "native_s": native_t, "foveated_s": fov_t, "speedup": native_t / fov_t, "ideal": ideal,
           "efficiency": native_t / fov_t / ideal, "peak_bytes": mem.peak}
    print(f"{'port':6s} {layout.n_tokens:6d}/{H * W:6d} {layout.token_ratio:6.1%} {native_t:9.3f} {fov_t:8.3f} "
          f"{row['speedup']:7.2f}x {ideal:5.2f}x {row['efficiency']:6.2f} {'':>11s} {fmt_bytes(mem.peak):>10s}",
          flush=True)
    return row


def _canvas_for(pack, fc, layout, device):
    packing = fc.LatentPacking(layout, 1)
    T, Hl, Wl = packing.latent_shape
    z = packing.noise((1, 128, Hl, Wl), generator=torch.Generator().manual_seed(1))
    return z.to(device)


def bench_decode(pack, fc, vae_path, H, W, device, args, info):
    from comfy import sd, utils

    vae = sd.VAE(sd=utils.load_torch_file(str(vae_path)))
    out = {"rows": []}
    print(f"\n{'decode':8s} {'ratio':>6s} {'native s':>9s} {'foveated s':>10s} {'speedup':>8s} {'decoded px':>10s} "
          f"{'native peak':>11s} {'fov peak':>10s}")
    z = torch.randn(1, 128, H, W, generator=torch.Generator().manual_seed(2)) * 0.5
    with PeakMemory(device) as mem_n:
        native_t = timed(lambda: _decode(vae, z), device, 1)
    out["native_s"] = native_t
    for row in info["rows"]:
        if row["who"] != "ours":
            continue
        fovea = fc.Fovea((fc.Gaze(0.5, 0.5, row["radius"]),), fc.LevelPolicy.half())
        node = pack.nodes.latent_nodes.FoveatedDecode
        layout = fc.TokenLayout(fc.rasterize(fovea, fc.TokenGrid(1, H, W)))
        canvas = fc.LatentPacking(layout, 1).canonicalize(z)
        with PeakMemory(device) as mem_f:
            fov_t = timed(lambda: _fdecode(node, canvas, vae, fovea), device, 1)
        frac = fc.SplitDecoder(layout, 1, 16, fovea.feather, 2).decoded_pixels()
        out["rows"].append({"ratio": row["ratio"], "native_s": native_t, "foveated_s": fov_t,
                            "speedup": native_t / fov_t, "decoded_pixels": frac,
                            "native_peak_bytes": mem_n.peak, "foveated_peak_bytes": mem_f.peak})
        print(f"{'ours':8s} {row['ratio']:6.1%} {native_t:9.2f} {fov_t:10.2f} {native_t / fov_t:7.2f}x {frac:10.2f} "
              f"{fmt_bytes(mem_n.peak):>11s} {fmt_bytes(mem_f.peak):>10s}", flush=True)
    return out


def _decode(vae, z):
    with torch.inference_mode():
        return vae.decode(z)


def _fdecode(node, canvas, vae, fovea):
    with torch.inference_mode():
        return node.execute({"samples": canvas}, vae, fovea, 2)


def bench_end_to_end(pack, fc, port, mp, adapter_cls, vae_path, H, W, ctx, device, args):
    """Sampling (args.steps steps, euler, cfg 1) + decode: native, ours, the port."""
    import comfy.sample
    from comfy import sd, utils

    vae = sd.VAE(sd=utils.load_torch_file(str(vae_path))) if args.decode else None
    cond = [[ctx.float().cpu(), {}]]
    latent = torch.zeros(1, 128, H, W)
    grid = fc.TokenGrid(1, H, W)
    rows = []
    print(f"\nend to end: {args.steps} sampling steps (euler, cfg 1) + decode")
    print(f"{'who':6s} {'ratio':>6s} {'sampling s':>10s} {'decode s':>9s} {'total s':>8s}")

    def run(label, ratio, sample_fn, decode_fn):
        t0 = time.perf_counter()
        with torch.inference_mode():
            z = sample_fn()
        t1 = time.perf_counter()
        if decode_fn is not None:
            with torch.inference_mode():
                decode_fn(z)
        t2 = time.perf_counter()
        rows.append({"who": label, "ratio": ratio, "sampling_s": t1 - t0, "decode_s": t2 - t1, "total_s": t2 - t0})
        print(f"{label:6s} {ratio:6.1%} {t1 - t0:10.2f} {t2 - t1:9.2f} {t2 - t0:8.2f}", flush=True)

    def ksample(model):
        noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
        return comfy.sample.sample(model, noise, args.steps, 1.0, "euler", "simple", cond, cond, latent, seed=0)

    run("native", 1.0, lambda: ksample(mp), (lambda z: vae.decode(z)) if vae else None)
    for target in [float(r) for r in args.ratios.split(",")]:
        policy = fc.LevelPolicy.half()
        fovea = fc.Fovea((fc.Gaze(0.5, 0.5, radius_for_ratio(fc, target, grid, policy)),), policy)
        patched = pack.nodes.foveation.FoveationPatch(fovea, adapter_cls).install(mp)
        layout = fc.TokenLayout(fc.rasterize(fovea, grid))
        dec = pack.nodes.latent_nodes.FoveatedDecode
        run("ours", layout.token_ratio, lambda: ksample(patched),
            (lambda z: dec.execute({"samples": z}, vae, fovea, 2)) if vae else None)
        mask = port.mask_for_ratio(target, H, W)
        fmask = {"mask": mask, "h": H, "w": W, "lr_factor": 2}
        run("port", port.token_ratio(mask, H, W),
            lambda: port.sampler.sample(mp, cond, cond, {"samples": latent}, fmask, 0, args.steps, 1.0, "euler",
                                        "simple", 1.0, "direct")[0]["samples"],
            (lambda z: port.decoder.decode({"samples": z}, vae, fmask, "soft_gaussian", 16.0)) if vae else None)
    return rows


if __name__ == "__main__":
    main()
