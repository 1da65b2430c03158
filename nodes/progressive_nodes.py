"""Progressive Resolution (SPD as a MODEL patch, optionally with a fovea) and Fit Power
Spectrum (the schedule's A and beta from the user's own latents)."""
from __future__ import annotations

from comfy_api.latest import io, ui

from ..fov_core import SPECTRUM_PRESETS, fit_power_law, validate_delta, validate_switch_sigmas
from .adapters import adapter_for
from .progressive import COMPATIBLE, ProgressivePatch, Schedule
from .types import FOVEA, SPECTRUM

PRESETS = {"FLUX": SPECTRUM_PRESETS["flux"], "Wan 2.1": SPECTRUM_PRESETS["wan21"]}


def _numbers(text: str, what: str) -> list:
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, e.g. 0.5, 1; got {text!r}") from None


class ProgressiveResolution(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ProgressiveResolution",
            display_name="Progressive Resolution (SPD)",
            category="model_patches/foveated",
            description="Spectral Progressive Diffusion for every sampler node: the early, noise-dominated steps run "
                        "at 1/2 (or 1/4) resolution, then the latent is spectrally expanded and finished at full "
                        "resolution. With a FOVEA only the fovea is expanded (progressive foveation): resolution "
                        "grows over time and space.",
            search_aliases=["SPD", "spectral progressive diffusion", "progressive foveation", "SamplerSPEED"],
            inputs=[
                io.Model.Input("model", tooltip="A FLUX.1, FLUX.2, Chroma or Wan model."),
                io.String.Input("scales", default="0.5, 1",
                                tooltip="Stage sizes as fractions of full resolution, coarsest first, ending at 1: "
                                        "0.5, 1 (two stages) or 0.25, 0.5, 1 (three)."),
                io.Combo.Input("switch_at", options=["power law", "manual sigmas"], default="power law",
                               tooltip="When to switch: from the power-law model of the latents' spectrum (delta), "
                                       "or at the sigmas you give."),
                io.Float.Input("delta", default=0.05, min=0.001, max=0.999, step=0.001,
                               tooltip="Tolerance of the power-law switch: smaller switches later (closer to full "
                                       "resolution, slower); 0.05 is the paper's recommended trade-off."),
                io.Combo.Input("spectrum", options=[*PRESETS, "custom"], default="FLUX",
                               tooltip="The power law of the model's latents (the paper's fits), or custom A and "
                                       "beta. A Fit Power Spectrum node connected below overrides it."),
                io.String.Input("manual_sigmas", default="0.85",
                                tooltip="Manual switch sigmas, one per switch, decreasing (e.g. 0.95, 0.85 for "
                                        "three stages)."),
                io.Combo.Input("transform", options=["dct", "dwt"], default="dct", advanced=True,
                               tooltip="Spectral basis of the expansion: DCT (default) or the Haar DWT."),
                io.Combo.Input("noise", options=["fast", COMPATIBLE], default="fast", advanced=True,
                               tooltip="fast: expansion noise drawn on the GPU from the sampler's seed. "
                                       "SamplerSPEED: drawn as the official SamplerSPEED node does (with the seed "
                                       "below), to reproduce its images."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, advanced=True,
                             tooltip="Expansion seed of the SamplerSPEED-compatible noise (its own seed input)."),
                io.Float.Input("A", default=PRESETS["FLUX"]["A"], min=1e-6, max=1e9, step=0.001, advanced=True,
                               tooltip="custom spectrum: amplitude A of P(w) = A w^-beta."),
                io.Float.Input("beta", default=PRESETS["FLUX"]["beta"], min=0.0, max=10.0, step=0.001, advanced=True,
                               tooltip="custom spectrum: exponent beta of P(w) = A w^-beta."),
                SPECTRUM.Input("fitted_spectrum", optional=True,
                               tooltip="A and beta fitted to your own latents (Fit Power Spectrum)."),
                FOVEA.Input("fovea", optional=True,
                            tooltip="Progressive foveation: the whole frame starts coarse, and at the switch only "
                                    "the fovea is expanded; the periphery stays at the fovea's periphery level."),
            ],
            outputs=[io.Model.Output(display_name="MODEL"),
                     io.String.Output(display_name="readout", tooltip="The schedule; each run logs its stages.")],
        )

    @classmethod
    def execute(cls, model, scales, switch_at, delta, spectrum, manual_sigmas, transform, noise, seed, A, beta,
                fitted_spectrum=None, fovea=None) -> io.NodeOutput:
        parsed = _numbers(scales, "scales")
        sigmas = None
        if switch_at == "manual sigmas":
            sigmas = tuple(validate_switch_sigmas(_numbers(manual_sigmas, "manual_sigmas"), parsed))
        else:
            validate_delta(delta)
        if fitted_spectrum is not None:
            A, beta = fitted_spectrum
        elif spectrum in PRESETS:
            A, beta = PRESETS[spectrum]["A"], PRESETS[spectrum]["beta"]
        sched = Schedule(tuple(parsed), float(A), float(beta), float(delta), sigmas, transform, noise, int(seed))
        patched = ProgressivePatch(sched, fovea, adapter_for(model)).install(model)
        when = (f"at sigmas {', '.join(f'{v:g}' for v in sigmas)}" if sigmas else
                f"by the power law (A {A:g}, beta {beta:g}, delta {delta:g})")
        text = (f"stages {' -> '.join(f'{s:g}' for s in sched.scales)}"
                f"{' (final stage: the fovea)' if fovea is not None else ''}, switching {when}; each run logs its "
                f"switch steps and FLOP-ideal speedup")
        return io.NodeOutput(patched, text, ui=ui.PreviewText(text))


class FitPowerSpectrum(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FitPowerSpectrum",
            display_name="Fit Power Spectrum",
            category="model_patches/foveated",
            description="Fit the power law P(w) = A w^-beta of the radially averaged spectrum of your own latents, so "
                        "Progressive Resolution can schedule any model. Give images and the model's VAE, or latents.",
            inputs=[
                io.Image.Input("images", optional=True,
                               tooltip="Typical images at the resolution you generate (a batch)."),
                io.Vae.Input("vae", optional=True, tooltip="The model's VAE, to encode the images."),
                io.Latent.Input("latents", optional=True, tooltip="Or latents directly (images are then not needed)."),
            ],
            outputs=[SPECTRUM.Output(display_name="SPECTRUM"), io.String.Output(display_name="readout")],
        )

    @classmethod
    def execute(cls, images=None, vae=None, latents=None) -> io.NodeOutput:
        if latents is not None:
            z = latents["samples"]
        elif images is not None and vae is not None:
            z = vae.encode(images[..., :3])
        else:
            raise ValueError("connect latents, or images together with the VAE that encodes them")
        if z.ndim == 5:  # video: every frame is a sample of the spatial spectrum
            z = z.movedim(2, 1).flatten(0, 1)
        if min(z.shape[-2:]) < 8:
            raise ValueError(f"latents of {z.shape[-2]}x{z.shape[-1]} are too small to fit a spectrum; use images "
                             f"of at least 64 px per side")
        A, beta = fit_power_law(z.float())
        text = f"A = {A:.3f}, beta = {beta:.3f} (from {z.shape[0]} latent(s) of {z.shape[-2]}x{z.shape[-1]})"
        return io.NodeOutput((A, beta), text, ui=ui.PreviewText(text))
