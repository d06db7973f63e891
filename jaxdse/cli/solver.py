"""``--solver`` on the library: the one place that says how the command line picks an eigenvalue solver."""

from __future__ import annotations

from jaxdse.cli.report import UsageError

SOLVERS = ("exact", "eigh", "slq", "nystrom")
EXACT_SOLVERS = ("exact", "eigh")


def solver_options(args):
    """Keyword arguments that select ``args.solver`` (with its settings) in the library.

    ``exact``: the library's default exact eigenvalues; ``eigh``: a full
    symmetric eigendecomposition; ``slq``: the matrix-free stochastic Lanczos
    estimate with ``--num-probes`` probes and ``--num-matvecs`` Lanczos steps;
    ``nystrom``: the low-rank estimate with ``--num-landmarks`` landmarks.
    """
    probes, matvecs = getattr(args, "num_probes", None), getattr(args, "num_matvecs", None)
    if args.solver != "slq" and (probes is not None or matvecs is not None):
        raise UsageError("--num-probes and --num-matvecs are settings of --solver slq")
    landmarks = getattr(args, "num_landmarks", None)
    if args.solver != "nystrom" and landmarks is not None:
        raise UsageError("--num-landmarks is a setting of --solver nystrom")
    import jaxdse

    if args.solver == "nystrom":
        return {"solver": jaxdse.Nystrom(**({} if landmarks is None else {"num_landmarks": landmarks}))}
    if args.solver == "slq":
        settings = {k: v for k, v in (("num_probes", probes), ("num_matvecs", matvecs)) if v is not None}
        return {"solver": jaxdse.SLQ(**settings)}
    return {"solver": jaxdse.Exact("eigh" if args.solver == "eigh" else "auto")}


def dse_with_stderr(x, key, args, **kernel):
    """``(DSE, standard error, settings)`` of ``x`` with ``args.solver``.

    The stochastic solver reports its standard error and its probe and step counts;
    the exact ones give ``None`` and ``{}``.
    """
    import jax

    import jaxdse

    solver = solver_options(args)["solver"]
    if isinstance(solver, jaxdse.Nystrom):
        result = jax.block_until_ready(jaxdse.dse_estimate(x, key=key, solver=solver, **kernel))
        return float(result.value), float(result.stderr), dict(num_landmarks=solver.num_landmarks)
    if isinstance(solver, jaxdse.SLQ):
        result = jax.block_until_ready(jaxdse.dse_estimate(x, key=key, solver=solver, **kernel))
        return (
            float(result.value),
            float(result.stderr),
            dict(num_probes=solver.num_probes, num_matvecs=solver.num_matvecs),
        )
    return float(jax.block_until_ready(jaxdse.dse(x, solver=solver, **kernel))), None, {}
