"""Command-line contracts: output paths checked before computing, no null values, text labels, several t.

Uses the data files of :mod:`tests.test_cli`.
"""

import os

import jax
import numpy as np
import pytest

import jaxdse
import jaxdse.io
from tests.cli.test_cli import estimator_key, expand, files, run, run_json  # noqa: F401  (files: a fixture)


def test_text_labels_csv_and_npy_content_under_npz_name(capsys, files):
    result, err = run_json(capsys, "dsmi", files["npy_named.npz"], "--labels", files["y_text.csv"], "--sigma", "3")
    expected = float(jaxdse.dsmi(files["x"], files["y"], key=estimator_key(), sigma=3.0))
    assert result["dsmi"] == pytest.approx(expected, abs=1e-5)
    assert "text labels" in err


def _forbid_computing(monkeypatch):
    """Make every computation a command could start fail loudly."""

    def computed(*args, **kwargs):
        raise AssertionError("computed before the output path was checked")

    import jaxdse.mi.sweep

    monkeypatch.setattr(jaxdse.mi.sweep, "sweep", computed)
    monkeypatch.setattr(jaxdse.io, "load_points", computed)
    from jaxdse import zoo

    monkeypatch.setattr(zoo, "fit", computed)


@pytest.mark.parametrize(
    "target, words",
    [
        ("@dir/somedir/", "folder"),  # used to write somedir/.png and report success
        ("@dir/newdir/", "folder"),
        ("@dir/somedir", "folder"),
        ("@dir/grid.xyz", "unknown extension"),
        ("@dir/grid", "extension"),
        ("@dir/.png", "extension"),
        ("@dir/" + "g" * 300 + ".png", "too long"),
        ("@dir/x.npy/grid.png", "does not exist"),  # a folder that is a file
        ("@dir/no/such/folder/p.png", "does not exist"),
        ("", "empty"),
    ],
)
def test_sweep_plot_path_is_checked_before_computing(capsys, files, monkeypatch, target, words):
    _forbid_computing(monkeypatch)
    before = set(os.listdir(files["dir"])) | set(os.listdir(files["somedir"]))
    code, out, err = run(capsys, "sweep", files["x.npy"], "--plot", expand(target, files))
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and words in err and "--plot" in err
    assert set(os.listdir(files["dir"])) | set(os.listdir(files["somedir"])) == before


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_sweep_plot_to_an_unwritable_place(capsys, files, monkeypatch):
    _forbid_computing(monkeypatch)
    code, out, err = run(capsys, "sweep", files["x.npy"], "--plot", "/proc/grid.png")
    assert code == 2 and out == "" and "cannot write --plot" in err


@pytest.mark.parametrize(
    "target, words",
    [("@x.npy", "not a folder"), ("@dir/x.npy/demo", "cannot create --out"), ("@dir/" + "d" * 300, "too long")],
)
def test_demo_out_is_checked_before_training(capsys, files, monkeypatch, target, words):
    _forbid_computing(monkeypatch)
    code, out, err = run(capsys, "demo", "--out", expand(target, files), "--epochs", "1")
    assert code == 2 and out == "" and words in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_a_value_that_cannot_be_computed_is_an_error_not_null(capsys, files, monkeypatch, flag):
    monkeypatch.setattr(jaxdse, "dse", lambda *args, **kwargs: jax.numpy.float32(np.nan))
    code, out, err = run(capsys, "dse", files["x.npy"], *flag)
    assert code == 2 and out == ""
    assert "DSE(X) could not be computed" in err and "NaN" in err
    assert "null" not in out


def test_a_sweep_cell_that_cannot_be_computed_is_an_error(capsys, files, monkeypatch):
    import jaxdse.mi.sweep

    def nan_sweep(x, sigmas, ts, **kwargs):
        return jaxdse.mi.sweep.Sweep(np.full((len(sigmas), len(ts)), np.nan), None)

    monkeypatch.setattr(jaxdse.mi.sweep, "sweep", nan_sweep)
    code, out, err = run(capsys, "sweep", files["x.npy"], "--sigma", "1,2", "--t", "1", "--json")
    assert code == 2 and out == "" and "could not be computed" in err


@pytest.mark.parametrize("sigma", [[], ["--sigma", "median"], ["--sigma", "1,median"]])
def test_sweep_refuses_sigma_zero_from_duplicate_rows(capsys, files, sigma):
    code, out, err = run(capsys, "sweep", files["duplicates.npy"], *sigma, "--t", "1")
    assert code == 2 and out == ""
    assert "sigma" in err and "median distance" in err


def test_dsmi_with_several_times(capsys, files):
    result, _ = run_json(capsys, "dsmi", files["x.npy"], "--labels", files["y.npy"], "--sigma", "3", "--t", "1,2,5")
    expected = np.asarray(jaxdse.dsmi(files["x"], files["y"], key=estimator_key(), sigma=3.0, t=np.array([1.0, 2, 5])))
    assert result["dsmi"] == pytest.approx(expected.tolist(), abs=1e-5)
    assert result["settings"]["t"] == [1.0, 2.0, 5.0]
    assert all(len(c["contribution"]) == 3 for c in result["per_class"])
    totals = np.sum([c["contribution"] for c in result["per_class"]], axis=0)
    assert totals == pytest.approx(expected, abs=1e-5)
    code, out, err = run(capsys, "dsmi", files["x.npy"], "--labels", files["y.npy"], "--sigma", "3", "--t", "1,2,5")
    assert code == 0, err
    for t, value in zip(("1", "2", "5"), expected):
        assert any(line.split() == [t, f"{value:.4f}"] for line in out.splitlines()), out


def test_sweep_sorts_sigmas_and_labels_the_median(capsys, files):
    code, out, err = run(capsys, "sweep", files["x.npy"], "--sigma", "4,median,1", "--t", "3,1")
    assert code == 0, err
    rows = [line.split()[0] for line in out.splitlines() if line.strip().startswith(("1 ", "4 ", "median"))]
    assert "median (= " in out
    header = next(line for line in out.splitlines() if "sigma \\ t" in line)
    assert header.split()[-2:] == ["1", "3"]
    result, _ = run_json(capsys, "sweep", files["x.npy"], "--sigma", "4,median,1", "--t", "3,1")
    assert result["settings"]["sigma"] == sorted(result["settings"]["sigma"])
    assert rows


def test_compare_says_why_csmi_can_be_negative(capsys, files):
    code, out, err = run(capsys, "compare", files["x.npy"], "--labels", files["y.npy"], "--estimators", "csmi")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("CSMI"))
    assert "below 0" in line


def test_t_auto_on_the_command_line(tmp_path):
    import numpy as np

    import jaxdse
    from jaxdse.cli import main

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3)).astype(np.float32)
    np.save(tmp_path / "z.npy", x)
    np.save(tmp_path / "y.npy", np.arange(80) % 2)
    chosen = float(jaxdse.choose_t(x, sigma=2.0))
    import contextlib
    import io
    import json

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["dse", str(tmp_path / "z.npy"), "--sigma", "2", "--t", "auto", "--json"]) == 0
    report = json.loads(buffer.getvalue())
    assert report["settings"]["t"] == chosen
    assert report["dse"] == float(jaxdse.dse(x, sigma=2.0, t=chosen))
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["dsmi", str(tmp_path / "z.npy"), "--labels", str(tmp_path / "y.npy"), "--t", "auto,2"]) == 2
    assert "--t auto stands alone" in err.getvalue()
