"""Progressive resolution as a MODEL patch: Spectral Progressive Diffusion (SPD) for every
sampler node, and progressive foveation.

The sampler's latent keeps its full size; a low-resolution stage is an all-coarse token
layout (or, with a fovea, the fovea's layout coarsened to the stage), so the foveation
machinery (foveation.py, the family adapters) runs every stage. A SAMPLER_SAMPLE wrapper
runs the sigma schedule in segments, one per stage, as the official SamplerSPEED does:
between segments the canvas is switched (fov_core.progressive.switch_canvas: spectral
expansion, time remap, forward noising of the tokens that stay coarse) and the switch
step's sigma becomes t~. Each segment is a fresh call of the sampler, so multistep
solvers restart at a switch.

The segments go through ComfyUI's own KSAMPLER.sample, whose flow-matching noise scaling
(sigma * noise + (1 - sigma) * latent) and inverse scaling (latent / (1 - sigma)) frame
each segment: a segment starts from a state x by passing it as both noise and latent,
and its result is multiplied back by (1 - sigma) of its last step.

Noise: "fast" draws the expansion noise on the latent's device from the sampler's seed;
"SamplerSPEED" draws it as the official sampler does (numpy, its own seed) and starts
from the DCT truncation of the full-resolution noise, so the same seed, base sampler,
scales, delta and transform give the official sampler's result (deterministic samplers;
ancestral ones draw their noise for the canvas' size).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import torch

import comfy.model_sampling
import comfy.patcher_extension as pe

from ..fov_core import (LatentPacking, TokenGrid, TokenLayout, compatible_expansion_noise, dct_downscale,
                        expansion_noise, plan_switches, readout, stage_level, stage_level_maps, switch_canvas,
                        switch_times, validate_scales)
from ..fov_core import rasterize as fov_rasterize
from .foveation import RUN_KEY, FoveationPatch

log = logging.getLogger("foveated")
COMPATIBLE = "SamplerSPEED"


@dataclass(frozen=True)
class Schedule:
    scales: tuple  # powers of two ending at 1, coarsest first
    A: float = 203.615097  # power law P(w) = A w^-beta of the model's latents
    beta: float = 1.915461
    delta: float = 0.05  # tolerance of the power-law switch times
    sigmas: Optional[tuple] = None  # manual switch sigmas (instead of the power law)
    transform: str = "dct"
    noise: str = "fast"  # or COMPATIBLE
    seed: int = 0  # the expansion noise seed of the COMPATIBLE mode

    def __post_init__(self):
        object.__setattr__(self, "scales", validate_scales(self.scales))
        for s in self.scales:
            stage_level(s)

    def times(self, latent_hw) -> list:
        if self.sigmas is not None:
            return list(self.sigmas)
        return switch_times(self.scales, self.delta, latent_hw, self.A, self.beta)


class ProgressivePatch(FoveationPatch):
    """Stages of a schedule; the last stage is the fovea's layout (all full resolution
    without a fovea)."""

    def __init__(self, schedule: Schedule, fovea, adapter_cls):
        super().__init__(fovea, adapter_cls)
        self.schedule = schedule
        self._stages = {}

    def stages(self, grid: TokenGrid) -> list:
        if grid not in self._stages:
            final = (fov_rasterize(self.fovea, grid) if self.fovea is not None
                     else torch.zeros((grid.frames, grid.height, grid.width), dtype=torch.long))
            self._stages = {grid: [TokenLayout(m) for m in stage_level_maps(final, self.schedule.scales)]}
        return self._stages[grid]

    def layout_for(self, grid: TokenGrid, stage: int = -1) -> TokenLayout:
        return self.stages(grid)[stage]

    def start(self, noise, packing):
        return noise  # the SAMPLER_SAMPLE wrapper starts the first stage (it may need the full noise)

    def wrappers(self, adapter) -> dict:
        return dict(super().wrappers(adapter), **{pe.WrappersMP.SAMPLER_SAMPLE: _SamplerSample(self, adapter)})


class _SamplerSample:
    """KSAMPLER.sample(model_wrap, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)."""

    def __init__(self, patch: ProgressivePatch, adapter):
        self.patch, self.adapter = patch, adapter

    def __call__(self, executor, model_wrap, sigmas, extra_args, callback, noise, latent_image=None,
                 denoise_mask=None, disable_pbar=False):
        sched = self.patch.schedule
        if denoise_mask is not None:
            raise ValueError("Progressive Resolution does not support inpainting masks yet; remove the noise mask or "
                             "use Apply Foveation instead.")
        if not isinstance(model_wrap.inner_model.model_sampling, comfy.model_sampling.CONST):
            raise ValueError("Progressive Resolution needs a flow-matching model (FLUX, Chroma, Wan); this model "
                             "samples otherwise.")
        grid, p = self.adapter.token_grid(tuple(noise.shape))
        stages = self.patch.stages(grid)
        plan = plan_switches(sigmas, sched.scales, sched.times(noise.shape[-2:]))
        packs = [self.patch.packing_for(layout, p) for layout in stages]
        run = extra_args["model_options"]["transformer_options"].get(RUN_KEY)
        self._log(model_wrap, plan, stages, run)
        x, latent = self._first(noise, latent_image, packs[0])
        n_total, offset = len(sigmas) - 1, 0
        for i, seg in enumerate(plan.stages):
            if run is not None:
                run.stage = i
            if len(seg) > 1:
                cb = None if callback is None else (lambda s, x0, xi, _t, o=offset: callback(s + o, x0, xi, n_total))
                x = executor(model_wrap, seg, extra_args, cb, x, latent, None, disable_pbar)
                if i < len(plan.switches):  # undo the inverse noise scaling of a segment that ends at t > 0
                    x = x * (1.0 - seg[-1].to(x))
                offset += len(seg) - 1
            if i < len(plan.switches):
                sw = plan.switches[i]
                x, _ = switch_canvas(x, packs[i], packs[i + 1], sched.scales[i], sched.scales[i + 1], sw.t,
                                     self._expansion_noise(x, stage_level(sched.scales[i]), sched.scales[i + 1], i,
                                                           extra_args),
                                     torch.randn(x.shape, generator=self._generator(extra_args, 100 + i),
                                                 dtype=torch.float32).to(x),
                                     sched.transform)
                latent = x
        if run is not None:
            run.stage = -1
        return x

    def _first(self, noise, latent_image, packing: LatentPacking):
        """(noise, latent) of the first segment: the coarsest stage's canvas."""
        k = stage_level(self.patch.schedule.scales[0])
        if self.patch.schedule.noise == COMPATIBLE and k:  # the official sampler truncates the DCT
            size = (noise.shape[-2] >> k, noise.shape[-1] >> k)
            up = lambda z: dct_downscale(z, size).repeat_interleave(2**k, -2).repeat_interleave(2**k, -1)  # noqa: E731
            return packing.canonicalize(up(noise)), packing.canonicalize(up(latent_image.to(noise)))
        return packing.canonicalize(noise), packing.canonicalize(latent_image.to(noise))

    def _generator(self, extra_args, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(extra_args.get("seed", 0) or 0) + 7919 * salt)

    def _expansion_noise(self, x, k_from: int, scale_to: float, i: int, extra_args):
        low_shape = tuple(x.shape[:-2]) + (x.shape[-2] >> k_from, x.shape[-1] >> k_from)
        size = (x.shape[-2] >> stage_level(scale_to), x.shape[-1] >> stage_level(scale_to))
        sched = self.patch.schedule
        if sched.noise == COMPATIBLE:
            return compatible_expansion_noise(low_shape, size, sched.seed, i + 1, sched.transform, device=x.device)
        g = self._generator(extra_args, i + 1)
        return expansion_noise(torch.empty(low_shape), size, generator=g).to(x.device)

    def _log(self, model_wrap, plan, stages, run):
        if run is None or run.logged:
            return
        run.logged = True
        cond = (getattr(model_wrap, "conds", None) or {}).get("positive") or [{}]
        dims = self.adapter.dims(cond[0].get("cross_attn"), {})
        steps = [len(s) - 1 for s in plan.stages]
        parts = [f"{100 * layout.token_ratio:.0f}% tokens x {n} steps" for layout, n in zip(stages, steps)]
        text = f"stages {', '.join(parts)}"
        if dims is not None:
            native = readout(TokenLayout(torch.zeros(stages[-1].shape, dtype=torch.long)), dims)["native_tflops"]
            cost = sum(n * readout(layout, dims)["foveated_tflops"] for layout, n in zip(stages, steps))
            text += f", FLOP-ideal speedup {native * sum(steps) / max(cost, 1e-12):.2f}x"
        switches = ", ".join(f"step {s.step}: sigma {s.t:.3f} -> {s.t_tilde:.3f}" for s in plan.switches)
        log.info("Progressive %s: %s (switches %s)", self.adapter.name, text, switches or "none")
