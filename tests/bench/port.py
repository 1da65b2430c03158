"""The existing ComfyUI port (ruwwww/ComfyUI-Foveated_Diffusion), loaded from a checkout
the user provides as a custom node in the same process (never vendored)."""
from __future__ import annotations

import sys
from pathlib import Path

import torch


class Port:
    def __init__(self, harness, handle, path):
        path = Path(path).resolve()
        harness.load_custom_node_dir(handle, path)
        self.module = sys.modules[str(path).replace(".", "_x_")]
        self.tok = sys.modules[self.module.__name__ + ".foveated_tokenizer"]
        self.nodes = sys.modules[self.module.__name__ + ".nodes"]
        self.sampler = self.module.NODE_CLASS_MAPPINGS["FoveatedKSampler"]()
        self.decoder = self.module.NODE_CLASS_MAPPINGS["FoveatedVAEDecode"]()

    def mask_for_ratio(self, ratio, h, w):
        lo, hi = 0.01, 2.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if self.token_ratio(self.tok.build_fovea_mask(h, w, 0.0, 0.0, mid, "circular"), h, w) < ratio:
                lo = mid
            else:
                hi = mid
        return self.tok.build_fovea_mask(h, w, 0.0, 0.0, hi, "circular")

    @staticmethod
    def level_map(mask):
        blocks = torch.nn.functional.max_pool2d(mask.float()[None, None], 2)[0, 0] > 0
        hr = blocks.repeat_interleave(2, 0).repeat_interleave(2, 1)
        return (~hr).long()[None]

    def token_ratio(self, mask, h, w):
        lm = self.level_map(mask)
        return (int((lm == 0).sum()) + int((lm == 1).sum()) // 4) / (h * w)

    def forward_fn(self, model, x, sigma, ctx, mask):
        """One forward of the port through BaseModel.apply_model: its DIFFUSION_MODEL wrapper
        on its packed sequence. Returns (call, packed token count)."""
        import comfy.patcher_extension as pe_ext

        H, W = x.shape[-2:]
        spatial = x.permute(0, 2, 3, 1).reshape(1, H, W, -1)  # FLUX.2: patch 1, tokens = latent pixels
        seq, idx = self.tok.build_foveated_tokens(spatial, mask.to(x.device), 2)
        topts = {"fov_state": {"mask": mask.to(x.device), "lr_factor": 2, "fov_indices": idx, "h_len": H,
                               "w_len": W, "C_patched": spatial.shape[-1]}}
        pe_ext.add_wrapper_with_key(pe_ext.WrappersMP.DIFFUSION_MODEL, "foveated_diffusion",
                                    self.nodes._foveated_diffusion_model_wrapper, topts, is_model_options=False)

        def call():
            with torch.inference_mode():
                return model.apply_model(seq, sigma, None, ctx, None, topts)

        return call, seq.shape[1]

    def sample(self, mp, cond, latent, mask, steps):
        fmask = {"mask": mask, "h": latent.shape[-2], "w": latent.shape[-1], "lr_factor": 2}
        out = self.sampler.sample(mp, cond, cond, {"samples": latent}, fmask, 0, steps, 1.0, "euler", "simple",
                                  1.0, "direct")
        return out[0]["samples"], fmask

    def decode(self, z, vae, fmask):
        return self.decoder.decode({"samples": z}, vae, fmask, "soft_gaussian", 16.0)
