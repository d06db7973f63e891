"""jaxdse.monitor.training (DSE/DSMI inside a training or evaluation step) and jaxdse.zoo (the example CNN and loop)."""

import pathlib
import re

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxdse
from jaxdse import zoo
from jaxdse.monitor import training

pytest.importorskip("sklearn")

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def digits():
    from jaxdse.data import load_digits

    x, y = load_digits()
    (x_tr, y_tr), (x_te, y_te) = zoo.train_test_split(zoo.as_images(x), y, key=jax.random.key(0))
    # A small subset keeps the module fast.
    return x_tr[:400], y_tr[:400], x_te[:120], y_te[:120]


def _params(model):
    """The model's parameters as ``{"layer/name": array}``."""
    flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v) for path, v in flat}


def _pure(model):
    """``(apply, params)``: the same NNX model as a function of a plain parameter pytree (a copy, not a view)."""
    graphdef, params = nnx.split(model)
    return (lambda p, x: nnx.merge(graphdef, p)(x)), jax.tree.map(jnp.copy, params)


# ---------------------------------------------------------------- zoo


def test_as_images_shapes_and_scale():
    x = np.arange(2 * 64, dtype=np.float32).reshape(2, 64)
    img = zoo.as_images(x)
    assert img.shape == (2, 8, 8, 1)
    assert img.max() == 1.0
    assert zoo.as_images(np.ones((3, 5, 5))).shape == (3, 5, 5, 1)
    assert zoo.as_images(np.ones((3, 12)), image_shape=(3, 4, 1)).shape == (3, 3, 4, 1)
    with pytest.raises(ValueError, match="square"):
        zoo.as_images(np.ones((3, 12)))


def test_cnn_shapes_and_bad_args():
    model = zoo.CNN((8, 8, 1), width=4, depth=3, features=8, num_classes=5, rngs=nnx.Rngs(0))
    logits, z = model(jnp.zeros((3, 8, 8, 1)))
    assert logits.shape == (3, 5) and z.shape == (3, 8)
    assert jnp.all(z >= 0)  # after the ReLU
    # Pooling while the map is at least 4 wide: 8 -> 4 -> 2, then no more; channels 4, 8, 16.
    assert [c.kernel.shape for c in model.convs] == [(3, 3, 1, 4), (3, 3, 4, 8), (3, 3, 8, 16)]
    assert model.hidden.kernel.shape == (2 * 2 * 16, 8)
    # An integer seed is the key it names.
    a, b = (
        _params(zoo.CNN(width=2, depth=1, features=4, rngs=3)),
        _params(zoo.CNN(width=2, depth=1, features=4, rngs=jax.random.key(3))),
    )
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="width"):
        zoo.CNN(width=0, rngs=0)
    with pytest.raises(ValueError, match="image_shape"):
        zoo.CNN((8, 8), rngs=0)


def test_conv_std_vmapped_draws_conv_kernels_with_that_std():
    stds = jnp.array([0.01, 0.1, 1.0])
    keys = jax.random.split(jax.random.key(1), 3)
    models = nnx.vmap(lambda k, s: zoo.CNN(width=16, depth=2, features=8, conv_std=s, rngs=k))(keys, stds)
    kernel = models.convs[1].kernel[...]  # [3, 3, 3, 16, 32]
    np.testing.assert_allclose(jnp.std(kernel.reshape(3, -1), axis=1), stds, rtol=0.05)
    # Dense layers keep LeCun normal (std 1/sqrt(fan_in)), biases zero.
    fan_in = models.hidden.kernel.shape[1]
    np.testing.assert_allclose(jnp.std(models.hidden.kernel[...].reshape(3, -1), axis=1), fan_in**-0.5, rtol=0.1)
    assert not np.any(np.asarray(models.convs[0].bias[...]))


def test_fit_then_evaluator_matches_library_and_compiles_once(digits):
    # One test (not a shared fixture) so that parallel test workers train only once.
    x_tr, y_tr, x_te, y_te = digits
    clusters = zoo.cluster_inputs(x_te, 4)
    h = zoo.fit(
        x_tr,
        y_tr,
        x_te,
        y_te,
        epochs=4,
        key=jax.random.key(1),
        width=8,
        features=32,
        learning_rate=1e-2,
        batch_size=32,
        x_clusters=clusters,
        num_repetitions=3,
    )
    assert h["epoch"] == [0, 1, 2, 3, 4]
    for name in ("test_accuracy", "dse", "dsmi_y", "dsmi_x", "train_accuracy"):
        assert len(h[name]) == 5 and np.all(np.isfinite(h[name])), name
    assert np.isnan(h["train_loss"][0]) and np.all(np.isfinite(h["train_loss"][1:]))
    assert h["test_accuracy"][-1] > 0.5  # chance is 0.1
    assert h["train_loss"][-1] < h["train_loss"][1]
    assert all(0.0 <= v <= np.log2(120) + 1e-4 for v in h["dse"])
    assert int(h["optimizer"].step[...]) == 4 * (400 // 32)

    # The evaluator's numbers equal the library's on the pulled-out features.
    model, evaluate = h["model"], h["evaluate"]
    np.testing.assert_array_equal(h["x_clusters"], clusters)
    key = jax.random.key(7)
    m = evaluate(model, jnp.asarray(x_te), jnp.asarray(y_te), jnp.asarray(clusters), key)

    logits, z = model(jnp.asarray(x_te))
    key_y, key_x = jax.random.split(key)
    n_y, max_y = int(y_te.max()) + 1, int(np.bincount(y_te).max())
    n_x, max_x = int(clusters.max()) + 1, int(np.bincount(clusters).max())
    np.testing.assert_allclose(m.accuracy, np.mean(np.argmax(logits, -1) == y_te), atol=1e-6)
    np.testing.assert_allclose(m.dse, jaxdse.dse(z, sigma=10.0, t=1.0), atol=1e-4)
    np.testing.assert_allclose(
        m.dsmi_y, jaxdse.dsmi(z, y_te, key=key_y, num_repetitions=3, num_classes=n_y, max_class_size=max_y), atol=1e-4
    )
    np.testing.assert_allclose(
        m.dsmi_x,
        jaxdse.dsmi(z, clusters, key=key_x, num_repetitions=3, num_classes=n_x, max_class_size=max_x),
        atol=1e-4,
    )
    assert m.dse > 0.1 and m.dsmi_y > 0.05  # a trained network's features are spread and label-related

    # The same evaluator on a parameter pytree (apply=) gives the same numbers, and compiles once:
    # other parameters, keys and labels of the same shape reuse it.
    traces = []
    apply, params = _pure(model)
    counted = training.make_evaluator(
        y_te, clusters, apply=lambda p, x: (traces.append(1), apply(p, x))[1], num_repetitions=3
    )
    m2 = counted(params, jnp.asarray(x_te), jnp.asarray(y_te), jnp.asarray(clusters), key)
    for a, b in zip(m, m2):
        np.testing.assert_allclose(a, b, atol=1e-6)
    _, params2 = _pure(zoo.CNN(width=8, features=32, rngs=3))
    counted(params2, jnp.asarray(x_te), jnp.asarray(np.roll(y_te, 1)), jnp.asarray(clusters), jax.random.key(8))
    counted(params, jnp.asarray(x_te), jnp.asarray(y_te), jnp.asarray(clusters), jax.random.key(9))
    assert len(traces) == 1


# ---------------------------------------------------------------- training steps


def test_train_step_measures_batch_dse_inside_nnx_and_pytree_alike(digits):
    x_tr, y_tr, _, _ = digits
    x, y = jnp.asarray(x_tr[:64]), jnp.asarray(y_tr[:64])
    tx = optax.sgd(0.1)
    model = zoo.CNN(width=4, features=16, rngs=0)
    apply, params = _pure(model)
    before = _params(model)
    z_before = model(x)[1]

    out = nnx.jit(training.make_train_step(monitor=True, sigma=1.0))(
        model, nnx.Optimizer(model, tx, wrt=nnx.Param), x, y
    )
    np.testing.assert_allclose(out.dse, jaxdse.dse(z_before, sigma=1.0), atol=1e-4)
    assert np.isfinite(out.loss) and out.loss == out.cross_entropy and np.isnan(out.penalty)
    after = _params(model)
    assert not np.allclose(after["head/kernel"], before["head/kernel"])  # updated in place

    # The same step on the parameter pytree: the same numbers and the same update.
    step = jax.jit(training.make_train_step(apply=apply, tx=tx, monitor=True, sigma=1.0))
    new_params, _, out_p = step(params, tx.init(params), x, y)
    np.testing.assert_allclose(out_p.dse, out.dse, atol=1e-5)
    np.testing.assert_allclose(out_p.loss, out.loss, rtol=1e-6)
    np.testing.assert_allclose(new_params["head"]["kernel"][...], after["head/kernel"], rtol=1e-5, atol=1e-6)

    _, _, off = jax.jit(training.make_train_step(apply=apply, tx=tx))(params, tx.init(params), x, y)
    assert np.isnan(off.dse)


def test_penalty_is_differentiated_and_reported(digits):
    x_tr, y_tr, _, _ = digits
    x, y = jnp.asarray(x_tr[:60]), jnp.asarray(y_tr[:60])
    tx = optax.sgd(0.05)
    penalty = lambda z, y, key: -jaxdse.dse(z, sigma=1.0)  # noqa: E731  (a DSE bonus)
    apply, params = _pure(zoo.CNN(width=4, features=16, rngs=1))
    step = jax.jit(training.make_train_step(apply=apply, tx=tx, penalty=penalty))
    plain = jax.jit(training.make_train_step(apply=apply, tx=tx))
    state = tx.init(params)

    p0, _, out0 = step(params, state, x, y, None, 0.0)
    p1, _, out1 = step(params, state, x, y, None, 2.0)
    q, _, ce_only = plain(params, state, x, y)
    z = apply(params, x)[1]
    np.testing.assert_allclose(out1.penalty, penalty(z, y, None), atol=1e-4)
    np.testing.assert_allclose(out1.loss, out1.cross_entropy + 2.0 * out1.penalty, rtol=1e-6)
    np.testing.assert_allclose(out1.cross_entropy, ce_only.cross_entropy, rtol=1e-6)
    # weight 0: the cross-entropy step; weight 2: the gradient of the whole loss.
    for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(q)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    def total(p):
        logits, z = apply(p, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean() + 2.0 * penalty(z, y, None)

    grads = jax.grad(total)(params)
    for new, old, g in zip(jax.tree.leaves(p1), jax.tree.leaves(params), jax.tree.leaves(grads)):
        np.testing.assert_allclose(new, old - 0.05 * g, rtol=1e-4, atol=1e-6)
    assert not np.allclose(p1["hidden"]["kernel"][...], p0["hidden"]["kernel"][...])

    # The NNX form of the same step makes the same update.
    model = zoo.CNN(width=4, features=16, rngs=1)
    out = nnx.jit(training.make_train_step(penalty=penalty))(
        model, nnx.Optimizer(model, tx, wrt=nnx.Param), x, y, None, 2.0
    )
    np.testing.assert_allclose(out.loss, out1.loss, rtol=1e-5)
    np.testing.assert_allclose(_params(model)["hidden/kernel"], p1["hidden"]["kernel"][...], rtol=1e-4, atol=1e-6)


def test_linen_module_through_apply(digits):
    x_tr, y_tr, _, _ = digits
    x, y = jnp.asarray(x_tr[:40].reshape(40, -1)), jnp.asarray(y_tr[:40])

    class MLP(linen.Module):
        @linen.compact
        def __call__(self, x):
            z = linen.relu(linen.Dense(16)(x))
            return linen.Dense(10)(z), z

    net = MLP()
    params = net.init(jax.random.key(0), x)["params"]
    apply = lambda p, x: net.apply({"params": p}, x)  # noqa: E731
    tx = optax.adam(1e-2)
    step = jax.jit(training.make_train_step(apply=apply, tx=tx, monitor=True))
    new, _, out = step(params, tx.init(params), x, y)
    np.testing.assert_allclose(out.dse, jaxdse.dse(apply(params, x)[1]), atol=1e-4)
    assert not np.allclose(new["Dense_1"]["kernel"], params["Dense_1"]["kernel"])
    with pytest.raises(TypeError, match="module.apply"):
        training.make_train_step(apply=net, tx=tx)
    with pytest.raises(ValueError, match="tx"):
        training.make_train_step(apply=apply)
    with pytest.raises(ValueError, match="tx"):
        training.make_train_step(tx=tx)
    with pytest.raises(TypeError, match="labels first"):
        training.make_evaluator(net, y)


def test_train_epoch_compiles_once_and_vmaps_over_a_population(digits):
    x_tr, y_tr, _, _ = digits
    x, y = jnp.asarray(x_tr), jnp.asarray(y_tr)
    tx = optax.adam(1e-2)
    traces = []

    def epoch(model, optimizer, x, y, key):
        traces.append(1)
        return zoo.train_epoch(model, optimizer, x, y, key, batch_size=50)

    model = zoo.CNN(width=4, features=16, rngs=0)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    jitted = nnx.jit(epoch)
    losses = [float(jitted(model, optimizer, x, y, jax.random.key(e))) for e in range(3)]
    assert losses[-1] < losses[0]
    assert len(traces) == 1 and int(optimizer.step[...]) == 3 * 8

    @nnx.vmap
    def population(key):
        model = zoo.CNN(width=4, features=16, rngs=key)
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    models, optimizers = population(jax.random.split(jax.random.key(5), 2))
    first = nnx.vmap(lambda k: zoo.CNN(width=4, features=16, rngs=k))(jax.random.split(jax.random.key(5), 2))
    keys = jax.random.split(jax.random.key(0), 2)
    side_by_side = nnx.jit(nnx.vmap(epoch, in_axes=(0, 0, None, None, 0)))(models, optimizers, x, y, keys)
    # Member 1 trained alone from the same start gives the same loss and parameters.
    alone = nnx.split(first)
    one = nnx.merge(alone[0], jax.tree.map(lambda a: a[1], alone[1]))
    loss = jitted(one, nnx.Optimizer(one, tx, wrt=nnx.Param), x, y, keys[1])
    np.testing.assert_allclose(side_by_side[1], loss, rtol=1e-5)
    np.testing.assert_allclose(models.head.kernel[1], one.head.kernel[...], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- moved names and the README


def test_moved_names_warn_and_removed_names_say_where_they_went():
    import importlib
    import sys

    sys.modules.pop("jaxdse.training", None)
    with pytest.warns(DeprecationWarning, match="jaxdse.monitor.training or jaxdse.zoo"):
        old = importlib.import_module("jaxdse.training")
    assert old.fit is zoo.fit and old.as_images is zoo.as_images
    assert old.make_train_step is training.make_train_step
    with pytest.raises(AttributeError, match="jaxdse.zoo.CNN"):
        training.make_model  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute"):
        training.no_such_name  # noqa: B018


def test_deprecated_regularized_step_keeps_its_linen_form(digits):
    x_tr, y_tr, _, _ = digits
    x, y = jnp.asarray(x_tr[:30].reshape(30, -1)), jnp.asarray(y_tr[:30])

    class MLP(linen.Module):
        @linen.compact
        def __call__(self, x):
            z = linen.relu(linen.Dense(8)(x))
            return linen.Dense(10)(z), z

    net, tx = MLP(), optax.sgd(0.1)
    params = net.init(jax.random.key(0), x)["params"]
    penalty = lambda z, y, key: jnp.mean(z**2)  # noqa: E731
    with pytest.warns(DeprecationWarning, match="make_train_step"):
        old = training.make_regularized_train_step(net, tx, penalty)
    new = training.make_train_step(apply=lambda p, x: net.apply({"params": p}, x), tx=tx, penalty=penalty)
    p_old, _, ce, term = old(params, tx.init(params), x, y, None, 0.5)
    p_new, _, out = new(params, tx.init(params), x, y, None, 0.5)
    np.testing.assert_allclose(ce, out.cross_entropy)
    np.testing.assert_allclose(term, out.penalty)
    np.testing.assert_allclose(p_old["Dense_0"]["kernel"], p_new["Dense_0"]["kernel"])


def test_readme_nnx_training_snippet_runs():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if "nnx.jit" in b]
    assert len(blocks) == 1
    namespace = {}
    exec(compile(blocks[0], "README nnx snippet", "exec"), namespace)
    losses, entropies = np.asarray(namespace["losses"]), np.asarray(namespace["entropies"])
    assert len(losses) == len(entropies) >= 3
    assert np.all(np.isfinite(losses)) and np.all((entropies > 0) & (entropies <= np.log2(256)))
    assert losses[-1] < losses[0]
