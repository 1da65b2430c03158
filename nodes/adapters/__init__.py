"""One adapter per model family; chosen by the diffusion model's class."""
from __future__ import annotations

from .chroma import ChromaAdapter
from .flux import FluxAdapter
from .wan import WanAdapter

ADAPTERS = (FluxAdapter, ChromaAdapter, WanAdapter)
SUPPORTED = ("FLUX.1 (dev, schnell, Kontext, Fill), FLUX.2 ([klein], [dev]), Chroma, and Wan 2.1 / 2.2 "
             "(T2V, I2V, FLF2V, TI2V 5B, the 14B experts)")


def adapter_for(model_patcher):
    dm = getattr(getattr(model_patcher, "model", None), "diffusion_model", None)
    for cls in ADAPTERS:
        if dm is not None and cls.matches(dm):
            return cls
    kind = type(dm).__name__ if dm is not None else type(model_patcher).__name__
    raise ValueError(
        f"Foveation does not support this model ({kind}). Supported families: {SUPPORTED}. "
        f"Connect a model of one of these families to Apply Foveation."
    )
