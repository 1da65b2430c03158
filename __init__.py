"""Foveated Diffusion for ComfyUI: V3 entry point.

Importing this file needs nothing from ComfyUI (pytest imports it while collecting);
the node list is imported when ComfyUI calls comfy_entrypoint().
"""
WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes.extension import FoveatedDiffusionExtension

    return FoveatedDiffusionExtension()
