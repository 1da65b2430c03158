"""The foveated latent ("canvas") and how the model reads and writes it.

The sampler state stays an ordinary full-size latent so every sampler and latent node
keeps working. A level-k block stores its low-resolution latent pixel by pixel, each
pixel replicated over a 2^k x 2^k group. With patch size p a token covers p x p
latent pixels, so a level-k token covers (2^k p)^2 pixels in p x p groups. The
representative of a group is its top-left pixel; hence the level-k latent image is
simply the strided view canvas[..., ::2^k, ::2^k].

The model reads representatives (`pack`) and writes its prediction back replicated
(`unpack`). Because only representatives are ever read, fresh per-pixel noise from an
ancestral/SDE sampler changes nothing but the ignored pixels, and the representative
follows exactly the low-resolution SDE; `canonicalize` restores replication at the end.
Initial noise: i.i.d. N(0, 1) representatives, replicated (`canonicalize(randn)`).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .layout import TokenLayout


class LatentPacking:
    """Index maps between a canvas latent and packed tokens for one layout and patch size.

    canvas: (B, C, H*p, W*p) for images (T = 1) or (B, C, T, H*p, W*p) for video.
    tokens: (B, L, C*p*p), features in (c, ph, pw) order (FLUX's patchify order).
    strip:  (B, C, p, L*p) (images) or (B, C, 1, p, L*p) (video): the tokens laid out
            as a one-token-high latent, so a model's own patchify yields them in order.
    """

    def __init__(self, layout: TokenLayout, patch: int):
        if patch < 1:
            raise ValueError(f"patch size must be >= 1, got {patch}")
        T, H, W = layout.shape
        p = patch
        self.layout, self.patch = layout, p
        self.latent_shape = (T, H * p, W * p)
        Hl, Wl = H * p, W * p
        s = 2 ** layout.level  # (L,) block stride in latent pixels per group
        off = torch.arange(p)
        rows = layout.y[:, None] * p + off[None, :] * s[:, None]  # (L, p)
        cols = layout.x[:, None] * p + off[None, :] * s[:, None]
        elem = (layout.t[:, None, None] * Hl + rows[:, :, None]) * Wl + cols[:, None, :]
        self.element_index = elem.reshape(-1)  # (L*p*p,) canvas pixel read by each element

        # for every canvas pixel: the element it is a copy of
        lm = layout.level_map
        cell_s = 2**lm  # (T, H, W)
        ty, tx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        oy, ox = ty // cell_s * cell_s, tx // cell_s * cell_s  # block origin of each cell
        token_at = torch.full((T, H, W), -1, dtype=torch.long)
        token_at[layout.t, layout.y, layout.x] = torch.arange(layout.n_tokens)
        tt = torch.arange(T)[:, None, None].expand(T, H, W)
        tok = token_at[tt, oy, ox]  # (T, H, W)
        assert (tok >= 0).all()
        py, px = torch.meshgrid(torch.arange(Hl), torch.arange(Wl), indexing="ij")
        cy, cx = py // p, px // p  # token cell of each pixel
        tokp = tok[:, cy, cx]  # (T, Hl, Wl)
        sp = cell_s[:, cy, cx]
        ph = (py[None] - oy[:, cy, cx] * p) // sp
        pw = (px[None] - ox[:, cy, cx] * p) // sp
        self.source_index = ((tokp * p + ph) * p + pw).reshape(-1)
        self.canonical_index = self.element_index[self.source_index]
        self._dev = {}

    @property
    def n_tokens(self) -> int:
        return self.layout.n_tokens

    def index(self, name: str, device) -> torch.Tensor:
        """An index tensor ("element_index", "source_index", "canonical_index") on `device`, cached."""
        key = (name, torch.device(device))
        if key not in self._dev:
            self._dev[key] = getattr(self, name).to(device)
        return self._dev[key]

    def _flat(self, canvas: torch.Tensor) -> torch.Tensor:
        T, Hl, Wl = self.latent_shape
        if canvas.ndim == 4 and T == 1 and canvas.shape[-2:] == (Hl, Wl):
            return canvas.reshape(canvas.shape[0], canvas.shape[1], Hl * Wl)
        if canvas.ndim == 5 and tuple(canvas.shape[-3:]) == (T, Hl, Wl):
            return canvas.reshape(canvas.shape[0], canvas.shape[1], T * Hl * Wl)
        raise ValueError(
            f"latent of shape {tuple(canvas.shape)} does not match the fovea layout "
            f"(frames, height, width) = {self.latent_shape}"
        )

    def _canvas_shape(self, b: int, c: int, video: bool):
        T, Hl, Wl = self.latent_shape
        return (b, c, T, Hl, Wl) if video else (b, c, Hl, Wl)

    # ------------------------------------------------------------------ read
    def pack_elements(self, canvas: torch.Tensor) -> torch.Tensor:
        """(B, C, L, p, p) representatives."""
        flat = self._flat(canvas)
        g = flat.index_select(2, self.index("element_index", canvas.device))
        p = self.patch
        return g.view(g.shape[0], g.shape[1], self.n_tokens, p, p)

    def pack(self, canvas: torch.Tensor) -> torch.Tensor:
        e = self.pack_elements(canvas)
        B, C = e.shape[:2]
        return e.permute(0, 2, 1, 3, 4).reshape(B, self.n_tokens, C * self.patch**2)

    def pack_strip(self, canvas: torch.Tensor) -> torch.Tensor:
        self._flat(canvas)  # checks the shape
        return pack_strip(canvas, self.index("element_index", canvas.device), self.patch)

    # ------------------------------------------------------------------ write
    def unpack_elements(self, elements: torch.Tensor, video: bool) -> torch.Tensor:
        B, C = elements.shape[:2]
        flat = elements.reshape(B, C, -1).index_select(2, self.index("source_index", elements.device))
        return flat.view(self._canvas_shape(B, C, video))

    def unpack(self, tokens: torch.Tensor, video: bool = False) -> torch.Tensor:
        B, L, F_ = tokens.shape
        p = self.patch
        if L != self.n_tokens or F_ % (p * p):
            raise ValueError(f"tokens of shape {tuple(tokens.shape)} do not match {self.n_tokens} packed tokens")
        e = tokens.view(B, L, F_ // (p * p), p, p).permute(0, 2, 1, 3, 4)
        return self.unpack_elements(e, video)

    def unpack_strip(self, strip: torch.Tensor) -> torch.Tensor:
        B, C = strip.shape[:2]
        return unpack_strip(strip, self.index("source_index", strip.device), self._canvas_shape(B, C, strip.ndim == 5))

    # ------------------------------------------------------------------ canvas ops
    def canonicalize(self, canvas: torch.Tensor) -> torch.Tensor:
        """Replicate every representative over its group (idempotent)."""
        flat = self._flat(canvas)
        out = flat.index_select(2, self.index("canonical_index", canvas.device))
        return out.view(canvas.shape)

    def group_means(self, image: torch.Tensor) -> torch.Tensor:
        """A canvas whose every group holds the mean of `image` over that group: the area
        average, i.e. the low-resolution version of a conditioning image (an inpainting
        mask, a masked image) for the level-k tokens, where `pack` reads one pixel per group."""
        T, Hl, Wl = self.latent_shape
        self._flat(image)  # checks the shape
        flat = image.reshape(-1, 1, Hl, Wl)  # (B*C*T, 1, Hl, Wl), frames fastest
        plev = self.pixel_levels(image.device)
        out = flat
        for k in self.layout.levels:
            if k == 0:
                continue
            s = 2**k
            pooled = F.avg_pool2d(flat, s, ceil_mode=True)
            up = pooled.repeat_interleave(s, -2).repeat_interleave(s, -1)[..., :Hl, :Wl]
            mask = (plev == k).repeat(flat.shape[0] // T, 1, 1).unsqueeze(1)
            out = torch.where(mask, up.to(flat.dtype), out)
        return out.view(image.shape)

    def is_canonical(self, canvas: torch.Tensor) -> bool:
        return torch.equal(self.canonicalize(canvas), canvas)

    def noise(self, shape, generator: Optional[torch.Generator] = None, dtype=torch.float32, device="cpu"):
        """Initial noise: i.i.d. N(0, 1) representatives, replicated over groups."""
        return self.canonicalize(torch.randn(shape, generator=generator, dtype=dtype, device=device))

    def pixel_levels(self, device="cpu") -> torch.Tensor:
        """(T, H*p, W*p) level of every latent pixel."""
        p = self.patch
        lm = self.layout.level_map
        return lm.repeat_interleave(p, 1).repeat_interleave(p, 2).to(device)


def pack_strip(canvas: torch.Tensor, element_index: torch.Tensor, patch: int) -> torch.Tensor:
    """The packed tokens of a canvas laid out as a one-token-high latent: (B, C, p, L*p), or
    (B, C, 1, p, L*p) for video, so a model's own patchify yields them in packed order.
    element_index: the canvas pixel each element reads (LatentPacking.element_index)."""
    B, C = canvas.shape[:2]
    p = patch
    e = canvas.reshape(B, C, -1).index_select(2, element_index)
    strip = e.view(B, C, -1, p, p).permute(0, 1, 3, 2, 4).reshape(B, C, p, -1)
    return strip.unsqueeze(2) if canvas.ndim == 5 else strip


def unpack_strip(strip: torch.Tensor, source_index: torch.Tensor, canvas_shape) -> torch.Tensor:
    """A prediction on the strip written back onto the canvas, each value replicated over its
    group. source_index: the element every canvas pixel copies (LatentPacking.source_index)."""
    s = strip.squeeze(2) if strip.ndim == 5 else strip
    B, C, p, _ = s.shape
    e = s.reshape(B, C, p, -1, p).permute(0, 1, 3, 2, 4)
    return e.reshape(B, C, -1).index_select(2, source_index).view(canvas_shape)


def level_view(canvas: torch.Tensor, level: int) -> torch.Tensor:
    """The level-k latent image (representatives only): canvas[..., ::2^k, ::2^k]."""
    s = 2**level
    return canvas[..., ::s, ::s]


def downsample_image(rgb: torch.Tensor, factor: int, multiple: int = 1) -> torch.Tensor:
    """The image a level-k latent is encoded from (the paper's rule): `rgb` (B, H, W, C) in
    [0, 1] resized to ceil(H / factor) x ceil(W / factor) with antialiased bicubic
    interpolation, clamped to [0, 1], then replicate-padded at the right and bottom to a
    multiple of `multiple` (the VAE's compression) so the VAE takes it whole."""
    H, W = rgb.shape[1:3]
    h, w = -(-H // factor), -(-W // factor)
    img = F.interpolate(rgb.movedim(-1, 1).float(), size=(h, w), mode="bicubic", antialias=True).clamp(0, 1)
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        img = F.pad(img, (0, pw, 0, ph), mode="replicate")
    return img.movedim(1, -1)


def merge_levels(packing: LatentPacking, full: torch.Tensor, low: dict) -> torch.Tensor:
    """Canvas from the full-resolution latent and, per level k > 0, the latent of the
    image downsampled by 2^k (the paper's principled mechanism; never a pooled latent).

    full: (B, C, [T,] H*p, W*p); low[k]: (B, C, [T,] ~H*p/2^k, ~W*p/2^k).
    """
    T, Hl, Wl = packing.latent_shape
    out = full.clone()
    plev = packing.pixel_levels(full.device)
    if full.ndim == 4:
        plev = plev[0]
    for k in packing.layout.levels:
        if k == 0:
            continue
        if k not in low:
            raise ValueError(f"the layout has level {k} (1/{2 ** k}) but no latent of the 1/{2 ** k} image was given")
        s = 2**k
        z = low[k]
        if z.shape[-2] < Hl // s or z.shape[-1] < Wl // s:
            raise ValueError(
                f"the 1/{s} latent is {tuple(z.shape[-2:])}, smaller than {(Hl // s, Wl // s)}: "
                f"encode the image downsampled by {s}"
            )
        up = z.repeat_interleave(s, -2).repeat_interleave(s, -1)[..., :Hl, :Wl]
        if up.shape[-2:] != (Hl, Wl):
            up = F.pad(up, (0, Wl - up.shape[-1], 0, Hl - up.shape[-2]), mode="replicate")
        out = torch.where(plev == k, up.to(out.dtype), out)
    return packing.canonicalize(out)
