"""Small helpers shared by the invariant tests (pure and real-ComfyUI tiers)."""


def assert_close(a, b, atol):
    err = (a - b).abs().max().item()
    assert err <= atol, f"max abs error {err:.3g} > {atol}"


def upsample(x, k):
    """Nearest upsampling by 2^k over the last two axes (a level-k result replicated back)."""
    s = 2**k
    return x.repeat_interleave(s, -1).repeat_interleave(s, -2)
