"""Nodes that describe a fovea: Fovea (gaze points), from Mask, from Boxes, from Saliency.

Each returns a FOVEA (resolution independent) and a MASK preview whose pixels hold the
resolution the sampler will use there: 1.0 full, 0.5 half, 0.25 quarter resolution.
An optional FOVEA input is merged in (union), so nodes can be chained.
"""
from __future__ import annotations

import dataclasses
import json
import math

import torch

from comfy_api.latest import io, ui

from ..fov_core import Box, Fovea, Gaze, GazeKeyframe, GazePath, LevelPolicy, MaskRegion
from ..fov_core import gaze_from_saliency, resolution_preview
from ..fov_core import spectral_residual_saliency
from .types import FOVEA

GAZE_FIELDS = tuple(f.name for f in dataclasses.fields(Gaze))  # x, y, radius, aspect, rotation
PERIPHERY = {
    "1/2 resolution": lambda s: LevelPolicy.half(),
    "1/4 resolution": lambda s: LevelPolicy.quarter(),
    "rings: 1/2 then 1/4": lambda s: LevelPolicy.rings(s),
}


def policy_inputs() -> list:
    return [
        io.Combo.Input(
            "periphery", options=list(PERIPHERY), default="1/2 resolution",
            tooltip="Resolution of the tokens outside the fovea. 1/2 uses a quarter of the tokens there, "
                    "1/4 a sixteenth. Rings keep a 1/2 ring around the fovea and go to 1/4 beyond it.",
        ),
        io.Float.Input(
            "ring_scale", default=2.0, min=1.05, max=10.0, step=0.05,
            tooltip="Rings only: where the 1/2 ring ends, as a multiple of each fovea's size.",
        ),
        io.Float.Input(
            "feather", default=0.03, min=0.0, max=0.5, step=0.005,
            tooltip="Width of the soft blend between full- and low-resolution decodes, as a fraction of the "
                    "image half-diagonal. The blend lies inside the full-resolution region.",
        ),
        FOVEA.Input(
            "fovea", optional=True,
            tooltip="Optional fovea to merge with this one (union of regions), e.g. a box plus a gaze point.",
        ),
    ]


def make_fovea(regions, periphery: str, ring_scale: float, feather: float, merge=None, path=None) -> Fovea:
    if periphery not in PERIPHERY:
        raise ValueError(f"periphery must be one of {list(PERIPHERY)}, got {periphery!r}")
    fovea = Fovea(tuple(regions), PERIPHERY[periphery](ring_scale), feather, path)
    if merge is not None:
        fovea = fovea.union(merge)
    return fovea


def preview_mask(fovea: Fovea, width: int, height: int, frames: int = 1) -> torch.Tensor:
    """(frames, H, W) MASK: 1 / 2^level of the token each pixel falls in (one per frame)."""
    return resolution_preview(fovea, width, height, frames)


def canvas_image(image, cls):
    """The image the canvas widget shows behind the fovea (sent as the node's UI output)."""
    if image is None:
        return None
    return ui.PreviewImage(image[:1], cls=cls)


def json_list(text: str, name: str, example: str) -> list:
    """A widget's JSON list (empty text = empty list), with an error that shows the format."""
    try:
        items = json.loads((text or "").strip() or "[]")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} must be JSON, e.g. {example}; could not parse it: {exc}") from None
    if not isinstance(items, list):
        raise ValueError(f"{name} must be a JSON list, e.g. {example}")
    return items


def parse_gazes(text: str) -> list:
    """Extra gaze points from the widget: JSON list of [x, y, radius] or {"x","y","radius",...}."""
    items = json_list(text, "extra_gazes", "[[0.3, 0.4, 0.2]]")
    gazes = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            missing = [k for k in GAZE_FIELDS[:3] if k not in item]
            if missing:
                raise ValueError(f"extra_gazes[{i}] lacks {missing[0]!r}; give x, y and radius")
            fields = {k: item[k] for k in GAZE_FIELDS if k in item}
        elif isinstance(item, (list, tuple)) and 3 <= len(item) <= 5 and all(isinstance(v, (int, float)) for v in item):
            fields = dict(zip(GAZE_FIELDS, item))
        else:
            raise ValueError(f"extra_gazes[{i}] = {item!r}: expected [x, y, radius] (optionally aspect, rotation)")
        values = {}
        for k, v in fields.items():
            try:
                values[k] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"extra_gazes[{i}]: {k} must be a number, got {v!r}") from None
        try:
            gazes.append(Gaze(**values))
        except ValueError as exc:  # Gaze names the field, e.g. "gaze x must be a finite number, got nan"
            raise ValueError(f"extra_gazes[{i}]: {exc}") from None
    return gazes


class FoveaNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Fovea",
            display_name="Fovea",
            category="foveated",
            description="Where the viewer looks: a gaze point (circle or ellipse) kept at full resolution; the "
                        "periphery is generated at lower resolution. Coordinates are normalized (0..1).",
            search_aliases=["foveated", "gaze", "foveation"],
            inputs=[
                io.Float.Input("x", default=0.5, min=-0.5, max=1.5, step=0.005,
                               tooltip="Gaze point, horizontal: 0 = left edge, 1 = right edge."),
                io.Float.Input("y", default=0.5, min=-0.5, max=1.5, step=0.005,
                               tooltip="Gaze point, vertical: 0 = top edge, 1 = bottom edge."),
                io.Float.Input("radius", default=0.35, min=0.005, max=2.0, step=0.005,
                               tooltip="Fovea radius as a fraction of the image half-diagonal (1.0 from the center "
                                       "reaches the corners)."),
                io.Float.Input("aspect", default=1.0, min=0.05, max=20.0, step=0.05,
                               tooltip="Ellipse: second axis / radius. 1 = circle."),
                io.Float.Input("rotation", default=0.0, min=-360.0, max=360.0, step=1.0,
                               tooltip="Ellipse rotation in degrees, clockwise."),
                io.String.Input("extra_gazes", default="[]", multiline=False,
                                tooltip="More foveae as JSON: [[x, y, radius], ...]. Shift-click in the canvas "
                                        "adds one."),
                io.Int.Input("width", default=1024, min=16, max=16384, step=16,
                             tooltip="Image width for the preview mask and the canvas aspect ratio (px)."),
                io.Int.Input("height", default=1024, min=16, max=16384, step=16,
                             tooltip="Image height for the preview mask and the canvas aspect ratio (px)."),
                *policy_inputs(),
                io.Image.Input("preview_image", optional=True,
                               tooltip="Optional image shown in the canvas to place the fovea on."),
            ],
            outputs=[FOVEA.Output(display_name="FOVEA"), io.Mask.Output(display_name="preview")],
        )

    @classmethod
    def execute(cls, x, y, radius, aspect, rotation, extra_gazes, width, height, periphery, ring_scale, feather,
                fovea=None, preview_image=None) -> io.NodeOutput:
        regions = [Gaze(x, y, radius, aspect, rotation)] + parse_gazes(extra_gazes)
        f = make_fovea(regions, periphery, ring_scale, feather, fovea)
        return io.NodeOutput(f, preview_mask(f, width, height), ui=canvas_image(preview_image, cls))


class FoveaFromMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FoveaFromMask",
            display_name="Fovea from Mask",
            category="foveated",
            description="Keep any MASK region (painted, SAM3, segmentation ...) at full resolution.",
            inputs=[
                io.Mask.Input("mask", tooltip="Pixels >= threshold stay at full resolution. Any size; a batch of "
                                             "masks is one mask per video frame."),
                io.Float.Input("threshold", default=0.5, min=0.001, max=1.0, step=0.01,
                               tooltip="Mask values at or above this are fovea."),
                *policy_inputs(),
            ],
            outputs=[FOVEA.Output(display_name="FOVEA"), io.Mask.Output(display_name="preview")],
        )

    @classmethod
    def execute(cls, mask, threshold, periphery, ring_scale, feather, fovea=None) -> io.NodeOutput:
        region = MaskRegion(mask, threshold)
        f = make_fovea([region], periphery, ring_scale, feather, fovea)
        # one preview per mask frame, or per frame of a merged gaze path (a mismatch is an error)
        frames = f.path.num_frames if f.path is not None else region.mask.shape[0]
        return io.NodeOutput(f, preview_mask(f, mask.shape[-1], mask.shape[-2], frames=frames))


def boxes_from_input(bboxes) -> list:
    """Core BOUNDING_BOX values: a dict, a list of dicts, or one list per image."""
    if isinstance(bboxes, dict):
        return [bboxes]
    if not isinstance(bboxes, list):
        raise ValueError(f"bboxes must be BOUNDING_BOX data (dict or list of dicts), got {type(bboxes).__name__}")
    flat = []
    for item in bboxes:
        if isinstance(item, dict):
            flat.append(item)
        elif isinstance(item, list):
            flat.extend(d for d in item if isinstance(d, dict))
        else:
            raise ValueError(f"unexpected bounding box entry {item!r}")
    return flat


BOX_EXPAND = 0.1  # default growth of a box, a fraction of its size on every side


def regions_from_boxes(boxes: list, width: float, height: float, expand: float) -> list:
    """Core BOUNDING_BOX dicts (pixels of a width x height image) -> normalized Box regions,
    each grown by `expand` of its size on every side."""
    regions = []
    for d in boxes:
        try:
            bx, by, bw, bh = (float(d[k]) for k in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"bounding box {d!r} needs numeric x, y, width, height") from None
        if not all(map(math.isfinite, (bx, by, bw, bh))) or bw <= 0 or bh <= 0:
            raise ValueError(f"bounding box {d!r} must have finite values and positive width and height")
        gx, gy = bw * expand, bh * expand
        try:
            regions.append(Box((bx - gx) / width, (by - gy) / height,
                               (bx + bw + gx) / width, (by + bh + gy) / height))
        except ValueError as exc:
            raise ValueError(f"bounding box {d!r} in a {width}x{height} px image: {exc}. Boxes are in pixels "
                             f"of the image they were detected on: connect that image, or set width and "
                             f"height to its size") from None
    return regions


class FoveaFromBoxes(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FoveaFromBoxes",
            display_name="Fovea from Boxes",
            category="foveated",
            description="Keep detected objects (core BOUNDING_BOX, e.g. from RT-DETR or SAM3) at full resolution. "
                        "All boxes of all images are merged (union).",
            inputs=[
                io.BoundingBox.Input("bboxes", force_input=True,
                                     tooltip="Boxes in pixels of the image they were detected on."),
                io.Int.Input("width", default=1024, min=16, max=16384, step=1,
                             tooltip="Width in px of the image the boxes refer to (ignored if image is connected)."),
                io.Int.Input("height", default=1024, min=16, max=16384, step=1,
                             tooltip="Height in px of the image the boxes refer to (ignored if image is connected)."),
                io.Float.Input("expand", default=BOX_EXPAND, min=0.0, max=2.0, step=0.01,
                               tooltip="Grow each box by this fraction of its size on every side."),
                *policy_inputs(),
                io.Image.Input("image", optional=True, tooltip="The image the boxes were detected on (for its size)."),
            ],
            outputs=[FOVEA.Output(display_name="FOVEA"), io.Mask.Output(display_name="preview")],
        )

    @classmethod
    def execute(cls, bboxes, width, height, expand, periphery, ring_scale, feather, fovea=None, image=None):
        if image is not None:
            height, width = int(image.shape[1]), int(image.shape[2])
        boxes = boxes_from_input(bboxes)
        if not boxes:
            raise ValueError("no bounding boxes were given (the detector found nothing?); lower its threshold or "
                             "use another fovea")
        regions = regions_from_boxes(boxes, width, height, expand)
        f = make_fovea(regions, periphery, ring_scale, feather, fovea)
        return io.NodeOutput(f, preview_mask(f, width, height))


class FoveaFromSaliency(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FoveaFromSaliency",
            display_name="Fovea from Saliency",
            category="foveated",
            description="Place the fovea where the eye is drawn, by the paper's rule: smoothed saliency, region "
                        ">= threshold x peak, weighted centroid, radius covering `coverage` of the mass. Saliency "
                        "comes from a saliency MASK, or from an IMAGE via spectral residual (no weights needed).",
            inputs=[
                io.Image.Input("image", optional=True,
                               tooltip="Image to compute saliency from (spectral residual). Batches are averaged."),
                io.Mask.Input("saliency", optional=True,
                              tooltip="A saliency map to use directly (takes precedence over image)."),
                io.Float.Input("threshold", default=0.3, min=0.01, max=0.99, step=0.01,
                               tooltip="Keep the region at or above this fraction of the peak."),
                io.Float.Input("coverage", default=0.9, min=0.05, max=1.0, step=0.01,
                               tooltip="Radius covers this fraction of the kept saliency mass."),
                io.Float.Input("min_radius", default=0.2, min=0.01, max=2.0, step=0.01,
                               tooltip="Smallest radius (fraction of the half-diagonal)."),
                io.Float.Input("max_radius", default=0.5, min=0.01, max=2.0, step=0.01,
                               tooltip="Largest radius (fraction of the half-diagonal)."),
                *policy_inputs(),
            ],
            outputs=[FOVEA.Output(display_name="FOVEA"), io.Mask.Output(display_name="preview")],
        )

    @classmethod
    def execute(cls, threshold, coverage, min_radius, max_radius, periphery, ring_scale, feather,
                image=None, saliency=None, fovea=None):
        if saliency is not None:
            smap = saliency.float().reshape(-1, saliency.shape[-2], saliency.shape[-1]).mean(dim=0)
        elif image is not None:
            smap = torch.stack([spectral_residual_saliency(im) for im in image]).mean(dim=0)
        else:
            raise ValueError("connect an image or a saliency mask")
        if min_radius > max_radius:
            raise ValueError(f"min_radius ({min_radius}) must not exceed max_radius ({max_radius})")
        gaze = gaze_from_saliency(smap, threshold, coverage, min_radius, max_radius)
        f = make_fovea([gaze], periphery, ring_scale, feather, fovea)
        return io.NodeOutput(f, preview_mask(f, smap.shape[-1], smap.shape[-2]))


def parse_keyframes(text: str, num_frames: int) -> GazePath:
    """Keyframes from the widget: JSON list of {"frame", "x", "y", "radius"} or [frame, x, y, radius]."""
    items = json_list(text, "keyframes", '[{"frame": 0, "x": 0.5, "y": 0.5, "radius": 0.2}]')
    kfs = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            try:
                frame, x, y, r = item["frame"], item["x"], item["y"], item["radius"]
            except KeyError as exc:
                raise ValueError(f"keyframes[{i}] lacks {exc}; give frame, x, y and radius") from None
        elif isinstance(item, (list, tuple)) and len(item) == 4:
            frame, x, y, r = item
        else:
            raise ValueError(f"keyframes[{i}] = {item!r}: expected {{frame, x, y, radius}}")
        if isinstance(frame, float) and frame.is_integer():
            frame = int(frame)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y, r)):
            raise ValueError(f"keyframes[{i}]: x, y and radius must be numbers")
        kfs.append(GazeKeyframe(frame, float(x), float(y), float(r)))
    return GazePath(tuple(kfs), num_frames)


class GazePathNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GazePath",
            display_name="Gaze Path",
            category="foveated",
            description="A fovea that follows the gaze over video frames: keyframes (frame, center, radius) "
                        "interpolated smoothly (monotone cubic) for every frame. Use it with a video model.",
            search_aliases=["gaze", "trajectory", "foveated video"],
            inputs=[
                io.String.Input("keyframes", multiline=False,
                                default='[{"frame": 0, "x": 0.3, "y": 0.5, "radius": 0.25}, '
                                        '{"frame": 80, "x": 0.7, "y": 0.5, "radius": 0.25}]',
                                tooltip="Keyframes as JSON: frame index, normalized x and y, radius (fraction of "
                                        "the half-diagonal). Click in the canvas to add them."),
                io.Int.Input("num_frames", default=81, min=1, max=100000, step=1,
                             tooltip="Number of video frames the path covers (e.g. 81 for Wan 2.1)."),
                io.Int.Input("width", default=832, min=16, max=16384, step=16,
                             tooltip="Video width for the preview mask and the canvas aspect ratio (px)."),
                io.Int.Input("height", default=480, min=16, max=16384, step=16,
                             tooltip="Video height for the preview mask and the canvas aspect ratio (px)."),
                *policy_inputs(),
                io.Image.Input("preview_image", optional=True,
                               tooltip="Optional frame shown in the canvas to place the gaze on."),
            ],
            outputs=[FOVEA.Output(display_name="FOVEA"),
                     io.Mask.Output(display_name="preview", tooltip="One mask per video frame.")],
        )

    @classmethod
    def execute(cls, keyframes, num_frames, width, height, periphery, ring_scale, feather,
                fovea=None, preview_image=None) -> io.NodeOutput:
        path = parse_keyframes(keyframes, num_frames)
        f = make_fovea([], periphery, ring_scale, feather, fovea, path=path)
        return io.NodeOutput(f, preview_mask(f, width, height, frames=num_frames),
                             ui=canvas_image(preview_image, cls))
