"""jaxdse.layerwise and LayerAccumulator against loops of jaxdse.dse / jaxdse.dsmi."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdse

L, B, T, D = 3, 3, 8, 4
LENGTHS = (8, 5, 6)
SIGMA = 1.0
RTOL, ATOL = 2e-5, 2e-5


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(L, B, T, D)).astype(np.float32)
    mask = np.arange(T)[None, :] < np.asarray(LENGTHS)[:, None]  # [B, T]
    h_pad = h.copy()
    h_pad[:, ~mask] = 1e6  # padded tokens hold garbage: it must count nowhere
    return h, h_pad, mask


def _dse(x):
    return float(jaxdse.dse(np.asarray(x, np.float32), sigma=SIGMA))


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_tokens_equals_loop_over_layers(data):
    h, h_pad, mask = data
    r = jaxdse.layerwise(h_pad, mask=mask, sigma=SIGMA)
    want = [_dse(h[i][mask]) for i in range(L)]
    np.testing.assert_allclose(r.value, want, rtol=RTOL, atol=ATOL)
    n = mask.sum()
    np.testing.assert_array_equal(r.count, [n] * L)
    np.testing.assert_allclose(r.normalized, np.asarray(want) / np.log2(n), rtol=1e-5)
    np.testing.assert_allclose(r.depth, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(r.stderr, 0.0)
    assert r.mi is None and r.value.shape == (L,)
    # the same as a sequence of [B, T, D] arrays (a Hugging Face tuple), and 0/1 masks
    r2 = jaxdse.layerwise(tuple(h_pad), mask=mask.astype(np.int32), sigma=SIGMA)
    np.testing.assert_allclose(r2.value, r.value, rtol=1e-6)


def test_prompt_equals_loop_over_layers_and_prompts(data):
    h, h_pad, mask = data
    r = jaxdse.layerwise(h_pad, mask=mask, granularity="prompt", sigma=SIGMA)
    want = [[_dse(h[i, b][mask[b]]) for b in range(B)] for i in range(L)]
    assert r.value.shape == (L, B)
    np.testing.assert_allclose(r.value, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(r.count, np.broadcast_to(LENGTHS, (L, B)))


def test_prompts_of_mixed_lengths_in_any_position():
    # Prompts are grouped by length (powers of two) and solved at that size; the
    # kept tokens may sit anywhere (left padding, holes). Each prompt's value is
    # that of its kept tokens, and prompt b of layer l keeps the key split(split(key, L)[l], B)[b].
    rng = np.random.default_rng(3)
    # T is not a power of two: the group of the longest prompts is solved at T.
    Lp, Bp, Tp = 2, 5, 30
    h = rng.normal(size=(Lp, Bp, Tp, D)).astype(np.float32)
    mask = np.zeros((Bp, Tp), bool)
    mask[0] = True  # 30 tokens
    mask[1, -3:] = True  # left padding, 3 tokens
    mask[2, ::2] = True  # holes, 15 tokens
    mask[3, 5:14] = True  # 9 tokens
    mask[4, :2] = True  # 2 tokens
    h[:, ~mask] = 1e6
    r = jaxdse.layerwise(h, mask=mask, granularity="prompt", sigma=SIGMA)
    want = [[_dse(h[i, b][mask[b]]) for b in range(Bp)] for i in range(Lp)]
    np.testing.assert_allclose(r.value, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(r.count, np.broadcast_to(mask.sum(-1), (Lp, Bp)))
    # SLQ: prompts shorter than num_matvecs are padded (masked) up to it.
    solver = jaxdse.SLQ(num_probes=4, num_matvecs=6, deflation_rank=2)
    r = jaxdse.layerwise(h, mask=mask, granularity="prompt", sigma=SIGMA, solver=solver, key=7)
    keys = jax.random.split(jax.random.key(7), Lp)
    for i in range(Lp):
        for b in (0, 2, 3):
            k = jax.random.split(keys[i], Bp)[b]
            want = float(jaxdse.dse(h[i, b][mask[b]], sigma=SIGMA, solver=solver, key=k))
            np.testing.assert_allclose(r.value[i, b], want, rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(np.asarray(r.value)))


@pytest.mark.parametrize("pool", ["mean", "last", "first"])
def test_dataset_pools_equal_manual_pooling(data, pool):
    h, h_pad, mask = data
    r = jaxdse.layerwise(h_pad, mask=mask, granularity="dataset", pool=pool, sigma=SIGMA)
    for i in range(L):
        if pool == "mean":
            v = np.stack([h[i, b][mask[b]].mean(0) for b in range(B)])
        elif pool == "last":
            v = np.stack([h[i, b, LENGTHS[b] - 1] for b in range(B)])
        else:
            v = h[i, :, 0]
        assert float(r.value[i]) == pytest.approx(_dse(v), rel=RTOL, abs=ATOL)
    np.testing.assert_array_equal(r.count, [B] * L)


def test_normalize_options_equal_manual_normalisation(data):
    h, h_pad, mask = data
    for how in ("l2", "center+l2"):
        r = jaxdse.layerwise(h_pad, mask=mask, normalize=how, sigma=SIGMA)
        for i in range(L):
            x = h[i][mask]
            if how == "center+l2":
                x = x - x.mean(0)
            assert float(r.value[i]) == pytest.approx(_dse(_unit(x)), rel=RTOL, abs=ATOL)
    # l2 changes the answer; centring alone does not (DSE depends on distances only)
    plain = jaxdse.layerwise(h_pad, mask=mask, sigma=SIGMA).value
    centred = jaxdse.layerwise(h_pad, mask=mask, normalize="center", sigma=SIGMA).value
    np.testing.assert_allclose(centred, plain, rtol=1e-5, atol=1e-5)
    assert not np.allclose(jaxdse.layerwise(h_pad, mask=mask, normalize="l2", sigma=SIGMA).value, plain, atol=1e-3)


def test_normalize_per_prompt(data):
    h, h_pad, mask = data
    r = jaxdse.layerwise(h_pad, mask=mask, granularity="prompt", normalize="center+l2", sigma=SIGMA)
    for b in range(B):
        x = h[1, b][mask[b]]
        assert float(r.value[1, b]) == pytest.approx(_dse(_unit(x - x.mean(0))), rel=RTOL, abs=ATOL)


def test_labels_give_per_layer_dsmi(data):
    h, h_pad, mask = data
    y_tok = np.arange(B * T).reshape(B, T) % 2
    r = jaxdse.layerwise(h_pad, mask=mask, labels=y_tok, sigma=SIGMA, mi_options={"estimator": "plugin"})
    want = [float(jaxdse.dsmi(h[i][mask], y_tok[mask], sigma=SIGMA, estimator="plugin")) for i in range(L)]
    np.testing.assert_allclose(r.mi, want, rtol=RTOL, atol=ATOL)
    assert np.all(np.asarray(r.mi) > 0.01)  # not trivially zero
    # The same under an outer jit (the hidden states traced, the mask and labels concrete).
    run = jax.jit(
        lambda x: jaxdse.layerwise(x, mask=mask, labels=y_tok, sigma=SIGMA, mi_options={"estimator": "plugin"})
    )
    jitted = run(h_pad)
    np.testing.assert_allclose(jitted.mi, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(jitted.value, r.value, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_labels_dataset_and_default_estimator(data):
    h, h_pad, mask = data
    y = np.array(["a", "b", "a"])  # labels [B], text classes
    r = jaxdse.layerwise(
        h_pad, mask=mask, granularity="dataset", labels=y, sigma=SIGMA, mi_options={"estimator": "plugin"}
    )
    for i in range(L):
        v = np.stack([h[i, b][mask[b]].mean(0) for b in range(B)])
        assert float(r.mi[i]) == pytest.approx(float(jaxdse.dsmi(v, y, sigma=SIGMA, estimator="plugin")), abs=ATOL)
    y_tok = np.arange(B * T).reshape(B, T) % 2
    r = jaxdse.layerwise(h_pad, mask=mask, labels=y_tok, sigma=SIGMA, key=0)  # "subsample" estimator
    assert r.mi.shape == (L,) and np.all(np.isfinite(r.mi))


@pytest.mark.parametrize(
    "g", ["dataset", pytest.param("prompt", marks=pytest.mark.slow), pytest.param("tokens", marks=pytest.mark.slow)]
)
def test_streaming_equals_one_shot(data, g):
    h, h_pad, mask = data
    y_tok = np.arange(B * T).reshape(B, T) % 2
    kw = dict(granularity=g, normalize="center+l2", sigma=SIGMA, mi_options={"estimator": "plugin"})
    labels = None if g == "prompt" else (y_tok if g == "tokens" else np.array([0, 1, 1]))
    acc = jaxdse.LayerAccumulator(**kw)
    for s in (slice(0, 2), slice(2, 3)):
        acc.add(h_pad[:, s], mask=mask[s], labels=None if labels is None else labels[s])
    got = acc.result()
    want = jaxdse.layerwise(h_pad, mask=mask, labels=labels, **kw)
    for name in ("value", "count", "normalized", "depth", "mi"):
        a, b = getattr(got, name), getattr(want, name)
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"{g} {name}")


@pytest.mark.slow
def test_points_without_token_axis(data):
    h, _, _ = data
    x = h.reshape(L, B * T, D)  # [L, N, D]
    keep = np.arange(B * T) % 3 != 0
    r = jaxdse.layerwise(x, mask=keep, sigma=SIGMA)
    np.testing.assert_allclose(r.value, [_dse(x[i][keep]) for i in range(L)], rtol=RTOL, atol=ATOL)
    r = jaxdse.layerwise(x, granularity="dataset", sigma=SIGMA)  # each row one sample
    np.testing.assert_allclose(r.value, [_dse(x[i]) for i in range(L)], rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_layers_of_different_widths(data):
    h, h_pad, mask = data
    rng = np.random.default_rng(1)
    wide = rng.normal(size=(B, T, 6)).astype(np.float32)
    layers = [h_pad[0], np.where(mask[..., None], wide, 1e6), h_pad[2]]
    r = jaxdse.layerwise(layers, mask=mask, sigma=SIGMA)
    want = [_dse(h[0][mask]), _dse(wide[mask]), _dse(h[2][mask])]
    np.testing.assert_allclose(r.value, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(r.depth, [0.0, 0.5, 1.0])


def test_lax_map_path_equals_vmap_path(data):
    h, h_pad, mask = data
    full = jaxdse.layerwise(h_pad, mask=mask, sigma=SIGMA).value
    try:
        jaxdse.set_memory_budget(3 * 4 * (B * T) ** 2 * 5)  # one layer at a time fits, three do not
        seq = jaxdse.layerwise(h_pad, mask=mask, sigma=SIGMA).value
    finally:
        jaxdse.set_memory_budget(None)
    np.testing.assert_allclose(seq, full, rtol=1e-6, atol=1e-6)


def test_staged_exact_path_equals_layer_by_layer(data):
    """On the CPU the exact solver builds every layer's operator before their eigenvalues
    when the L operators fit the budget; with a budget for one layer it goes layer by
    layer. Same values, gradients and NaN for a non-finite layer."""
    from jaxdse.layers.profile import _staged

    h, h_pad, mask = data
    h_bad = h_pad.copy()
    h_bad[1, 0, 0, 0] = np.nan  # a kept token of layer 1
    n, item = B * T, 4
    one_layer = jaxdse.Exact(memory_budget=6 * item * n * n)
    assert _staged("tokens", L, n, np.float32, jaxdse.Exact(), False) == (jax.default_backend() == "cpu")
    assert not _staged("tokens", L, n, np.float32, one_layer, False)
    for x in (h_pad, h_bad):
        staged = jaxdse.layerwise(x, mask=mask, sigma=SIGMA, normalize="l2").value
        by_layer = jaxdse.layerwise(x, mask=mask, sigma=SIGMA, normalize="l2", solver=one_layer).value
        np.testing.assert_allclose(staged, by_layer, rtol=1e-6, atol=1e-6)
    assert np.isnan(staged[1]) and np.all(np.isfinite(np.asarray(staged)[[0, 2]]))

    def total(x, solver):
        return jaxdse.layerwise(x, mask=mask, sigma=SIGMA, solver=solver).value.sum()

    g_staged = jax.grad(total)(jnp.asarray(h_pad), jaxdse.Exact())
    g_layer = jax.grad(total)(jnp.asarray(h_pad), one_layer)
    np.testing.assert_allclose(g_staged, g_layer, rtol=1e-4, atol=1e-6)


def test_short_prompt_nan_under_jit_only_for_itself(data):
    h, h_pad, mask = data
    short = mask.copy()
    short[1] = False
    short[1, 0] = True  # prompt 1 keeps one token
    with pytest.raises(ValueError, match="prompt 1"):
        jaxdse.layerwise(h_pad, mask=short, granularity="prompt", sigma=SIGMA)
    f = jax.jit(lambda x, m: jaxdse.layerwise(x, mask=m, granularity="prompt", sigma=SIGMA).value)
    got = np.asarray(f(h_pad, short))
    assert np.all(np.isnan(got[:, 1]))
    ok = np.asarray(f(h_pad, mask))
    np.testing.assert_allclose(got[:, [0, 2]], ok[:, [0, 2]], rtol=1e-6)
    np.testing.assert_allclose(
        ok, jaxdse.layerwise(h_pad, mask=mask, granularity="prompt", sigma=SIGMA).value, rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_grad_matches_loop(data):
    h, _, mask = data
    m = jnp.asarray(mask.reshape(-1))

    def ours(x):
        return jaxdse.layerwise(x, mask=mask, normalize="l2", sigma=SIGMA).value.sum()

    def loop(x):
        flat = x.reshape(L, B * T, D)
        return sum(
            jaxdse.dse(flat[i] / jnp.linalg.norm(flat[i], axis=-1, keepdims=True), sigma=SIGMA, mask=m)
            for i in range(L)
        )

    g = jax.grad(ours)(jnp.asarray(h))
    assert np.all(np.isfinite(g)) and np.any(g != 0)
    np.testing.assert_allclose(g, jax.grad(loop)(jnp.asarray(h)), rtol=1e-3, atol=1e-5)
    assert np.all(np.asarray(g)[:, ~mask] == 0)  # padded tokens get no gradient


@pytest.mark.slow
def test_slq_solver_runs(data):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 120, 4)).astype(np.float32)
    solver = jaxdse.SLQ(num_probes=8, num_matvecs=10, deflation_rank=8)
    with pytest.raises(ValueError, match="key"):
        jaxdse.layerwise(x, sigma=SIGMA, solver=solver)
    r = jaxdse.layerwise(x, sigma=SIGMA, solver=solver, key=0)
    exact = [_dse(x[i]) for i in range(2)]
    assert np.all(np.abs(np.asarray(r.value) - exact) < 4 * np.asarray(r.stderr) + 0.05)
    assert np.all(np.asarray(r.stderr) > 0)


def test_bad_input_errors(data):
    h, h_pad, mask = data
    lw = jaxdse.layerwise
    with pytest.raises(ValueError, match="hidden_states"):
        lw(h[0, 0], sigma=SIGMA)  # rank 2
    with pytest.raises(ValueError, match="hidden_states"):
        lw(h[..., None], sigma=SIGMA)  # rank 5
    with pytest.raises(ValueError, match="mask"):
        lw(h, mask=mask[:, :5], sigma=SIGMA)
    with pytest.raises(ValueError, match="mask"):
        lw(h, mask=mask * 2, sigma=SIGMA)
    with pytest.raises(ValueError, match="different lengths"):
        lw([h[0], h[1, :, :5]], sigma=SIGMA)
    with pytest.raises(ValueError, match="labels"):
        lw(h, mask=mask, granularity="dataset", labels=[0, 1], sigma=SIGMA, mi_options={"estimator": "plugin"})
    with pytest.raises(ValueError, match="labels"):
        lw(h, mask=mask, labels=np.zeros(B), sigma=SIGMA, mi_options={"estimator": "plugin"})
    with pytest.raises(ValueError, match="labels"):
        lw(h, mask=mask, labels=np.zeros((B, T)), sigma=SIGMA)  # subsample estimator without key
    with pytest.raises(ValueError, match="granularity"):
        lw(h, granularity="token", sigma=SIGMA)
    with pytest.raises(ValueError, match="granularity"):
        lw(h.reshape(L, B * T, D), granularity="prompt", sigma=SIGMA)
    with pytest.raises(ValueError, match="pool"):
        lw(h, granularity="dataset", pool="max", sigma=SIGMA)
    with pytest.raises(ValueError, match="normalize"):
        lw(h, normalize="l1", sigma=SIGMA)
    with pytest.raises(ValueError, match="sigma"):
        lw(h, sigma=-1.0)
    with pytest.raises(TypeError, match="hidden_states"):
        lw(np.zeros((L, B, T, D), complex), sigma=SIGMA)
    empty = mask.copy()
    empty[2] = False
    with pytest.raises(ValueError, match="sequence 2"):
        lw(h, mask=empty, granularity="dataset", sigma=SIGMA)
    acc = jaxdse.LayerAccumulator(granularity="dataset", sigma=SIGMA)
    acc.add(h, mask=mask)
    with pytest.raises(ValueError, match="layers"):
        acc.add(h[:2], mask=mask)
    with pytest.raises(ValueError, match="nothing"):
        jaxdse.LayerAccumulator().result()


def test_vmap_over_stacks(data):
    h, h_pad, mask = data
    stacks = jnp.stack([h_pad, h_pad[::-1]])
    got = jax.vmap(lambda x: jaxdse.layerwise(x, mask=mask, sigma=SIGMA).value)(stacks)
    want = np.stack([jaxdse.layerwise(s, mask=mask, sigma=SIGMA).value for s in (h_pad, h_pad[::-1])])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], got[0][::-1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "granularity, normalize, labelled",
    [("tokens", "l2", False), ("tokens", "center+l2", True), ("dataset", "l2", True), ("prompt", "center+l2", False)],
)
def test_no_copy_of_the_whole_stack(granularity, normalize, labelled):
    """Each layer's points are formed inside the map: the compiled program's temporaries
    stay far below the stack's size (a normalised copy of the stack was one of them)."""
    h = jnp.asarray(np.random.default_rng(0).normal(size=(16, 4, 16, 1024)).astype(np.float32))
    mask = np.ones((4, 16), bool)
    mask[1, 10:] = False
    labels = None
    if labelled:
        labels = np.arange(4) % 2 if granularity == "dataset" else np.arange(64).reshape(4, 16) % 2
    opts = {"estimator": "plugin"} if labelled else None

    def run(x):
        kw = dict(mask=mask, granularity=granularity, normalize=normalize, labels=labels, mi_options=opts)
        return jaxdse.layerwise(x, sigma=SIGMA, **kw).value

    temp = jax.jit(run).lower(h).compile().memory_analysis().temp_size_in_bytes
    assert temp < h.nbytes / 4, (temp, h.nbytes)
