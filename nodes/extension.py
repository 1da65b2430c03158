"""The ComfyExtension that lists the pack's nodes."""
from comfy_api.latest import ComfyExtension, io

from . import NODE_CLASSES


class FoveatedDiffusionExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_CLASSES)
