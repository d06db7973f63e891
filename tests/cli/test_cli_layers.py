"""``jaxdse layers`` (hidden states saved as files, against :func:`jaxdse.layerwise` on the same arrays) and
``jaxdse dse --eigenvalue-count``, the command-line forms of this release's layer and peer functions."""

import json

import numpy as np
import pytest

import jaxdse
from jaxdse.cli import main

L, B, T, D = 4, 3, 10, 5


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    rng = np.random.default_rng(0)
    h = (rng.normal(size=(L, B, T, D)) * np.arange(1, L + 1)[:, None, None, None]).astype(np.float32)
    mask = np.ones((B, T), np.int64)
    mask[1, 6:] = 0
    y = np.array([0, 1, 0])
    files = {"h": h, "mask": mask.astype(bool), "y": y}
    # One member per layer, named so that a plain sort would put layer_10 first.
    names = {f"layer_{i if i < 2 else i + 8}": h[i] for i in range(L)}
    np.savez(root / "per_layer.npz", attention_mask=mask, **names)
    np.savez(root / "stack.npz", hidden=h, attention_mask=mask, y=y)
    np.save(root / "stack.npy", h)
    np.save(root / "mask.npy", mask)
    files.update({name: str(root / name) for name in ("per_layer.npz", "stack.npz", "stack.npy", "mask.npy")})
    files["root"] = root
    return files


def run_json(capsys, *argv, command="layers"):
    assert main([command, *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("granularity", ["tokens", "prompt", "dataset"])
def test_equals_layerwise_for_each_granularity(saved, capsys, granularity):
    out = run_json(
        capsys,
        saved["per_layer.npz"],
        "--mask",
        "attention_mask",
        "--granularity",
        granularity,
        "--sigma",
        "1",
        "--normalize",
        "l2",
    )
    want = jaxdse.layerwise(saved["h"], mask=saved["mask"], granularity=granularity, sigma=1.0, normalize="l2")
    np.testing.assert_allclose(out["dse"], np.asarray(want.value), rtol=1e-5, atol=1e-6)
    assert out["count"] == np.asarray(want.count).tolist()
    assert out["depth"] == pytest.approx(np.linspace(0, 1, L).tolist())


def test_stack_forms_and_mask_file_agree(saved, capsys):
    a = run_json(capsys, saved["per_layer.npz"], "--mask", "attention_mask")
    b = run_json(capsys, saved["stack.npz"], "--array", "hidden", "--mask", "attention_mask")
    c = run_json(capsys, saved["stack.npy"], "--mask", saved["mask.npy"])
    np.testing.assert_allclose(a["dse"], b["dse"], rtol=1e-6)
    np.testing.assert_allclose(a["dse"], c["dse"], rtol=1e-6)
    no_mask = run_json(capsys, saved["stack.npy"])
    assert not np.allclose(no_mask["dse"], a["dse"])  # the padded tokens counted


def test_labels_give_per_layer_dsmi_and_a_plot(saved, capsys):
    plot = saved["root"] / "profile.png"
    out = run_json(
        capsys,
        saved["stack.npz"],
        "--array",
        "hidden",
        "--mask",
        "attention_mask",
        "--labels",
        "y",
        "--granularity",
        "dataset",
        "--estimator",
        "plugin",
        "--plot",
        str(plot),
    )
    want = jaxdse.layerwise(
        saved["h"], mask=saved["mask"], granularity="dataset", labels=saved["y"], mi_options={"estimator": "plugin"}
    )
    np.testing.assert_allclose(out["dsmi"], np.asarray(want.mi), rtol=1e-5, atol=1e-6)
    assert plot.stat().st_size > 1000 and out["plot"] == str(plot)


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--granularity", "prompt", "--labels", "y"],
            "--labels: per-layer DSMI needs --granularity tokens or dataset",
        ),
        (["--mask", "no_such_mask.npy"], "does not exist"),
        (["--plot", "profile.unknown"], "unknown extension"),
    ],
)
def test_bad_settings_are_one_line(saved, capsys, extra, message):
    assert main(["layers", saved["stack.npz"], "--array", "hidden", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_array_that_is_not_a_layer_is_named(saved, capsys):
    # stack.npz holds the stack, the mask and the labels: without --array every member would be a layer.
    assert main(["layers", saved["stack.npz"], "--mask", "attention_mask"]) == 2
    err = capsys.readouterr().err
    assert "layer 'hidden' must be [B, T, D]" in err and "named as the mask or labels" in err


def test_a_prompt_keeping_one_token_is_named(saved, capsys, tmp_path):
    mask = np.ones((B, T), bool)
    mask[2, 1:] = False
    np.save(tmp_path / "m.npy", mask)
    assert main(["layers", saved["stack.npy"], "--mask", str(tmp_path / "m.npy"), "--granularity", "prompt"]) == 2
    assert "prompt 2 keeps 1 tokens" in capsys.readouterr().err


def test_dse_eigenvalue_count_equals_the_library(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20, 2)) + c for c in ([0, 0], [100, 0], [0, 100])]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = run_json(capsys, str(tmp_path / "x.npy"), "--sigma", "2", "--t", "100", "--eigenvalue-count", command="dse")
    assert out["eigenvalue_count"] == int(jaxdse.eigenvalue_count(x, t=100.0, sigma=2.0)) == 3
    assert out["settings"]["threshold"] == 1e-6
    for extra, message in (
        (["--threshold", "0.1"], "--threshold is a setting of --eigenvalue-count"),
        (["--eigenvalue-count", "--solver", "slq"], "needs every eigenvalue"),
        (["--eigenvalue-count", "--threshold", "1.5"], "expected a number in (0, 1)"),
    ):
        assert main(["dse", str(tmp_path / "x.npy"), *extra]) == 2
        assert message in capsys.readouterr().err
