"""``--solver`` on the library: the one place that says how the command line picks an eigenvalue solver."""

from __future__ import annotations

from jaxdse.cli.report import UsageError

SOLVERS = ("exact", "eigh", "slq")
EXACT_SOLVERS = ("exact", "eigh")


def solver_options(args):
    """Keyword arguments that select ``args.solver`` (with its settings) in the library.

    ``exact``: the library's default exact eigenvalues; ``eigh``: a full
    symmetric eigendecomposition; ``slq``: the matrix-free stochastic Lanczos
    estimate with ``--num-probes`` probes and ``--num-matvecs`` Lanczos steps.
    """
    probes, matvecs = getattr(args, "num_probes", None), getattr(args, "num_matvecs", None)
    if args.solver != "slq" and (probes is not None or matvecs is not None):
        raise UsageError("--num-probes and --num-matvecs are settings of --solver slq")
    options = {"method": {"exact": "auto", "eigh": "eigh", "slq": "slq"}[args.solver]}
    if args.solver == "slq":
        options.update((k, v) for k, v in (("num_probes", probes), ("num_matvecs", matvecs)) if v is not None)
    return options


def dse_with_stderr(x, key, args, **kernel):
    """``(DSE, standard error, settings)`` of ``x`` with ``args.solver``.

    The stochastic solver reports its standard error and its probe and step counts;
    the exact ones give ``None`` and ``{}``.
    """
    import jax

    options = solver_options(args)
    if options["method"] == "slq":
        from jaxdse.slq import dse_slq

        del options["method"]
        result = jax.block_until_ready(dse_slq(x, key=key, **kernel, **options))
        return float(result.value), float(result.stderr), dict(num_probes=result.num_probes, num_matvecs=result.num_matvecs)
    import jaxdse

    return float(jax.block_until_ready(jaxdse.dse(x, **kernel, **options))), None, {}
