"""The pack's own socket types. A FOVEA carries a fov_core.Fovea (resolution independent);
a SPD_SPECTRUM carries (A, beta), the power law of a model's latents."""
from comfy_api.latest import io

FOVEA = io.Custom("FOVEA")
SPECTRUM = io.Custom("SPD_SPECTRUM")
