"""Mutation check: do the tests notice small deliberate bugs in the numerical core?

Each mutant is one exact text replacement in one file of ``jaxdse/``. For each,
the repository is copied to a temporary directory, the replacement is applied
(the old text must occur exactly once), and a fast subset of the tests is run
against the copy. A mutant is *killed* when the tests fail, *survived* when they
pass, *timeout* when they run past the limit. The unmutated sources are run
first and must pass. Not part of the test suite.

    python tools/mutation.py --jobs 1 [--only NAME ...] [--limit N] [--timeout S] [--minutes M]

Adds its run at the top of ``tools/results_mutation.md`` (newest first).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = [
    "tests/test_formulas.py",
    "tests/test_contracts.py",
    "tests/solvers/test_slq.py",
    "tests/test_accuracy.py",
    "tests/baselines/test_baselines_kraskov.py",
    "tests/test_inputs.py",
]
# The numerical promises (the argument checks and the command line have their own
# tests) and the cheaper accuracy tests of SLQ and KSG.
DEFAULT_SELECT = (
    "not bad_input and not command_line and not loaders and not mine and not gradients and not memory_budget"
    " and not dense_and_blockwise and not dsmi_with_the_stochastic and not feature_chunking and not ten_dimensional"
)
PYTEST_FLAGS = ["-x", "-q", "-n", "0", "-p", "no:cacheprovider"]

# (name, file, exact old text, new text)
MUTANTS = [
    # kernel and standardisation
    (
        "kernel: no factor 2",
        "jaxdse/kernels/points.py",
        "exponent = -d2 / (2.0 * jnp.where(positive, s2, 1.0))",
        "exponent = -d2 / (jnp.where(positive, s2, 1.0))",
    ),
    (
        "standardise: wrong exponent",
        "jaxdse/kernels/points.py",
        "return _power_of_two_scale(y, -e1), e0 + e1",
        "return _power_of_two_scale(y, -e1), e0 - e1",
    ),
    (
        "sigma: invalid gives 1",
        "jaxdse/kernels/points.py",
        "s = _power_of_two_scale(jnp.where(valid, sigma, jnp.nan), -e)",
        "s = _power_of_two_scale(jnp.where(valid, sigma, 1.0), -e)",
    ),
    (
        "sigma: sign ignored",
        "jaxdse/kernels/points.py",
        "valid = jnp.isfinite(sigma) & (sigma > 0)",
        "valid = jnp.isfinite(sigma) & (sigma != 0)",
    ),
    (
        "median: /4",
        "jaxdse/kernels/points.py",
        "s = jnp.sqrt(jnp.where(med > 0, med, jnp.nan) / 2.0)",
        "s = jnp.sqrt(jnp.where(med > 0, med, jnp.nan) / 4.0)",
    ),
    (
        "knn: dropped rows as neighbours",
        "jaxdse/kernels/points.py",
        "excluded = excluded | ~keep[None, :]",
        "excluded = excluded",
    ),
    ("distances: 1.9 cross", "jaxdse/kernels/points.py", "d2 = norms - 2.0 * cross", "d2 = norms - 1.9 * cross"),
    (
        "distances: duplicates not 0",
        "jaxdse/kernels/points.py",
        "return jnp.where(d2 <= noise, 0.0, d2)",
        "return jnp.maximum(d2, 0.0)",
    ),
    (
        "distances: NaN made 0",
        "jaxdse/kernels/points.py",
        "return jnp.where(d2 <= noise, 0.0, d2)",
        "return jnp.where(d2 > noise, d2, 0.0)",
    ),
    (
        "affinity mask: rows only",
        "jaxdse/kernels/points.py",
        "G = jnp.where(keep[:, None] & keep[None, :], G, 0.0)",
        "G = jnp.where(keep[:, None], G, 0.0)",
    ),
    # normalisation and spectrum
    (
        "normalisation: alpha dropped from r",
        "jaxdse/solvers/diffusion.py",
        "r = jnp.where(keep, q_alpha * jax.lax.rsqrt(deg), 0.0)",
        "r = jnp.where(keep, jax.lax.rsqrt(deg), 0.0)",
    ),
    (
        "normalisation: alpha halved",
        "jaxdse/solvers/diffusion.py",
        "jnp.exp(-jnp.asarray(alpha, w.dtype) * jnp.log(q))",
        "jnp.exp(-0.5 * jnp.asarray(alpha, w.dtype) * jnp.log(q))",
    ),
    (
        "spectrum: zeros off by one",
        "jaxdse/solvers/diffusion.py",
        "jnp.where(i <= dropped, 0.0, w)",
        "jnp.where(i < dropped, 0.0, w)",
    ),
    ("spectrum: no deflation", "jaxdse/solvers/diffusion.py", "deflated = S - v[:, None] * v[None, :]", "deflated = S"),
    (
        "normalisation: degree not square-rooted",
        "jaxdse/solvers/diffusion.py",
        "sqrt_deg = jnp.where(keep, jnp.sqrt(deg), 0.0)",
        "sqrt_deg = jnp.where(keep, deg, 0.0)",
    ),
    # entropy
    (
        "entropy: base ignored",
        "jaxdse/entropy/spectral.py",
        "h = h / jnp.log(jnp.asarray(base, lam.dtype))",
        "h = h / jnp.log(jnp.asarray(2.0, lam.dtype))",
    ),
    ("entropy: subnormals dropped", "jaxdse/entropy/spectral.py", "present = normal | subnormal", "present = normal"),
    (
        "entropy: t=0 accepted",
        "jaxdse/entropy/spectral.py",
        "valid = (t[..., 0] > 0) & jnp.isfinite(t[..., 0]) & _checks.valid_base(base)",
        "valid = (t[..., 0] >= 0) & jnp.isfinite(t[..., 0]) & _checks.valid_base(base)",
    ),
    (
        "entropy: t ignored",
        "jaxdse/entropy/spectral.py",
        "log_w = jnp.where(nonzero, t * log_abs, -jnp.inf)",
        "log_w = jnp.where(nonzero, log_abs, -jnp.inf)",
    ),
    (
        "base: inf accepted under jit",
        "jaxdse/_checks.py",
        "return jnp.isfinite(base) & (base > 0) & (base != 1)",
        "return (base > 0) & (base != 1)",
    ),
    # masks and checks
    (
        "mask: fewer than 2 rows accepted under jit",
        "jaxdse/entropy/diffusion_entropy.py",
        "& _checks.valid_base(base) & (jnp.sum(keep) >= 2)",
        "& _checks.valid_base(base)",
    ),
    (
        "non-finite kept rows not detected under jit",
        "jaxdse/entropy/diffusion_entropy.py",
        "return jnp.all(jnp.where(keep[:, None], jnp.isfinite(points), True))",
        "return jnp.all(jnp.where(keep[:, None], True, True))",
    ),
    (
        "check: inf accepted eagerly",
        "jaxdse/_checks.py",
        "if not np.all(np.isfinite(v)) or np.any(v <= 0):",
        "if np.any(v <= 0):",
    ),
    ("check: mask keeping 1 row accepted", "jaxdse/_checks.py", "if kept < min_kept:", "if kept < 1:"),
    (
        "check: NaN in dropped rows raises",
        "jaxdse/_checks.py",
        "bad_rows = bad_rows & jnp.asarray(mask)",
        "bad_rows = bad_rows",
    ),
    # labels and binning
    (
        "traced binning: NaN reference kept",
        "jaxdse/mi/clustering.py",
        "return jnp.where(jnp.all(jnp.isfinite(y)), labels, -1)",
        "return labels",
    ),
    (
        "traced binning: edges shifted",
        "jaxdse/mi/clustering.py",
        "edges = jnp.linspace(0.0, 1.0, num_clusters + 1, dtype=y.dtype)[:-1]",
        "edges = jnp.linspace(0.0, 1.0, num_clusters + 1, dtype=y.dtype)[1:]",
    ),
    (
        "one-hot read as continuous",
        "jaxdse/mi/labels.py",
        "return bool(np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(axis=1) == 1))",
        "return False",
    ),
    ("traced labels: marked rows accepted", "jaxdse/mi/labels.py", "ok = ok & (labels >= 0)", "ok = ok"),
    # DSMI subsets and weights
    ("dsmi: weights over n+1", "jaxdse/mi/engine.py", "weights = counts / n\n", "weights = counts / (n + 1)\n"),
    (
        "dsmi: single class informative",
        "jaxdse/mi/engine.py",
        "informative = (counts < n) & (counts > 0)",
        "informative = counts > 0",
    ),
    (
        "dsmi plugin: half conditional",
        "jaxdse/mi/engine.py",
        "value = jnp.sum(w * (total.value[..., None] - conditional), axis=-1)",
        "value = jnp.sum(w * (total.value[..., None] - 0.5 * conditional), axis=-1)",
    ),
    (
        "dsmi subsample: max of comparisons",
        "jaxdse/mi/engine.py",
        "value = jnp.sum(w * (jnp.mean(comparison, axis=-1) - conditional), axis=-1)",
        "value = jnp.sum(w * (jnp.max(comparison, axis=-1) - conditional), axis=-1)",
    ),
    (
        "dsmi: class subsets not masked",
        "jaxdse/mi/engine.py",
        "mask = jnp.arange(M) < counts[c]",
        "mask = jnp.arange(M) < M",
    ),
    # SLQ
    (
        "slq: Gauss only (no midpoint)",
        "jaxdse/solvers/slq.py",
        "return 0.5 * (gauss + radau), jnp.sqrt(",
        "return gauss, jnp.sqrt(",
    ),
    (
        "slq: stderr x100",
        "jaxdse/solvers/slq.py",
        "stderr = jnp.std(per_probe, ddof=1) / math.sqrt(p)",
        "stderr = 100.0 * jnp.std(per_probe, ddof=1) / math.sqrt(p)",
    ),
    (
        "slq: no control variates",
        "jaxdse/solvers/slq.py",
        "return sums[k:] - (x[k:] - mu) @ coef",
        "return sums[k:]",
    ),
    (
        "slq: Radau without beta^2",
        "jaxdse/solvers/lanczos.py",
        "delta_m = lower + beta**2 * jnp.sum(Y[-1, :] ** 2 / shifted)",
        "delta_m = lower + jnp.sum(Y[-1, :] ** 2 / shifted)",
    ),
    (
        "slq: Radau node at 0 on indefinite kernels",
        "jaxdse/solvers/lanczos.py",
        "lower = jnp.where(lowest < -rounding, lowest, 0.0)",
        "lower = jnp.zeros_like(lowest)",
    ),
    (
        "slq: 20 Lanczos steps on indefinite kernels",
        "jaxdse/solvers/objects.py",
        "INDEFINITE_MATVECS = 40\n",
        "INDEFINITE_MATVECS = 20\n",
    ),
    ("slq: rounding floor 16 eps", "jaxdse/solvers/slq.py", "ROUNDING_FLOOR = 1\n", "ROUNDING_FLOOR = 16\n"),
    (
        "slq: quadrature gap left out of stderr",
        "jaxdse/solvers/slq.py",
        "sampling**2 + (gauss - radau) ** 2 / 4.0",
        "sampling**2",
    ),
    (
        "slq: quadrature gap / sqrt 12",
        "jaxdse/solvers/slq.py",
        "(gauss - radau) ** 2 / 4.0",
        "(gauss - radau) ** 2 / 12.0",
    ),
    (
        "slq: stderr x2",
        "jaxdse/solvers/slq.py",
        "return 0.5 * (gauss + radau), jnp.sqrt(",
        "return 0.5 * (gauss + radau), 2.0 * jnp.sqrt(",
    ),
    (
        "slq: value + 0.01 bits",
        "jaxdse/solvers/slq.py",
        "    value = jnp.log(z) - h / z\n",
        "    value = jnp.log(z) - h / z + 0.01 * math.log(2.0)\n",
    ),
    (
        "slq: Radau only",
        "jaxdse/solvers/slq.py",
        "return 0.5 * (gauss + radau), jnp.sqrt(",
        "return radau, jnp.sqrt(",
    ),
    (
        "slq: Radau nodes not capped",
        "jaxdse/solvers/slq.py",
        "a = jnp.minimum(jnp.abs(theta), 1.0)",
        "a = jnp.abs(theta)",
    ),
    (
        "slq: guard weight eps (not eps^2)",
        "jaxdse/solvers/lanczos.py",
        "fill = (eps / math.sqrt(num_matvecs))",
        "fill = (jnp.sqrt(eps) / math.sqrt(num_matvecs))",
    ),
    (
        "slq: top eigenvalue 1 left out",
        "jaxdse/solvers/slq.py",
        "z = 1.0 + top[0]",
        "z = top[0]",
    ),
    (
        "slq: deflated second moment",
        "jaxdse/solvers/slq.py",
        "op.frobenius_sq - top[2]])",
        "op.frobenius_sq - 0.0 * top[2]])",
    ),
    (
        "slq: guard values outside the spectrum",
        "jaxdse/solvers/slq.py",
        "spread = jax.lax.stop_gradient(jnp.maximum(spread, floor))",
        "spread = jnp.ones_like(spread)",
    ),
    (
        "slq: gradient from mean slopes (no divided differences)",
        "jaxdse/solvers/lanczos.py",
        "    divided = jnp.where(\n        close,",
        "    divided = jnp.where(\n        True,",
    ),
    (
        "slq: control variates' moments without derivatives",
        "jaxdse/solvers/slq.py",
        "x, mu = x + live.moments / jnp.stack([1.0, scale, scale * scale]), mu + live.exact",
        "x, mu = x, mu",
    ),
    (
        "slq: probe space of negative dimension",
        "jaxdse/solvers/slq.py",
        "jnp.maximum(kept - 1.0 - k, 0.0)",
        "kept - 1.0 - k",
    ),
    (
        "slq: probes on dropped rows",
        "jaxdse/solvers/slq.py",
        "omega = omega * keep[:, None]",
        "omega = omega * 1.0",
    ),
    # baselines
    (
        "cse: edges include 1",
        "jaxdse/baselines/binned.py",
        "np.linspace(0.0, 1.0, num_bins + 1)[1:-1]",
        "np.linspace(0.0, 1.0, num_bins + 1)[1:]",
    ),
    (
        "cse: strict edges",
        "jaxdse/baselines/binned.py",
        "return jnp.sum(scaled[..., None] >= edges, axis=-1, dtype=jnp.int32)",
        "return jnp.sum(scaled[..., None] > edges, axis=-1, dtype=jnp.int32)",
    ),
    (
        "cse: dropped rows counted",
        "jaxdse/baselines/binned.py",
        "counts = jax.ops.segment_sum(keep.astype(x.dtype), gid",
        "counts = jax.ops.segment_sum(jnp.ones_like(keep, x.dtype), gid",
    ),
    (
        "cse: NaN not detected under jit",
        "jaxdse/baselines/binned.py",
        "ok = jnp.all(jnp.where(keep[:, None], jnp.isfinite(x), True)) & (jnp.sum(keep) >= 2)",
        "ok = jnp.sum(keep) >= 2",
    ),
    (
        "ksg: counts <= radius",
        "jaxdse/baselines/kraskov.py",
        "n_x = jnp.sum(dist_x < eps[:, None], axis=1)",
        "n_x = jnp.sum(dist_x <= eps[:, None], axis=1)",
    ),
    (
        "ksg: nearest instead of k-th",
        "jaxdse/baselines/kraskov.py",
        "eps = -jax.lax.top_k(-joint, k)[0][:, k - 1]",
        "eps = -jax.lax.top_k(-joint, k)[0][:, 0]",
    ),
    (
        "ksg: NaN not detected under jit",
        "jaxdse/baselines/kraskov.py",
        "ok = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(y)) & _checks.valid_base(base)",
        "ok = _checks.valid_base(base)",
    ),
]


ORDER = {m[0]: i for i, m in enumerate(MUTANTS)}


def check_mutants():
    """Every replacement applies exactly once to the current sources."""
    problems = []
    names = set()
    for name, path, old, new in MUTANTS:
        if name in names:
            problems.append(f"{name}: duplicate name")
        names.add(name)
        count = (ROOT / path).read_text().count(old)
        if count != 1:
            problems.append(f"{name}: old text occurs {count} times in {path}")
        if old == new:
            problems.append(f"{name}: replacement changes nothing")
    return problems


def round_robin(mutants):
    """The mutants in turn from each file, in their order within a file."""
    by_file = {}
    for m in mutants:
        by_file.setdefault(m[1], []).append(m)
    queues = list(by_file.values())
    out = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def copy_repository(dest: Path):
    for entry in ("jaxdse", "tests", "benchmarks", "tools", "pyproject.toml", "README.md", "examples"):
        src = ROOT / entry
        if src.is_dir():
            shutil.copytree(src, dest / entry, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dest / entry)


def own_tests_first(mutant, tests):
    """``tests`` with the mutated module's own test file (``test_<module>.py``, for
    ``baselines/<module>.py`` ``test_baselines_<module>.py``, in any folder of
    ``tests/``) first, if listed: most mutants are killed there, and with ``-x``
    the run then stops early."""
    if mutant is None:
        return tests
    path = Path(mutant[1])
    name = f"test_{'baselines_' if path.parent.name == 'baselines' else ''}{path.stem}.py"
    own = next((t for t in tests if Path(t).name == name), None)
    return [own, *(t for t in tests if t != own)] if own else tests


def run_mutant(mutant, tests, timeout):
    """``(name, status, seconds, first failure)``; ``mutant=None`` runs the unmutated sources."""
    name = "unmutated" if mutant is None else mutant[0]
    with tempfile.TemporaryDirectory(prefix="jaxdse-mutant-") as tmp:
        tmp = Path(tmp)
        copy_repository(tmp)
        if mutant is not None:
            _, path, old, new = mutant
            target = tmp / path
            text = target.read_text()
            assert text.count(old) == 1, name
            target.write_text(text.replace(old, new))
        env = dict(os.environ, PYTHONPATH=str(tmp), PYTHONDONTWRITEBYTECODE="1")
        start = time.time()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", *PYTEST_FLAGS, *own_tests_first(mutant, tests)],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return name, "timeout", time.time() - start, ""
        seconds = time.time() - start
        failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        if proc.returncode == 0:
            return name, "survived", seconds, ""
        if proc.returncode == 1:
            return name, "killed", seconds, failed[0] if failed else ""
        return name, f"error (pytest exit {proc.returncode})", seconds, (proc.stdout + proc.stderr)[-300:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    parser.add_argument("--only", nargs="*", help="names of the mutants to run (default: all)")
    parser.add_argument("--limit", type=int, help="run only the first N mutants")
    parser.add_argument("--minutes", type=float, help="start no mutant after this many minutes (the rest: not run)")
    parser.add_argument("--tests", nargs="*", default=DEFAULT_TESTS)
    parser.add_argument("--select", default=DEFAULT_SELECT, help="pytest -k expression ('' for every test)")
    parser.add_argument("--out", default=str(ROOT / "tools" / "results_mutation.md"))
    args = parser.parse_args(argv)
    problems = check_mutants()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    mutants = [m for m in MUTANTS if not args.only or m[0] in args.only]
    mutants = round_robin(mutants)  # a cut-short run still covers every file
    if args.limit is not None:
        mutants = mutants[: args.limit]
    started = time.time()
    tests = [*args.tests, "-k", args.select] if args.select else args.tests
    # The unmutated sources must pass, or every mutant would look killed.
    baseline = run_mutant(None, tests, args.timeout)
    print(f"unmutated: {baseline[1]} in {baseline[2]:.0f} s {baseline[3]}", flush=True)
    if baseline[1] != "survived":
        print("the tests fail without any mutant; fix them first", file=sys.stderr)
        return 1
    stop_at = None if args.minutes is None else started + 60.0 * args.minutes
    results = []
    earlier = earlier_runs(Path(args.out))

    def run(m):
        if stop_at is not None and time.time() > stop_at:
            return None
        return run_mutant(m, tests, args.timeout)

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for result in pool.map(run, mutants):
            if result is None:
                continue
            results.append(result)
            print(f"{result[1]:>9}  {result[2]:6.0f} s  {result[0]}  {result[3]}", flush=True)
            write_report(
                Path(args.out),
                sorted(results, key=lambda r: ORDER[r[0]]),
                args,
                time.time() - started,
                argv,
                baseline,
                earlier,
            )
    results.sort(key=lambda r: ORDER[r[0]])
    write_report(Path(args.out), results, args, time.time() - started, argv, baseline, earlier)
    return 0


TITLE = "# Mutation check"
PREAMBLE = (
    "Runs of `tools/mutation.py` (before the move to `tools/`, `benchmarks/mutation.py`), newest first. "
    "Each names the files of the code it ran on, as they were then."
)


def earlier_runs(out: Path) -> str:
    """The runs ``out`` holds already (everything below its title and preamble), or ""."""
    if not out.exists():
        return ""
    text = out.read_text()
    start = text.find("\n## ")
    return text[start + 1 :].rstrip() + "\n" if start >= 0 else ""


def write_report(out: Path, results, args, seconds, argv, baseline, earlier=""):
    killed = sum(r[1] == "killed" for r in results)
    command = "python tools/mutation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        TITLE,
        "",
        PREAMBLE,
        "",
        f"## Run of {datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds):%Y-%m-%d %H:%M} UTC",
        "",
        f"Kill rate: **{killed}/{len(results)}** mutants killed"
        + (f" ({100.0 * killed / len(results):.0f}%)" if results else "")
        + f" of {len(MUTANTS)} defined.",
        "",
        f"- Command: `{command}`",
        f"- Tests: `pytest {' '.join(PYTEST_FLAGS)} {' '.join(args.tests)}"
        + (f" -k '{args.select}'" if args.select else "")
        + f"`, at most {args.timeout:.0f} s per mutant",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; total {seconds / 60:.1f} min",
        f"- Machine: {platform.node() and platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "",
        f"- Unmutated sources: tests pass in {baseline[2]:.0f} s",
        "",
        "| mutant | file | result | seconds | first failing test |",
        "|---|---|---|---|---|",
    ]
    files = {m[0]: m[1] for m in MUTANTS}
    for name, status, secs, detail in results:
        lines.append(f"| {name} | `{files[name]}` | {status} | {secs:.0f} | {detail.replace('|', '/')[:120]} |")
    survivors = [r[0] for r in results if r[1] != "killed"]
    lines += ["", "Not killed: " + (", ".join(survivors) if survivors else "none") + "."]
    not_run = [m[0] for m in MUTANTS if m[0] not in {r[0] for r in results}]
    if not_run:
        lines += ["", "Not run in this run: " + ", ".join(not_run) + "."]
    out.write_text("\n".join(lines) + "\n" + ("\n" + earlier if earlier else ""))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
