"""The pack's own socket type. A FOVEA carries a fov_core.Fovea (resolution independent)."""
from comfy_api.latest import io

FOVEA = io.Custom("FOVEA")
