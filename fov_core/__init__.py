"""fov_core: the mathematics of foveated diffusion, in pure PyTorch.

Never imports ComfyUI. Data flows one way:
fovea description -> level map (rasterize) -> token layout -> packed sequence ->
phase-aligned attention -> unpacked prediction -> canvas -> split decode and blend.
Spectral Progressive Diffusion (resolution over denoising time): spectral.py, schedule.py;
on the canvas, and with a fovea (progressive foveation): progressive.py.
"""
from .attention import AttentionGroup, SequencePlan, group_keys, phase_aligned_attention
from .canvas import LatentPacking, downsample_image, level_view, merge_levels, pack_strip, unpack_strip
from .decode import DecodePart, SplitDecoder
from .flops import DiTDims, format_readout, readout, step_flops
from .fovea import Fovea
from .gaze_path import GazeKeyframe, GazePath
from .grid import TokenGrid
from .layout import LayoutCache, TokenLayout
from .policy import LevelPolicy
from .progressive import stage_level, stage_level_maps, switch_canvas
from .rasterize import assign_levels, check_block_consistent, desired_levels, rasterize, resolution_preview
from .regions import AcuityGaze, Box, Gaze, MaskRegion
from .saliency import gaze_from_saliency, spectral_residual_saliency
from .schedule import (
    SPECTRUM_PRESETS, Switch, SwitchPlan, activation_time, fit_power_law, plan_switches, power_spectrum,
    radial_power_spectrum, stage_sizes, switch_times, validate_delta, validate_scales, validate_switch_sigmas,
)
from .spectral import (
    compatible_expansion_noise, compatible_seed, dct2, dct_downscale, dct_matrix, expansion_noise, forward_noise,
    haar_dwt2, haar_idwt2, idct2, kappa, spectral_expand, time_remap,
)
from .training import (
    FOVEA_MODES, ImageFit, TrainingFoveae, boxes_in_fitted_image, check_fovea_mode, clip_frames, fit_image,
    min_side_px, packed_velocity_loss, plan_fit, random_circle, random_gaze_path, saliency_gaze, saliency_path,
)

__all__ = [
    "AcuityGaze", "AttentionGroup", "Box", "DecodePart", "DiTDims", "Fovea", "Gaze", "GazeKeyframe",
    "GazePath", "LatentPacking", "LayoutCache", "LevelPolicy", "MaskRegion", "SequencePlan",
    "SplitDecoder", "TokenGrid", "TokenLayout", "assign_levels", "check_block_consistent",
    "desired_levels", "downsample_image", "group_keys", "format_readout", "gaze_from_saliency",
    "level_view", "merge_levels", "pack_strip", "unpack_strip", "phase_aligned_attention", "rasterize", "readout",
    "resolution_preview",
    "spectral_residual_saliency", "step_flops",
    # foveated training
    "FOVEA_MODES", "ImageFit", "TrainingFoveae", "boxes_in_fitted_image", "check_fovea_mode", "clip_frames",
    "fit_image", "min_side_px", "packed_velocity_loss", "plan_fit", "random_circle", "random_gaze_path",
    "saliency_gaze", "saliency_path",
    # Spectral Progressive Diffusion
    "SPECTRUM_PRESETS", "Switch", "SwitchPlan", "activation_time", "compatible_expansion_noise", "compatible_seed",
    "dct2", "dct_downscale", "dct_matrix", "expansion_noise", "fit_power_law", "forward_noise", "haar_dwt2",
    "haar_idwt2", "idct2", "kappa", "plan_switches", "power_spectrum", "radial_power_spectrum", "spectral_expand",
    "stage_level", "stage_level_maps", "stage_sizes", "switch_canvas", "switch_times", "time_remap",
    "validate_delta", "validate_scales", "validate_switch_sigmas",
]
