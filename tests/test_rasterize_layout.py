"""Rasterization rules, layouts and canvas packing, with property tests."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fov_core import (
    Fovea, Gaze, LatentPacking, LayoutCache, LevelPolicy, SequencePlan, TokenGrid, TokenLayout, assign_levels,
    group_keys as fc_group_keys,
    check_block_consistent, level_view, merge_levels, rasterize,
)

pytestmark = pytest.mark.pure

POLICIES = [LevelPolicy.half(), LevelPolicy.quarter(), LevelPolicy.rings(2.0), LevelPolicy((0, 1, 3), (1.7,))]


def test_max_pool_rule_one_fine_token_keeps_its_block():
    desired = torch.full((1, 8, 8), 2)
    desired[0, 5, 2] = 0
    lm = assign_levels(desired, (0, 2))
    assert (lm[0, 4:8, 0:4] == 0).all()
    assert (lm[0, :4] == 2).all() and (lm[0, 4:, 4:] == 2).all()
    lm3 = assign_levels(desired, (0, 1, 2))
    assert (lm3[0, 4:6, 2:4] == 0).all()
    assert (lm3[0, 4:8, 0:4][lm3[0, 4:8, 0:4] != 0] == 1).all()


def test_a_tiny_fovea_on_the_image_edge_keeps_its_token():
    lm = rasterize(Fovea((Gaze(0.0, 1.0, 0.0625),)), TokenGrid(1, 8, 8))[0]
    assert lm[7, 0] == 0


def test_edge_blocks_fall_back_to_a_finer_level_that_fits():
    desired = torch.full((1, 7, 10), 2)
    lm = assign_levels(desired, (0, 1, 2))
    check_block_consistent(lm)
    assert (lm[0, :4, :8] == 2).all()
    assert (lm[0, 4:6, :] == 1).all() and (lm[0, :4, 8:10] == 1).all()
    assert (lm[0, 6, :] == 0).all()
    lm2 = assign_levels(desired, (0, 2))
    assert (lm2[0, 4:, :] == 0).all() and (lm2[0, :, 8:] == 0).all()


def test_block_consistency_check_rejects_broken_maps():
    bad = torch.zeros(1, 4, 4, dtype=torch.long)
    bad[0, 0, 0] = 1
    with pytest.raises(ValueError, match="complete aligned 2x2"):
        check_block_consistent(bad)
    shifted = torch.zeros(1, 4, 4, dtype=torch.long)
    shifted[0, 1:3, 1:3] = 1
    with pytest.raises(ValueError):
        check_block_consistent(shifted)
    edge = torch.zeros(1, 3, 4, dtype=torch.long)
    edge[0, 2:3, 0:2] = 1
    with pytest.raises(ValueError, match="edge block"):
        check_block_consistent(edge)


grids = st.builds(
    TokenGrid,
    frames=st.integers(1, 3),
    height=st.integers(8, 23),
    width=st.integers(8, 23),
    frame_stride=st.just(4),
)
gazes = st.builds(
    Gaze,
    x=st.floats(0.0, 1.0),
    y=st.floats(0.0, 1.0),
    radius=st.floats(0.02, 0.8),
    aspect=st.floats(0.3, 3.0),
    rotation=st.floats(-180, 180),
)


@settings(max_examples=60, deadline=None)
@given(grid=grids, gs=st.lists(gazes, min_size=1, max_size=3), policy=st.sampled_from(POLICIES))
def test_rasterize_is_block_consistent_and_covers_every_gaze(grid, gs, policy):
    lm = rasterize(Fovea(tuple(gs), policy), grid)
    check_block_consistent(lm)
    assert set(torch.unique(lm).tolist()) <= set(policy.levels)
    for g in gs:  # the token holding each gaze point (edges belong to the last token) is full resolution
        if 0 <= g.x <= 1 and 0 <= g.y <= 1:
            ty, tx = min(int(g.y * grid.height), grid.height - 1), min(int(g.x * grid.width), grid.width - 1)
            assert (lm[:, ty, tx] == 0).all()


@settings(max_examples=60, deadline=None)
@given(grid=grids, gs=st.lists(gazes, min_size=1, max_size=2), policy=st.sampled_from(POLICIES), p=st.sampled_from([1, 2]))
def test_pack_unpack_round_trips(grid, gs, policy, p):
    layout = TokenLayout(rasterize(Fovea(tuple(gs), policy), grid))
    pk = LatentPacking(layout, p)
    T, Hl, Wl = pk.latent_shape
    shape = (2, 3, T, Hl, Wl) if T > 1 else (2, 3, Hl, Wl)
    canvas = torch.randn(shape)
    canon = pk.canonicalize(canvas)
    assert torch.equal(pk.canonicalize(canon), canon)
    assert torch.equal(pk.unpack(pk.pack(canvas), video=T > 1), canon)
    assert torch.equal(pk.unpack_strip(pk.pack_strip(canvas)), canon)
    tokens = torch.randn(2, layout.n_tokens, 3 * p * p)
    assert torch.equal(pk.pack(pk.unpack(tokens, video=T > 1)), tokens)
    # every pixel is covered exactly by its group: counts add up
    assert layout.n_tokens == sum(layout.counts().values())
    assert sum(n * 4**k for k, n in layout.counts().items()) == layout.full_tokens


@settings(max_examples=40, deadline=None)
@given(grid=grids, gs=st.lists(gazes, min_size=1, max_size=2), policy=st.sampled_from(POLICIES),
       seed=st.integers(0, 2**16), share=st.floats(0.0, 0.3))
def test_tokens_made_full_resolution_only_lower_levels(grid, gs, policy, seed, share):
    """Inpainting: tokens a noise mask keeps decode at full resolution; every other token
    keeps its level or gets finer, so a latent canonical for the fovea stays canonical."""
    layout = TokenLayout(rasterize(Fovea(tuple(gs), policy), grid))
    full = torch.rand(layout.shape, generator=torch.Generator().manual_seed(seed)) < share
    promoted = layout.with_full_resolution(full)
    lm = promoted.level_map
    assert (lm[full] == 0).all() and (lm <= layout.level_map).all()
    assert promoted is layout.with_full_resolution(full)  # built once per set of tokens
    if not full.any():
        assert promoted is layout
    for p in (1, 2):
        pk = LatentPacking(layout, p)
        T, Hl, Wl = pk.latent_shape
        canon = pk.canonicalize(torch.randn((1, 2, T, Hl, Wl) if T > 1 else (1, 2, Hl, Wl)))
        assert LatentPacking(promoted, p).is_canonical(canon)


def test_layout_order_positions_and_key_subsets():
    lm = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]])
    layout = TokenLayout(lm)
    assert layout.counts() == {0: 8, 1: 2}
    # coarse lattice first: full-res tokens on the 2-lattice, then the 1/2 tokens (block
    # top-lefts), then the remaining full-res tokens in raster order
    assert list(zip(layout.y.tolist(), layout.x.tolist())) == [
        (0, 0), (2, 2), (0, 2), (2, 0), (0, 1), (1, 0), (1, 1), (2, 3), (3, 2), (3, 3)]
    assert layout.runs == {0: [(0, 2), (4, 10)], 1: [(2, 4)]}
    # the level-1 view (level-1 tokens + top-left of each full-res 2x2 block) is a prefix
    assert layout.lattice_count == {0: 10, 1: 4}
    assert torch.equal(layout.positions(1)[2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("policy", [LevelPolicy.half(), LevelPolicy.quarter(), LevelPolicy.rings(2.0),
                                    LevelPolicy((0, 1, 3), (2.5,))])
def test_every_view_is_a_prefix_and_levels_are_few_runs(policy):
    layout = TokenLayout(rasterize(Fovea((Gaze(0.4, 0.45, 0.15), Gaze(0.8, 0.2, 0.05)), policy),
                                   TokenGrid(2, 24, 20)))
    for k in layout.levels:
        on = (layout.y % 2**k == 0) & (layout.x % 2**k == 0)
        n = layout.lattice_count[k]
        assert bool(on[:n].all()) and not bool(on[n:].any())  # exactly the 2^k lattice, first
        runs = layout.runs[k]
        assert all(bool((layout.level[s:e] == k).all()) for s, e in runs)
        assert sum(e - s for s, e in runs) == int((layout.level == k).sum())
        if k == layout.base_level:  # two runs, the first next to a text prefix
            assert len(runs) <= 2 and runs[0][0] == 0
        elif len(layout.levels) <= 3:  # two levels or rings: one run
            assert len(runs) == 1
    # raster order inside each (class, level) segment, every block exactly once
    assert layout.flat_index.unique().numel() == layout.n_tokens


def test_sequence_plan_groups_cover_every_query_once():
    f = Fovea((Gaze(0.4, 0.4, 0.2),), LevelPolicy.rings(2.0))
    layout = TokenLayout(rasterize(f, TokenGrid(1, 16, 16)))
    plan = SequencePlan.of(layout, n_prefix=7, n_suffix=5)
    q = sorted(i for g in plan.groups for s, e in g.q_ranges for i in range(s, e))
    assert q == list(range(plan.seq_len))
    assert [s for s, _, _ in plan.pieces] == sorted(s for g in plan.groups for s, _ in g.q_ranges)
    for g in plan.groups[1:]:
        assert 7 < g.k_end < plan.image_end and plan.n_keys(g) == g.k_end + 5 < plan.seq_len
    x = torch.arange(plan.seq_len).view(1, 1, -1, 1)
    keys = fc_group_keys(x, plan, plan.groups[-1]).flatten().tolist()
    assert keys[:7] == list(range(7)) and keys[-5:] == list(range(plan.seq_len - 5, plan.seq_len))
    kv_cache = SequencePlan.of(layout, n_prefix=7, n_suffix=5, suffix_queries=False)
    assert kv_cache.q_len == kv_cache.image_end and kv_cache.pieces[-1][1] == kv_cache.image_end


def test_canvas_noise_has_iid_representatives_and_replicated_groups():
    layout = TokenLayout(rasterize(Fovea((Gaze(0.5, 0.5, 0.15),), LevelPolicy.quarter()), TokenGrid(1, 32, 32)))
    pk = LatentPacking(layout, 2)
    g = torch.Generator().manual_seed(0)
    noise = pk.noise((8, 16, 64, 64), generator=g)
    assert pk.is_canonical(noise)
    reps = pk.pack(noise)
    assert abs(float(reps.mean())) < 0.02 and abs(float(reps.std()) - 1) < 0.02
    # representatives are distinct entries of one i.i.d. draw, hence i.i.d.
    assert pk.element_index.unique().numel() == pk.element_index.numel()
    g2 = torch.Generator().manual_seed(0)
    draw = torch.randn((8, 16, 64, 64), generator=g2)
    assert torch.equal(reps, pk.pack(draw))
    # a level-2 group of a p=2 token: 4x4 pixels equal
    lvl2 = (layout.level == 2).nonzero()[0, 0]
    y, x = int(layout.y[lvl2]) * 2, int(layout.x[lvl2]) * 2
    block = noise[0, 0, y : y + 8, x : x + 8]
    assert torch.all(block[:4, :4] == block[0, 0]) and block[0, 0] != block[0, 4]


def test_merge_uses_the_latent_of_the_downsampled_image():
    layout = TokenLayout(rasterize(Fovea((Gaze(0.5, 0.5, 0.2),), LevelPolicy.rings(2.0)), TokenGrid(1, 16, 16)))
    pk = LatentPacking(layout, 2)
    full = torch.randn(1, 4, 32, 32)
    low = {1: torch.randn(1, 4, 16, 16), 2: torch.randn(1, 4, 8, 8)}
    canvas = merge_levels(pk, full, low)
    assert pk.is_canonical(canvas)
    plev = pk.pixel_levels()[0]
    assert torch.equal(canvas[0][:, plev == 0], full[0][:, plev == 0])
    for k, z in low.items():
        view = level_view(canvas, k)
        mask = level_view(plev, k) == k
        assert torch.equal(view[0][:, mask], z[0][:, mask])
    with pytest.raises(ValueError, match="no latent of the 1/4 image"):
        merge_levels(pk, full, {1: low[1]})


def test_layout_cache_builds_once_per_fovea_and_grid():
    cache = LayoutCache(size=2)
    f = Fovea((Gaze(0.5, 0.5, 0.2),))
    g = TokenGrid(1, 16, 16)
    a = cache.get(f, g)
    assert cache.get(Fovea((Gaze(0.5, 0.5, 0.2),)), g) is a
    b = cache.get(f, TokenGrid(1, 16, 32))
    assert b is not a and len(cache) == 2
    cache.get(Fovea((Gaze(0.3, 0.5, 0.2),)), g)
    assert len(cache) == 2  # LRU bound


def test_packing_rejects_a_latent_of_the_wrong_size():
    layout = TokenLayout(rasterize(Fovea((Gaze(0.5, 0.5, 0.2),)), TokenGrid(1, 8, 8)))
    pk = LatentPacking(layout, 2)
    with pytest.raises(ValueError, match="does not match the fovea layout"):
        pk.pack(torch.zeros(1, 4, 16, 18))
