"""Smoke tests of the example scripts: each runs with --quick and writes a sane JSON and PNG.

Each test runs one script as a subprocess (most of its time is single-threaded
compilation, so pytest's two workers run two scripts at once).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    # script: (json file, png file, keys the JSON must have)
    "toy_entropy": ("toy_entropy.json", "toy_entropy.png", {"dims", "t", "noise", "dse", "cse", "claims"}),
    "toy_mutual_information": (
        "toy_mutual_information.json",
        "toy_mutual_information.png",
        {"corruption", "branches", "claims"},
    ),
    "training_dynamics": ("training_dynamics.json", "training_dynamics.png", {"epoch", "runs", "claims"}),
    "init_search": ("init_search.json", "init_search.png", {"candidates", "per_std", "claims"}),
    "sweep": ("sweep.json", "sweep.png", {"sigma", "t", "dse", "dsmi_y", "knee_t", "claims"}),
    "model_zoo": ("model_zoo.json", "model_zoo.png", {"models", "claims"}),
    "layerwise": ("layerwise.json", "layerwise.png", {"step", "dse_tokens", "dsmi_pooled", "hugging_face", "claims"}),
}
_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _run(name, out, extra=()):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for var in _BLAS_VARS:
        env.setdefault(var, "1")
    env["JAX_COMPILATION_CACHE_DIR"] = ""  # each run compiles, as on a fresh machine
    # A smoke test: most of its time is XLA compilation, which this level makes about 40% faster.
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / f"{name}.py"),
            "--quick",
            "--no-progress",
            "--out",
            str(out / name),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return proc


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def _load(tmp_path, name, extra=()):
    out = tmp_path
    proc = _run(name, out, extra)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    json_name, png_name, keys = EXAMPLES[name]
    data = json.loads((out / name / json_name).read_text())
    png = (out / name / png_name).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, f"{name}: PNG missing or empty"
    assert keys <= set(data), f"{name}: missing keys {keys - set(data)}"
    assert data["settings"]["quick"] is True
    assert "command" in data["environment"]
    numbers = list(_numbers({k: v for k, v in data.items() if k not in ("settings", "environment")}))
    assert numbers and all(math.isfinite(v) for v in numbers)
    return data


def test_toy_entropy(tmp_path):
    d = _load(tmp_path, "toy_entropy")
    dse = d["dse"]  # [noise, d, repetition, t]
    assert len(dse) == len(d["noise"]) and len(dse[0]) == len(d["dims"]) and len(dse[0][0][0]) == len(d["t"])
    flat = list(_numbers(dse)) + list(_numbers(d["cse"]))
    assert all(-1e-5 <= v <= d["log2_n"] + 1e-4 for v in flat)
    assert d["compilations"] == 1


def test_toy_mutual_information(tmp_path):
    d = _load(tmp_path, "toy_mutual_information")
    for r in d["branches"].values():
        assert len(r["dsmi_mean"]) == len(d["corruption"])
        assert r["dsmi_mean"][0] > 0.1  # clean labels of separated branches carry information
        assert r["compilations"] == 1


def test_training_dynamics(tmp_path):
    d = _load(tmp_path, "training_dynamics")
    for condition in ("real", "shuffled"):
        run = d["runs"][condition]
        for metric in ("train_accuracy", "test_accuracy", "dse", "dsmi_y", "dsmi_x"):
            assert len(run[metric]) == len(d["epoch"]) and len(run[metric][0]) == len(d["settings"]["seeds"])
    assert d["evaluator_compilations"] == 1  # shared by both conditions
    for claim in ("dsmi_y_rose_under_real_labels", "dsmi_y_flat_under_shuffled_labels"):
        assert isinstance(d["claims"][claim], bool)


@pytest.fixture(scope="module")
def layerwise_run(tmp_path_factory):
    """One quick run of examples/layerwise.py, shared by its two tests."""
    return _load(tmp_path_factory.mktemp("layerwise"), "layerwise")


def test_layerwise(layerwise_run):
    d = layerwise_run
    s = d["settings"]
    assert d["step"] == s["checkpoints"] and d["step"][0] == 0 and d["step"][-1] == s["steps"]
    for name in ("dse_tokens", "dse_pooled", "dsmi_pooled"):
        assert np.asarray(d[name]).shape == (len(d["step"]), s["depth"] + 1)  # the embedding and each block
    assert np.all(np.asarray(d["dse_tokens"]) >= -1e-5)
    assert isinstance(d["claims"]["dsmi_last_layer_rose"], bool)


def test_layerwise_on_a_hugging_face_model(layerwise_run):
    pytest.importorskip("torch", reason="the Hugging Face path needs torch")
    pytest.importorskip("transformers", reason="the Hugging Face path needs transformers")
    hf = layerwise_run["hugging_face"]
    assert hf["ran"] is True and hf["layers"] == 5 and len(hf["dse_tokens"]) == 5
    assert all(0.0 <= v <= math.log2(32 * 16) + 1e-4 for v in hf["dse_tokens"])


def test_init_search(tmp_path):
    d = _load(tmp_path, "init_search")
    c = d["candidates"]
    assert len(c["initial_dse"]) == len(d["settings"]["stds"]) * d["settings"]["seeds"]
    assert len(c["test_accuracy_curves"][0]) == d["settings"]["epochs"] + 1
    # A larger conv std spreads the initial features: higher initial DSE.
    per_std = d["per_std"]
    values = [per_std[k]["initial_dse_mean"] for k in sorted(per_std, key=float)]
    assert values[-1] > values[0]


def test_sweep(tmp_path):
    d = _load(tmp_path, "sweep")
    assert len(d["dse"]) == len(d["sigma"]) and len(d["dse"][0]) == len(d["t"])
    assert len(d["dsmi_y"]) == len(d["sigma"]) and len(d["knee_t"]) == len(d["sigma"])
    assert d["claims"]["sweep_compiles_once"] is True
    assert d["compilations"] == {"dse_sweep": 1, "dsmi_sweep": 1}


def test_model_zoo_on_user_data(tmp_path):
    # A user's .npz (keys images/labels, [n, H, W] images, labels not starting at 0) instead of the built-in digits.
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "mine.npz", images=digits.images[:400], labels=digits.target[:400] + 3)
    d = _load(tmp_path, "model_zoo", ("--data", str(tmp_path / "mine.npz")))
    assert d["settings"]["data"].endswith("mine.npz")
    assert len(d["models"]) == d["settings"]["models"]
    assert d["measure_compilations"] == 1
    for r in d["models"]:
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["dse"] >= -1e-5


def _load_own(tmp_path, name, extra=()):
    proc = _run(name, tmp_path, extra)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    png = (tmp_path / name / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    data = json.loads((tmp_path / name / f"{name}.json").read_text())
    assert data["settings"]["quick"] is True
    return data


def test_model_zoo_study(tmp_path):
    d = _load_own(tmp_path, "model_zoo")
    s = d["settings"]
    assert len(d["models"]) == s["models"] == len(s["architectures"]) * s["members_per_architecture"]
    assert d["measure_compilations"] == 1  # one compiled evaluator for every population
    measures = (
        "dse",
        "dsmi",
        "rankme",
        "participation_ratio",
        "alpha_req",
        "renyi_entropy",
        "renyi_mi",
        "knn_accuracy",
        "ridge_accuracy",
        "cse",
    )
    for r in d["models"]:
        assert 0.0 <= r["test_accuracy"] <= 1.0 and 0.0 <= r["knn_accuracy"] <= 1.0
        assert r["gap"] == pytest.approx(r["train_accuracy"] - r["test_accuracy"])
        assert 1.0 - 1e-4 <= r["rankme"] <= s["features"] + 1e-3
        assert r["dse"] >= -1e-5 and r["renyi_entropy"] >= -1e-5
    for table in (d["spearman_with_test_accuracy"], d["spearman_with_gap"]):
        assert set(table) == set(measures)
        for c in table.values():
            if c["spearman"] is not None:
                assert -1.0 <= c["low"] <= c["high"] <= 1.0
    assert isinstance(d["claims"]["dsmi_correlates_more_than_dse"], bool)


def test_regularizer(tmp_path):
    d = _load_own(tmp_path, "regularizer")
    s = d["settings"]
    runs = len(s["label_noise"]) * len(s["weights"]) * s["seeds"]
    assert len(d["runs"]) == runs and d["chunk_compilations"] == 1  # one compiled step for every run
    acc = np.array(d["curves"]["test_accuracy"])
    assert acc.shape == (s["steps"] // s["eval_every"], runs) and np.all((acc >= 0) & (acc <= 1))
    for condition in ("label_noise_0.0", "label_noise_0.4"):
        for w in s["weights"][1:]:
            entry = d["results"][condition][str(w)]
            assert math.isfinite(entry["paired_area_difference_mean"]) and math.isfinite(
                entry["paired_final_difference_mean"]
            )
    assert set(d["claims"]["speeds_learning_clean"]) == {str(w) for w in s["weights"][1:]}


def test_population_training_follows_each_members_own_length(monkeypatch):
    # The zoo trains members in small groups, each only as long as its own step
    # count; the result must equal the whole population run side by side to the
    # longest count, members past their count left unchanged.
    for var in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", *_BLAS_VARS):
        monkeypatch.setenv(var, os.environ.get(var, ""))  # importing _common must not change this process's settings
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    import functools

    import jax
    import model_zoo
    import optax
    from flax import nnx

    from jaxdse import zoo

    make_model = functools.partial(zoo.CNN, (8, 8, 1), width=2, depth=1, features=8, num_classes=3)
    tx = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-2, weight_decay=0.0)
    members = dict(
        epochs=np.array([1, 3, 2]),
        label_noise=np.zeros(3),
        weight_decay=np.array([0.0, 0.1, 0.0]),
        init_scale=np.array([1.0, 0.5, 1.0]),
        seed=np.array([1, 2, 3]),
    )
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.random((32, 8, 8, 1)), "float32")
    labels = rng.integers(3, size=(3, 32)).astype(np.int32)
    keys = jax.random.split(jax.random.key(0), 3)
    params = lambda population: jax.tree.leaves(nnx.state(population[0], nnx.Param))  # noqa: E731
    expected = model_zoo.init_population(make_model, tx, members)
    before = [np.asarray(a) for a in params(expected)]
    # The initial scale multiplies every kernel of the default initialisation, the weight decay is each member's own.
    fresh = nnx.vmap(lambda k: make_model(rngs=nnx.Rngs(k)))(jax.numpy.stack([jax.random.key(s) for s in (1, 2, 3)]))
    np.testing.assert_allclose(expected[0].hidden.kernel[1], 0.5 * fresh.hidden.kernel[1], rtol=1e-6)
    np.testing.assert_allclose(expected[0].hidden.bias[1], fresh.hidden.bias[1])
    np.testing.assert_allclose(expected[1].opt_state.hyperparams["weight_decay"][...], members["weight_decay"])
    whole = model_zoo.make_population_trainer(batch_size=8, steps_per_call=3)
    whole(*expected, x, labels, members["epochs"], keys, 0)
    got = model_zoo.init_population(make_model, tx, members)
    one_step = model_zoo.make_population_trainer(batch_size=8, steps_per_call=1)
    model_zoo.train_population(one_step, got, x, labels, members["epochs"], keys, group=2, steps_per_call=1)
    for a, b, start in zip(params(got), params(expected), before):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        assert not np.allclose(np.asarray(a), start)  # training moved every member
    np.testing.assert_array_equal(got[1].step[...], members["epochs"])  # each member took its own number of steps
