"""fov_core: the mathematics of foveated diffusion, in pure PyTorch.

Never imports ComfyUI. Data flows one way:
fovea description -> level map (rasterize) -> token layout -> packed sequence ->
phase-aligned attention -> unpacked prediction -> canvas -> split decode and blend.
"""
from .attention import AttentionGroup, SequencePlan, group_keys, phase_aligned_attention
from .canvas import LatentPacking, level_view, merge_levels
from .decode import DecodePart, SplitDecoder
from .flops import DiTDims, format_readout, readout, step_flops
from .fovea import AcuityGaze, Box, Fovea, Gaze, LevelPolicy, MaskRegion
from .gaze_path import GazeKeyframe, GazePath
from .grid import TokenGrid
from .layout import LayoutCache, TokenLayout
from .rasterize import assign_levels, check_block_consistent, desired_levels, rasterize
from .saliency import gaze_from_saliency, spectral_residual_saliency

__all__ = [
    "AcuityGaze", "AttentionGroup", "Box", "DecodePart", "DiTDims", "Fovea", "Gaze", "GazeKeyframe",
    "GazePath", "LatentPacking", "LayoutCache", "LevelPolicy", "MaskRegion", "SequencePlan",
    "SplitDecoder", "TokenGrid", "TokenLayout", "assign_levels", "check_block_consistent",
    "desired_levels", "group_keys", "format_readout", "gaze_from_saliency",
    "level_view", "merge_levels", "phase_aligned_attention", "rasterize", "readout",
    "spectral_residual_saliency", "step_flops",
]
