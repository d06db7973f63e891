"""jaxdse.training: the example CNN, its training epoch and the compiled evaluator."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxdse
from jaxdse import training

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    from jaxdse.data import load_digits

    x, y = load_digits()
    (x_tr, y_tr), (x_te, y_te) = training.train_test_split(training.as_images(x), y, key=jax.random.key(0))
    # A small subset keeps the module fast.
    return x_tr[:400], y_tr[:400], x_te[:120], y_te[:120]


def test_as_images_shapes_and_scale():
    x = np.arange(2 * 64, dtype=np.float32).reshape(2, 64)
    img = training.as_images(x)
    assert img.shape == (2, 8, 8, 1)
    assert img.max() == 1.0
    assert training.as_images(np.ones((3, 5, 5))).shape == (3, 5, 5, 1)
    assert training.as_images(np.ones((3, 12)), image_shape=(3, 4, 1)).shape == (3, 3, 4, 1)
    with pytest.raises(ValueError, match="square"):
        training.as_images(np.ones((3, 12)))


def test_make_model_shapes_and_bad_args():
    model, params = training.make_model(jax.random.key(0), width=4, depth=3, features=8, num_classes=5)
    logits, z = model.apply({"params": params}, jnp.zeros((3, 8, 8, 1)))
    assert logits.shape == (3, 5) and z.shape == (3, 8)
    assert jnp.all(z >= 0)  # after the ReLU
    with pytest.raises(ValueError, match="width"):
        training.make_model(jax.random.key(0), width=0)
    with pytest.raises(ValueError, match="image_shape"):
        training.make_model(jax.random.key(0), image_shape=(8, 8))


def test_set_conv_std_vmapped_draws_kernels_with_that_std():
    model, params = training.make_model(jax.random.key(0), width=16, depth=2, features=8)
    stds = jnp.array([0.01, 0.1, 1.0])
    keys = jax.random.split(jax.random.key(1), 3)
    stacked = jax.vmap(training.set_conv_std, (None, 0, 0))(params, keys, stds)
    kernel = stacked["Conv_1"]["kernel"]  # [3, 3, 3, 16, 32]
    np.testing.assert_allclose(jnp.std(kernel.reshape(3, -1), axis=1), stds, rtol=0.05)
    # Dense layers and biases are untouched.
    np.testing.assert_array_equal(stacked["Dense_0"]["kernel"][2], params["Dense_0"]["kernel"])
    np.testing.assert_array_equal(stacked["Conv_0"]["bias"][1], params["Conv_0"]["bias"])


def test_fit_then_evaluator_matches_library_and_compiles_once(digits):
    # One test (not a shared fixture) so that parallel test workers train only once.
    x_tr, y_tr, x_te, y_te = digits
    clusters = training.cluster_inputs(x_te, 4)
    h = training.fit(
        x_tr, y_tr, x_te, y_te, epochs=4, key=jax.random.key(1), width=8, features=32, learning_rate=1e-2,
        batch_size=32, x_clusters=clusters, num_repetitions=3,
    )
    assert h["epoch"] == [0, 1, 2, 3, 4]
    for name in ("test_accuracy", "dse", "dsmi_y", "dsmi_x", "train_accuracy"):
        assert len(h[name]) == 5 and np.all(np.isfinite(h[name])), name
    assert np.isnan(h["train_loss"][0]) and np.all(np.isfinite(h["train_loss"][1:]))
    assert h["test_accuracy"][-1] > 0.5  # chance is 0.1
    assert h["train_loss"][-1] < h["train_loss"][1]
    assert all(0.0 <= v <= np.log2(120) + 1e-4 for v in h["dse"])

    # The evaluator's numbers equal the library's on the pulled-out features.
    model, params, evaluate = h["model"], h["params"], h["evaluate"]
    np.testing.assert_array_equal(h["x_clusters"], clusters)
    key = jax.random.key(7)
    m = evaluate(params, jnp.asarray(x_te), jnp.asarray(y_te), jnp.asarray(clusters), key)

    z = training.penultimate(model, params, jnp.asarray(x_te))
    logits = model.apply({"params": params}, jnp.asarray(x_te))[0]
    key_y, key_x = jax.random.split(key)
    n_y, max_y = int(y_te.max()) + 1, int(np.bincount(y_te).max())
    n_x, max_x = int(clusters.max()) + 1, int(np.bincount(clusters).max())
    np.testing.assert_allclose(m.accuracy, np.mean(np.argmax(logits, -1) == y_te), atol=1e-6)
    np.testing.assert_allclose(m.dse, jaxdse.dse(z, sigma=10.0, t=1.0), atol=1e-4)
    np.testing.assert_allclose(
        m.dsmi_y, jaxdse.dsmi(z, y_te, key=key_y, num_repetitions=3, num_classes=n_y, max_class_size=max_y), atol=1e-4
    )
    np.testing.assert_allclose(
        m.dsmi_x, jaxdse.dsmi(z, clusters, key=key_x, num_repetitions=3, num_classes=n_x, max_class_size=max_x), atol=1e-4
    )
    assert m.dse > 0.1 and m.dsmi_y > 0.05  # a trained network's features are spread and label-related

    # Compiled once: other parameters, keys and labels of the same shape reuse it.
    _, params2 = training.make_model(jax.random.key(3), width=8, features=32)
    evaluate(params2, jnp.asarray(x_te), jnp.asarray(np.roll(y_te, 1)), jnp.asarray(clusters), jax.random.key(8))
    evaluate(params, jnp.asarray(x_te), jnp.asarray(y_te), jnp.asarray(clusters), jax.random.key(9))
    assert evaluate._cache_size() == 1


def test_train_step_measures_batch_dse_inside(digits):
    x_tr, y_tr, _, _ = digits
    model, params = training.make_model(jax.random.key(0), width=4, features=16)
    opt = optax.sgd(0.1)
    state = opt.init(params)
    step = jax.jit(training.make_train_step(model, opt, measure=True, sigma=1.0))
    x, y = jnp.asarray(x_tr[:64]), jnp.asarray(y_tr[:64])
    new_params, _, loss, h = step(params, state, x, y)
    np.testing.assert_allclose(h, jaxdse.dse(training.penultimate(model, params, x), sigma=1.0), atol=1e-4)
    assert np.isfinite(loss)
    assert not np.allclose(new_params["Dense_1"]["kernel"], params["Dense_1"]["kernel"])
    _, _, _, h_off = jax.jit(training.make_train_step(model, opt))(params, state, x, y)
    assert np.isnan(h_off)


def test_train_epoch_compiles_once_per_model_and_optimizer(digits):
    x_tr, y_tr, _, _ = digits
    model, params = training.make_model(jax.random.key(0), width=4, features=16)
    opt = optax.adam(1e-2)
    state = opt.init(params)
    losses = []
    for e in range(3):
        params, state, loss = training.train_epoch(model, opt, params, state, x_tr, y_tr, key=jax.random.key(e), batch_size=50)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert training._cached_epoch(model, opt, 50)._cache_size() == 1
