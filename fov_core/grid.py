"""The concrete token grid a fovea is rasterized onto.

A DiT sees its latent as a grid of (T, H, W) tokens after patchifying; T = 1 for
images. Tokens are square in image space: `token_px` image pixels per token edge
(16 for FLUX.1, FLUX.2 and Wan 2.1). For video, `frame_stride` video frames map to
one latent frame after the first (Wan's causal VAE: latent frame 0 is video frame 0,
latent frame t >= 1 covers video frames 4t-3 .. 4t).
"""
from __future__ import annotations

from dataclasses import dataclass


DEFAULT_TOKEN_PX = 16  # image pixels per token of FLUX.1/2, Chroma and Wan 2.1 (Wan 2.2 5B: 32)


@dataclass(frozen=True)
class TokenGrid:
    frames: int
    height: int
    width: int
    token_px: int = DEFAULT_TOKEN_PX
    frame_stride: int = 1

    def __post_init__(self):
        for name in ("frames", "height", "width", "token_px", "frame_stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TokenGrid.{name} must be a positive integer, got {value!r}")

    @property
    def tokens(self) -> int:
        return self.frames * self.height * self.width

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of one frame in image pixels."""
        return self.height * self.token_px, self.width * self.token_px

    @property
    def video_frames(self) -> int:
        """Number of video frames this latent decodes to (causal first frame)."""
        return 1 + (self.frames - 1) * self.frame_stride

    def video_frames_of(self, t: int) -> range:
        """The video frames that latent frame `t` covers."""
        if t == 0:
            return range(0, 1)
        return range((t - 1) * self.frame_stride + 1, t * self.frame_stride + 1)


def check_grid_fits(grid: TokenGrid, coarsest_level: int) -> None:
    """A grid must hold at least one block of the coarsest level in each direction.

    Grids that are not multiples of the coarsest block are fine: edge blocks that do
    not fit at a coarse level fall back to the next finer level that fits
    (see rasterize.assign_levels).
    """
    block = 2 ** coarsest_level
    if grid.height < block or grid.width < block:
        px = block * grid.token_px
        raise ValueError(
            f"The latent is {grid.height}x{grid.width} tokens "
            f"({grid.height * grid.token_px}x{grid.width * grid.token_px} px), smaller than one "
            f"1/{block} periphery block ({block}x{block} tokens = {px}x{px} px). "
            f"Use an image at least {px}x{px} px, or a finer periphery (1/2 instead of 1/4)."
        )
