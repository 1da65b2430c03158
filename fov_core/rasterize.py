"""Rasterize a fovea onto a concrete token grid: a block-consistent level map.

Every region says which level each token wants; the finest wish wins. Blocks are
then assigned coarse to fine with the paper's max-pool rule: an aligned 2^k x 2^k
block becomes level k only if every token in it wants level k or coarser, so a block
touched by the fovea anywhere stays finer. Blocks at the right or bottom edge that
do not fit inside the grid at level k fall back to the next finer level that fits,
which makes any grid size exact without padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .fovea import Fovea
from .grid import DEFAULT_TOKEN_PX, TokenGrid, check_grid_fits
from .regions import FrameCoords


def desired_levels(fovea: Fovea, grid: TokenGrid) -> torch.Tensor:
    """(T, H, W) long tensor: the level each token wants (before block rules)."""
    policy = fovea.policy
    path = fovea.path
    if path is not None:
        if grid.frames == 1:
            raise ValueError(
                "this fovea follows a gaze path over video frames, but the model generates a "
                "single image; use a static fovea (gaze, box or mask) for image models"
            )
        if path.num_frames != grid.video_frames:
            raise ValueError(
                f"the gaze path is for {path.num_frames} video frames but the latent holds "
                f"{grid.video_frames} frames ({grid.frames} latent frames); set the path's frame "
                f"count to {grid.video_frames}"
            )
    out = torch.full((grid.frames, grid.height, grid.width), policy.periphery, dtype=torch.long)
    for t in range(grid.frames):
        fc = FrameCoords.build(grid, t)
        for region in fovea.regions:
            out[t] = torch.minimum(out[t], region.desired_levels(fc, policy))
        if path is not None:
            for f in grid.video_frames_of(t):
                out[t] = torch.minimum(out[t], path.gaze_at(f).desired_levels(fc, policy))
    return out


def assign_levels(desired: torch.Tensor, levels) -> torch.Tensor:
    """Block-consistent level map from per-token wishes (see module docstring)."""
    T, H, W = desired.shape
    out = torch.zeros((T, H, W), dtype=torch.long)
    assigned = torch.zeros((T, H, W), dtype=torch.bool)
    for k in sorted(levels, reverse=True):
        if k == 0:
            break
        b = 2**k
        hc, wc = H // b * b, W // b * b
        if hc == 0 or wc == 0:
            continue
        block_min = -F.max_pool2d(-desired[:, :hc, :wc].double().unsqueeze(1), b).squeeze(1)
        ok = (block_min >= k).repeat_interleave(b, 1).repeat_interleave(b, 2)
        new = torch.zeros_like(assigned)
        new[:, :hc, :wc] = ok & ~assigned[:, :hc, :wc]
        out[new] = k
        assigned |= new
    return out


def rasterize(fovea: Fovea, grid: TokenGrid) -> torch.Tensor:
    """(T, H, W) long level map for `grid`; 0 = full resolution."""
    check_grid_fits(grid, fovea.policy.periphery)
    level_map = assign_levels(desired_levels(fovea, grid), fovea.policy.levels)
    if not (level_map == 0).any():
        raise ValueError(
            "the fovea does not reach into the image: no token stays at full resolution. "
            "Move the gaze point or box inside the image, or make it larger."
        )
    return level_map


def resolution_preview(fovea: Fovea, width: int, height: int, frames: int,
                       token_px: int = DEFAULT_TOKEN_PX) -> torch.Tensor:
    """(frames, height, width) float map of an image of that size: 1 / 2^level of the token
    each pixel falls in (1.0 full, 0.5 half, 0.25 quarter resolution), on the token grid
    nearest to that size."""
    if width < token_px or height < token_px:
        raise ValueError(f"preview size must be at least {token_px}x{token_px} px, got {width}x{height}")
    grid = TokenGrid(frames, round(height / token_px), round(width / token_px), token_px)
    fine = (0.5 ** rasterize(fovea, grid).float())[:, None]
    return F.interpolate(fine, size=(height, width), mode="nearest")[:, 0]


def check_block_consistent(level_map: torch.Tensor) -> None:
    """Raise ValueError unless every level-k token lies in a complete aligned 2^k block
    of level-k tokens that fits inside the grid."""
    if level_map.ndim != 3:
        raise ValueError(f"level map must be (T, H, W), got shape {tuple(level_map.shape)}")
    if level_map.dtype.is_floating_point or (level_map < 0).any():
        raise ValueError("level map must hold non-negative integer levels")
    T, H, W = level_map.shape
    for k in torch.unique(level_map).tolist():
        if k == 0:
            continue
        b = 2**k
        hc, wc = H // b * b, W // b * b
        mask = level_map == k
        if mask[:, hc:, :].any() or mask[:, :, wc:].any():
            raise ValueError(f"level {k} tokens in an edge block that does not fit the grid")
        m = mask[:, :hc, :wc].double().unsqueeze(1)
        if not torch.equal(F.max_pool2d(m, b), -F.max_pool2d(-m, b)):
            raise ValueError(f"level {k} tokens do not form complete aligned {b}x{b} blocks")
