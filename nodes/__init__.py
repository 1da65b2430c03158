"""ComfyUI side of the pack: thin V3 nodes over fov_core, and per-family adapters."""
from .apply_node import ApplyFoveation
from .fovea_nodes import FoveaFromBoxes, FoveaFromMask, FoveaFromSaliency, FoveaNode, GazePathNode
from .latent_nodes import FoveatedDecode, FoveatedEncode
from .progressive_nodes import FitPowerSpectrum, ProgressiveResolution
from .train_node import TrainFoveatedLoRA

NODE_CLASSES = [
    FoveaNode,
    FoveaFromMask,
    FoveaFromBoxes,
    FoveaFromSaliency,
    GazePathNode,
    ApplyFoveation,
    FoveatedDecode,
    FoveatedEncode,
    ProgressiveResolution,
    FitPowerSpectrum,
    TrainFoveatedLoRA,
]
