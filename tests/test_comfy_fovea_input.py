"""The fovea nodes on bad and on large input, through ComfyUI's real executor (or a node's
execute): every bad input is a clear error that says what to change, the executor keeps
working; a 4096x4096 MASK fovea works."""
import pytest
import torch

from comfy_fixtures.prompts import FAMILY, Prompt, base, fovea, ksampler

pytestmark = pytest.mark.comfyui

POLICY = dict(periphery="1/2 resolution", ring_scale=2.0, feather=0.03)


def run(env, prompt, **kw):
    return env.harness.run_prompt(env.handle, prompt, clear_cache=True, **kw)


def mask_batch(p, frames, value=1.0):
    """A MASK batch of `frames` 64x64 masks, all `value`."""
    mk = p.add("SolidMask", value=value, width=64, height=64)
    batch = p.add("RepeatImageBatch", image=p.out(p.add("MaskToImage", mask=p.out(mk))), amount=frames)
    return p.add("ImageToMask", image=p.out(batch), channel="red")


def gaze_path(p, frames, **kw):
    return p.add("GazePath", keyframes='[{"frame": 0, "x": 0.5, "y": 0.5, "radius": 0.2}]', num_frames=frames,
                 width=64, height=64, **POLICY, **kw)


def odd_latent(p):
    m, v, lat, pos, neg = base(p, "flux1_dev")
    lat = p.add("EmptySD3LatentImage", width=264, height=256, batch_size=1)  # 33 latent px: not whole tokens
    ksampler(p, p.add("ApplyFoveation", model=p.out(m), fovea=p.out(fovea(p))), pos, neg, lat)


def video_mask_on_image(p):
    m, v, lat, pos, neg = base(p, "flux1_dev")
    fv = p.add("FoveaFromMask", mask=p.out(mask_batch(p, 9)), threshold=0.5, **POLICY)
    ksampler(p, p.add("ApplyFoveation", model=p.out(m), fovea=p.out(fv)), pos, neg, lat)


def encode_size(p):
    m, v, lat, pos, neg = base(p, "flux1_dev")
    img = p.add("EmptyImage", width=200, height=120, batch_size=1, color=0)
    p.add("FoveatedEncode", pixels=p.out(img), vae=p.out(v), fovea=p.out(fovea(p)))


def mask_batch_into_gaze_path(p):
    gaze_path(p, 9, fovea=p.out(p.add("FoveaFromMask", mask=p.out(mask_batch(p, 5)), threshold=0.5, **POLICY)))


def gaze_path_into_mask_node(p):
    p.add("FoveaFromMask", mask=p.out(mask_batch(p, 5)), threshold=0.5, fovea=p.out(gaze_path(p, 9)), **POLICY)


def box_outside(p):
    box = p.add("PrimitiveBoundingBox", x=300, y=10, width=40, height=40)
    p.add("FoveaFromBoxes", bboxes=p.out(box), width=256, height=256, expand=0.1, **POLICY)


CASES = {
    "odd_latent": (odd_latent, "multiples of 16 px .*width 256 or 272 px"),
    "video_mask_on_image": (video_mask_on_image, "single image"),
    "bad_json": (lambda p: fovea(p, extra_gazes="[[0.1, 0.2"), "extra_gazes must be JSON"),
    "encode_size": (encode_size, "multiples of 16 px"),
    # a mask batch whose length fits neither 1 nor the frames: both numbers, what to give
    "mask_batch_into_gaze_path": (mask_batch_into_gaze_path,
                                  r"the mask has 5 frames but the video has 9 frames .*give 1 mask .*, 9 \(one per"),
    "gaze_path_into_mask_node": (gaze_path_into_mask_node, r"the mask has 5 frames but the video has 9 frames"),
    # non-finite extra gazes: which gaze, which field
    "nan_extra_gaze": (lambda p: fovea(p, extra_gazes="[[0.3, 0.3, 0.1], [0.5, NaN, 0.2]]"),
                       r"extra_gazes\[1\]: gaze y must be a finite number, got nan"),
    "inf_extra_gaze": (lambda p: fovea(p, extra_gazes='[{"x": 0.5, "y": 0.5, "radius": Infinity}]'),
                       r"extra_gazes\[0\]: gaze radius must be a finite number, got inf"),
    "string_extra_gaze": (lambda p: fovea(p, extra_gazes='[{"x": "left", "y": 0.5, "radius": 0.2}]'),
                          r"extra_gazes\[0\]: x must be a number, got 'left'"),
    # a fovea entirely outside the image, by every route
    "gaze_outside": (lambda p: fovea(p, x=1.45, y=1.45, radius=0.02),
                     "the fovea does not reach into the image.*Move the gaze point"),
    "extra_gaze_far_outside": (lambda p: fovea(p, extra_gazes="[[3.0, 0.5, 0.2]]"),
                               r"extra_gazes\[0\]: gaze center \(3, 0.5\) is far outside the image.*within"),
    "box_outside": (box_outside, r"bounding box .*'x': 300.* in a 256x256 px image: .*lies outside the image"
                                 r".*connect that image, or set width and height"),
    "empty_mask": (lambda p: p.add("FoveaFromMask", mask=p.out(mask_batch(p, 1, value=0.0)), threshold=0.5, **POLICY),
                   "mask is empty: no value reaches the threshold 0.5 .*largest value is 0.*lower the threshold"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_a_clear_error(env, case):
    build, match = CASES[case]
    p = Prompt()
    build(p)
    with pytest.raises(env.harness.PromptExecutionError, match=match) as exc:
        run(env, p)
    assert "Traceback" not in str(exc.value).split("\n")[0]
    ok = Prompt()
    fovea(ok)
    assert run(env, ok)  # the executor keeps working


def test_zero_size_boxes_are_rejected(env):
    cls = env.pack.nodes.fovea_nodes.FoveaFromBoxes
    with pytest.raises(ValueError, match="positive width and height"):
        cls.execute([{"x": 1, "y": 1, "width": 0, "height": 5}], 256, 256, 0.0, "1/2 resolution", 2.0, 0.03)
    with pytest.raises(ValueError, match="no bounding boxes"):
        cls.execute([[]], 256, 256, 0.0, "1/2 resolution", 2.0, 0.03)


def test_a_4096_mask_fovea_works(env):
    """Fovea from Mask on a 4096x4096 MASK, then Apply Foveation's readout on the 4096x4096
    latent of FLUX.1 (the real adapter's 256x256-token grid): rings around the mask."""
    from comfy import sd as comfy_sd

    nodes = env.pack.nodes
    mask = torch.zeros(1, 4096, 4096)
    mask[:, 1024:3072, 512:2048] = 1.0
    fov, preview = nodes.fovea_nodes.FoveaFromMask.execute(mask, 0.5, "rings: 1/2 then 1/4", 2.0, 0.03).result
    assert preview.shape == (1, 4096, 4096)
    assert float(preview[0, 2000, 1000]) == 1.0 and float(preview[0, 2000, 2300]) == 0.5
    assert float(preview[0, 10, 4000]) == 0.25
    mp = comfy_sd.load_diffusion_model(str(env.models / "diffusion_models" / FAMILY["flux1_dev"][0]))
    latent = {"samples": torch.zeros(1, 16, 512, 512)}
    readout = nodes.apply_node.ApplyFoveation.execute(mp, fov, latent).result[1]
    assert "4096x4096" in readout and "/65536 tokens" in readout and "full: 12288" in readout


def test_a_mask_merged_with_a_gaze_path_previews_every_path_frame(env):
    p = Prompt()
    single = p.add("FoveaFromMask", mask=p.out(mask_batch(p, 1)), threshold=0.5, fovea=p.out(gaze_path(p, 9)),
                   **POLICY)
    per_frame = p.add("FoveaFromMask", mask=p.out(mask_batch(p, 9)), threshold=0.5, fovea=p.out(gaze_path(p, 9)),
                      **POLICY)
    r = run(env, p)
    for node in (single, per_frame):
        fov, preview = r[node]
        assert fov.path.num_frames == 9 and preview.shape == (9, 64, 64) and bool((preview == 1.0).all())
