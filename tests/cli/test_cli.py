"""The ``jaxdse`` command line, driven through its entry point.

Most tests call :func:`jaxdse.cli.main` in-process (the same function the
console script and ``python -m jaxdse`` run); a few start a subprocess to check
the real entry points. Arrays are tiny and share one shape so compiled
computations are reused.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxdse
from jaxdse.cli import main

N, D = 24, 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same small data set in every supported format, plus broken files."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    y = np.arange(N) % 3
    x = (rng.normal(size=(N, D)) + 4.0 * y[:, None]).astype(np.float32)
    paths = {"x": x, "y": y, "dir": root}

    def path(name):
        paths[name] = str(root / name)
        return paths[name]

    np.save(path("x.npy"), x)
    np.savez(path("xy.npz"), features=x, labels=y)
    np.savez(path("only.npz"), x)
    np.savetxt(path("x_header.csv"), x, delimiter=",", header="a,b,c", comments="", fmt="%.9g")
    np.savetxt(path("x.csv"), x, delimiter=",", fmt="%.9g")
    np.savetxt(path("x.tsv"), x, delimiter="\t", fmt="%.9g")
    np.savetxt(path("x.txt"), x, fmt="%.9g")
    np.save(path("images.npy"), rng.normal(size=(N, 2, 2, 1)))
    np.save(path("y.npy"), y)
    np.save(path("y_float.npy"), y.astype(np.float64))
    np.save(path("y_onehot.npy"), np.eye(3)[y])
    np.save(path("y_text.npy"), np.array(["ant", "bee", "cat"])[y])
    np.savetxt(path("y_header.csv"), y, header="label", comments="", fmt="%d")
    np.save(path("ref_scalar.npy"), y + 0.1 * rng.normal(size=N))
    np.save(path("ref_vectors.npy"), x + 0.1 * rng.normal(size=(N, D)))
    # Broken inputs.
    bad = x.copy()
    bad[5, 1] = np.nan
    np.save(path("nan.npy"), bad)
    np.save(path("y_nan.npy"), np.where(np.arange(N) == 3, np.nan, y.astype(float)))
    np.save(path("y_short.npy"), y[:-1])
    np.save(path("y_real.npy"), y + 0.5)
    np.save(path("y_matrix.npy"), rng.normal(size=(N, 2)))
    np.save(path("scalar.npy"), np.float32(3.0))
    np.save(path("one_row.npy"), x[:1])
    np.save(path("objects.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    pathlib.Path(path("words.csv")).write_text("a,b\n1,2\nx,4\n")
    pathlib.Path(path("ragged.csv")).write_text("1,2\n3,4,5\n")
    pathlib.Path(path("empty.csv")).write_text("")
    pathlib.Path(path("data.dat")).write_text("1 2\n")
    pathlib.Path(path("corrupt.npy")).write_bytes(b"not an npy file")
    np.save(path("duplicates.npy"), np.repeat(x[:2], [N - 3, 3], axis=0))  # median distance 0
    pathlib.Path(path("y_text.csv")).write_text("species\n" + "\n".join(np.array(["ant", "bee", "cat"])[y]) + "\n")
    with open(path("npy_named.npz"), "wb") as handle:
        np.save(handle, x)
    os.makedirs(path("somedir"))
    return paths


def run(capsys, *argv):
    """``main(argv)`` -> (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out), err  # the whole of stdout is one JSON object


def expand(arg, files):
    """``@name`` -> the path of that test file; ``@dir/...`` -> a path in the test folder."""
    if arg.startswith("@dir"):
        return str(files["dir"]) + arg[4:]
    return files[arg[1:]] if arg.startswith("@") else arg


def estimator_key(seed=0):
    return jax.random.fold_in(jax.random.PRNGKey(seed), 2)


# ---------------------------------------------------------------- dse


@pytest.mark.parametrize(
    "name, extra",
    [
        ("x.npy", []),
        ("xy.npz", ["--array", "features"]),
        ("only.npz", []),
        ("x_header.csv", []),
        ("x.csv", []),
        ("x.tsv", []),
        ("x.txt", []),
    ],
)
def test_dse_every_input_format_gives_the_same_value(capsys, files, name, extra):
    result, _ = run_json(capsys, "dse", files[name], *extra)
    expected = float(jaxdse.dse(files["x"]))
    assert result["dse"] == pytest.approx(expected, abs=1e-5)
    assert result["units"] == "bits"
    assert (result["n"], result["d"]) == (N, D)
    assert result["settings"]["sigma"] == 10.0 and result["settings"]["t"] == 1.0
    assert result["device"].startswith("cpu") or result["device"].startswith("gpu")
    assert result["timings"]["dse_s"] > 0


def test_dse_table_names_value_units_and_bound(capsys, files):
    code, out, err = run(capsys, "dse", files["x.npy"], "--sigma", "2", "--t", "3", "--alpha", "0.5")
    assert code == 0, err
    value = float(jaxdse.dse(files["x"], sigma=2.0, t=3.0, alpha=0.5))
    assert f"{value:.4f}" in out
    assert "bits" in out and "log2 n" in out
    assert out.count("{") == 0  # a table, not JSON


@pytest.mark.parametrize("sigma", ["median", "knn:3"])
def test_dse_bandwidth_rules(capsys, files, sigma):
    result, _ = run_json(capsys, "dse", files["x.npy"], "--sigma", sigma)
    assert result["dse"] == pytest.approx(float(jaxdse.dse(files["x"], sigma=sigma)), abs=1e-5)
    assert result["settings"]["sigma"] == sigma


def test_dse_solvers(capsys, files):
    exact, _ = run_json(capsys, "dse", files["x.npy"], "--solver", "eigh")
    stochastic, _ = run_json(capsys, "dse", files["x.npy"], "--solver", "slq", "--num-probes", "8")
    assert stochastic["dse_stderr"] >= 0
    assert abs(stochastic["dse"] - exact["dse"]) < 0.5


def test_higher_rank_input_is_flattened_with_a_note(capsys, files):
    result, err = run_json(capsys, "dse", files["images.npy"])
    assert (result["n"], result["d"]) == (N, 4)
    assert result["input_shape"] == [N, 2, 2, 1]
    assert "flattened" in err and "flattened" in result["notes"][0]


def test_max_n_subsamples_explicitly_and_reproducibly(capsys, files):
    first, err = run_json(capsys, "dse", files["x.npy"], "--max-n", "10", "--seed", "3")
    again, _ = run_json(capsys, "dse", files["x.npy"], "--max-n", "10", "--seed", "3")
    assert first["n"] == 10 and first["subsampled_from"] == N
    assert first["dse"] == again["dse"]
    assert "10 of 24 rows" in err
    # The same rows as the library's max_n with the command line's key.
    from jaxdse.cli.inputs import subsample_key

    library = jaxdse.dse(files["x"], max_n=10, key=subsample_key(3))
    assert first["dse"] == pytest.approx(float(library), abs=1e-6)
    everything, err = run_json(capsys, "dse", files["x.npy"], "--max-n", "100")
    assert everything["n"] == N and "all rows" in err


def test_x64_and_device_switches(capsys, files):
    single, _ = run_json(capsys, "dse", files["x.npy"], "--device", "cpu")
    double, _ = run_json(capsys, "dse", files["x.npy"], "--x64", "--device", "cpu")
    assert single["dtype"] == "float32" and double["dtype"] == "float64"
    assert single["device"] == "cpu:0"
    assert double["dse"] == pytest.approx(single["dse"], abs=1e-3)
    assert not jax.config.jax_enable_x64  # the switch does not leak out of the call


# ---------------------------------------------------------------- dsmi


@pytest.mark.parametrize(
    "labels, extra",
    [
        ("y.npy", []),
        ("y_header.csv", []),
        ("y_float.npy", []),
        ("y_onehot.npy", []),
        ("y_text.npy", []),
        ("xy.npz", ["--labels-array", "labels"]),
    ],
)
def test_dsmi_with_labels_in_every_format(capsys, files, labels, extra):
    result, _ = run_json(capsys, "dsmi", files["x.npy"], "--labels", files[labels], *extra, "--sigma", "3")
    expected = float(jaxdse.dsmi(files["x"], files["y"], key=estimator_key(), sigma=3.0))
    assert result["dsmi"] == pytest.approx(expected, abs=1e-5)
    assert result["num_classes"] == 3
    per_class = result["per_class"]
    assert sum(c["contribution"] for c in per_class) == pytest.approx(result["dsmi"], abs=1e-5)
    assert sum(c["n"] for c in per_class) == N


def test_dsmi_table_and_settings(capsys, files):
    code, out, err = run(
        capsys,
        "dsmi",
        files["x.npy"],
        "--labels",
        files["y.npy"],
        "--sigma",
        "3",
        "--seed",
        "4",
        "--estimator",
        "plugin",
    )
    assert code == 0, err
    expected = float(jaxdse.dsmi(files["x"], files["y"], sigma=3.0, estimator="plugin"))
    assert f"DSMI(Z; Y) = {expected:.4f} bits" in out
    assert "DSE(Z|c)" in out


def test_dsmi_independent_comparison_subsets(capsys, files):
    result, _ = run_json(
        capsys, "dsmi", files["x.npy"], "--labels", files["y.npy"], "--sigma", "3", "--comparison", "independent"
    )
    expected = float(jaxdse.dsmi(files["x"], files["y"], key=estimator_key(), sigma=3.0, comparison="independent"))
    assert result["dsmi"] == pytest.approx(expected, abs=1e-5)
    assert result["settings"]["comparison"] == "independent"


def test_dsmi_with_a_continuous_reference(capsys, files):
    binned, _ = run_json(capsys, "dsmi", files["x.npy"], "--reference", files["ref_scalar.npy"], "--num-clusters", "3")
    assert binned["num_classes"] <= 3 and np.isfinite(binned["dsmi"])
    clustered, _ = run_json(
        capsys,
        "dsmi",
        files["x.npy"],
        "--reference",
        files["ref_vectors.npy"],
        "--num-clusters",
        "3",
        "--cluster-method",
        "diffusion",
    )
    assert clustered["settings"]["cluster_method"] == "diffusion"
    assert clustered["dsmi"] > 0.5  # the reference is a noisy copy of the three clusters


# ---------------------------------------------------------------- sweep


def test_sweep_grid_equals_single_calls_and_plots(capsys, files):
    plot = os.path.join(files["dir"], "grid.png")
    result, _ = run_json(
        capsys,
        "sweep",
        files["x.npy"],
        "--labels",
        files["y.npy"],
        "--sigma",
        "1,sqrt_dim,4",
        "--t",
        "1,3",
        "--plot",
        plot,
    )
    sigmas = [1.0, float(np.sqrt(D)), 4.0]
    assert result["settings"]["sigma"] == pytest.approx(sigmas)
    grid = np.array(result["dse"])
    assert grid.shape == (3, 2)
    for i, s in enumerate(sigmas):
        assert grid[i] == pytest.approx(np.asarray(jaxdse.dse(files["x"], sigma=s, t=np.array([1.0, 3.0]))), abs=1e-4)
    mi = np.array(result["dsmi"])
    assert mi.shape == (3, 2)
    one = jaxdse.dsmi(files["x"], files["y"], key=estimator_key(), sigma=4.0, t=3.0)
    assert mi[2, 1] == pytest.approx(float(one), abs=1e-4)
    assert os.path.getsize(plot) > 1000 and result["plot"] == plot


def test_sweep_default_sigmas_and_table(capsys, files):
    code, out, err = run(capsys, "sweep", files["x.csv"], "--t", "1,2")
    assert code == 0, err
    assert "median heuristic" in err
    assert "sigma \\ t" in out and out.count("\n") > 6


# ---------------------------------------------------------------- compare


def test_compare_lists_every_estimator_with_units_and_timings(capsys, files):
    result, _ = run_json(
        capsys, "compare", files["x.npy"], "--labels", files["y.npy"], "--sigma", "3", "--mine-epochs", "2"
    )
    for name in ("dse", "cse", "dsmi", "csmi", "ksg", "mine"):
        assert np.isfinite(result[name]), name
        assert result["timings"][f"{name}_s"] > 0
    assert result["units"] == "bits"
    assert result["dse"] == pytest.approx(float(jaxdse.dse(files["x"], sigma=3.0)), abs=1e-5)
    assert 0 <= result["cse"] <= np.log2(N) + 1e-6
    try:
        import dse_dsmi  # noqa: F401
    except ImportError:
        assert "reference_dse" not in result
    else:
        assert result["reference_dse"] == pytest.approx(result["dse"], abs=1e-3)


def test_compare_selected_estimators_table_with_steady_times(capsys, files):
    code, out, err = run(
        capsys, "compare", files["x.npy"], "--labels", files["y.npy"], "--estimators", "dse,cse", "--repeat", "2"
    )
    assert code == 0, err
    assert "DSE(Z)" in out and "CSE(Z)" in out and "DSMI" not in out
    assert "steady" in out


# ---------------------------------------------------------------- demo


def test_demo_trains_and_writes_curves(capsys, files):
    out_dir = os.path.join(files["dir"], "demo")
    result, _ = run_json(capsys, "demo", "--epochs", "1", "--subset", "120", "--out", out_dir)
    assert result["epoch"] == [0, 1]
    for name in ("accuracy", "dse", "dsmi"):
        assert len(result[name]) == 2 and all(np.isfinite(result[name])), name
    assert result["units"] == "bits"
    assert os.path.getsize(result["plot"]) > 1000
    with open(result["history"]) as handle:
        assert json.load(handle)["dse"] == result["dse"]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv, words",
    [
        (["dse", "@dir/missing.npy"], "does not exist"),
        (["dse", "@dir"], "directory"),
        (["dse", "@data.dat"], "unknown extension"),
        (["dse", "@corrupt.npy"], "cannot read"),
        (["dse", "@objects.npy"], "Python objects"),
        (["dse", "@words.csv"], "not a number"),
        (["dse", "@ragged.csv"], "columns"),
        (["dse", "@empty.csv"], "no numeric rows"),
        (["dse", "@xy.npz"], "choose one by name: --array NAME on the command line"),
        (["dsmi", "@x.npy", "--labels", "@xy.npz"], "choose one by name: --labels-array NAME on the command line"),
        (["dsmi", "@x.npy", "--reference", "@xy.npz"], "choose one by name: --labels-array NAME"),
        (["dse", "@xy.npz", "--array", "nope"], "no array 'nope'"),
        (["dse", "@x.npy", "--array", "features"], ".npz"),
        (["dse", "@scalar.npy"], "single number"),
        (["dse", "@one_row.npy"], "at least 2"),
        (["dse", "@nan.npy"], "NaN"),
        (["dse", "@x.npy", "--sigma", "wide"], "--sigma"),
        (["dse", "@x.npy", "--sigma", "-1"], "--sigma"),
        (["dse", "@x.npy", "--sigma", "knn:0"], "knn"),
        (["dse", "@x.npy", "--sigma", "knn:40"], "k"),
        (["dse", "@x.npy", "--solver", "magic"], "--solver"),
        (["dse", "@x.npy", "--num-probes", "4"], "--solver slq"),
        (["dsmi", "@x.npy", "--labels", "@y.npy", "--solver", "slq"], "--solver"),
        (["dse", "@x.npy", "--t", "0"], "--t"),
        (["dse", "@x.npy", "--alpha", "2"], "--alpha"),
        (["dse", "@x.npy", "--max-n", "1"], "--max-n"),
        (["dse", "@x.npy", "--unknown-flag"], "unrecognized"),
        (["dse"], "FEATURES"),
        (["frobnicate"], "invalid choice"),
        (["dsmi", "@x.npy"], "--labels"),
        (["dsmi", "@x.npy", "--labels", "@y_short.npy"], "23 labels"),
        (["dsmi", "@x.npy", "--labels", "@y_nan.npy"], "NaN"),
        (["dsmi", "@x.npy", "--labels", "@y_real.npy"], "--reference"),
        (["dsmi", "@x.npy", "--labels", "@y_matrix.npy"], "--reference"),
        (["dsmi", "@x.npy", "--labels", "@y.npy", "--reference", "@y.npy"], "not allowed"),
        (["dsmi", "@x.npy", "--labels", "@y.npy", "--estimator", "guess"], "--estimator"),
        (["dsmi", "@x.npy", "--reference", "@y_short.npy"], "rows"),
        (["sweep", "@x.npy", "--sigma", "1,knn"], "--sigma"),
        (["sweep", "@x.npy", "--t", "1,,x"], "--t"),
        (["sweep", "@x.npy", "--plot", "@dir/no/such/folder/p.png"], "does not exist"),
        (["compare", "@x.npy"], "--labels"),
        (["compare", "@x.npy", "--labels", "@y.npy", "--estimators", "dse,oracle"], "oracle"),
        (["compare", "@x.npy", "--labels", "@y.npy", "--estimators", "mine", "--max-n", "5"], "too few"),
        (["demo", "--out", "@x.npy"], "not a folder"),
    ],
)
def test_errors_are_one_line_with_status_2(capsys, files, argv, words):
    argv = [expand(a, files) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = [line for line in err.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxdse") and "error:" in lines[0]
    assert words in lines[0]
    assert "Traceback" not in err


def test_gpu_request_without_gpu_is_an_error(capsys, files):
    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("a GPU is present")
    code, out, err = run(capsys, "dse", files["x.npy"], "--device", "gpu")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "GPU" in err


def test_debug_shows_the_traceback(capsys, files):
    code, _, err = run(capsys, "dse", files["nan.npy"], "--debug")
    assert code == 2
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("jaxdse dse: error:")


def test_help_and_version(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "demo" in out and "dse" in out
    code, out, _ = run(capsys, "dsmi", "--help")
    assert code == 0 and "--labels" in out and "--reference" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and jaxdse.__version__ in out
    # One version: the installed metadata (or the source tree's fallback) is pyproject's.
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert jaxdse.__version__ == pyproject["project"]["version"]


# ---------------------------------------------------------------- entry points


def test_python_dash_m_entry_point(files):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxdse", "dse", files["x.npy"], "--json"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dse"] == pytest.approx(float(jaxdse.dse(files["x"])), abs=1e-5)
    proc = subprocess.run(
        [sys.executable, "-m", "jaxdse", "dse", files["nan.npy"]], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr and "NaN" in proc.stderr


def test_console_script_is_installed():
    script = shutil.which("jaxdse", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if script is None:
        pytest.skip("the package is not installed with its console script in this environment")
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "demo" in proc.stdout
