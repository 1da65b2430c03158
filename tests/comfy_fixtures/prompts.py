"""Building API-format prompts for the harness, readably."""
from __future__ import annotations

# per tiny model: (unet file, vae file, latent node, conditioning (context_dim, pooled_dim, guidance))
FAMILY = {
    "flux1_dev": ("tiny_flux1_dev.safetensors", "tiny_flux_ae.safetensors", "EmptySD3LatentImage", (64, 32, 3.5)),
    "flux1_schnell": ("tiny_flux1_schnell.safetensors", "tiny_flux_ae.safetensors", "EmptySD3LatentImage", (64, 32, -1.0)),
    "flux1_kontext": ("tiny_flux1_kontext_dev.safetensors", "tiny_flux_ae.safetensors", "EmptySD3LatentImage", (64, 32, 2.5)),
    "flux2_klein": ("tiny_flux2_klein.safetensors", "tiny_flux2_ae.safetensors", "EmptyFlux2LatentImage", (64, 0, -1.0)),
}


class Prompt(dict):
    """prompt.add("KSampler", seed=1, model=prompt.out(m)) -> node id (str)."""

    def add(self, class_type: str, **inputs) -> str:
        nid = str(len(self) + 1)
        self[nid] = {"class_type": class_type, "inputs": inputs}
        return nid

    @staticmethod
    def out(nid: str, index: int = 0) -> list:
        return [nid, index]


def fovea(p: Prompt, x=0.5, y=0.5, radius=0.3, periphery="1/2 resolution", width=256, height=256, **kw) -> str:
    inputs = dict(x=x, y=y, radius=radius, aspect=1.0, rotation=0.0, extra_gazes="[]", width=width, height=height,
                  periphery=periphery, ring_scale=2.0, feather=0.03)
    inputs.update(kw)
    return p.add("Fovea", **inputs)


def base(p: Prompt, family: str, width=256, height=256, batch=1, seed=0, n_tokens=7):
    """Loader, VAE, latent and positive/negative conditioning nodes of a tiny family."""
    unet, vae, latent_node, (ctx, pooled, guidance) = FAMILY[family]
    m = p.add("UNETLoader", unet_name=unet, weight_dtype="default")
    v = p.add("VAELoader", vae_name=vae)
    lat = p.add(latent_node, width=width, height=height, batch_size=batch)
    pos = p.add("HarnessRandomConditioning", seed=seed + 1, n_tokens=n_tokens, context_dim=ctx,
                pooled_dim=pooled, guidance=guidance)
    neg = p.add("HarnessRandomConditioning", seed=seed + 2, n_tokens=n_tokens, context_dim=ctx,
                pooled_dim=pooled, guidance=guidance)
    return m, v, lat, pos, neg


def ksampler(p: Prompt, model, pos, neg, lat, seed=3, steps=3, cfg=1.0, sampler="euler", scheduler="simple",
             denoise=1.0) -> str:
    return p.add("KSampler", model=p.out(model), seed=seed, steps=steps, cfg=cfg, sampler_name=sampler,
                 scheduler=scheduler, positive=p.out(pos), negative=p.out(neg), latent_image=p.out(lat),
                 denoise=denoise)
