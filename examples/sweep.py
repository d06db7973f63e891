"""A vmapped sweep over sigma x t of DSE and DSMI on a trained network's features.

A :class:`jaxdse.zoo.CNN` is trained briefly on the digits; its penultimate
features Z on the held-out split are measured over a grid of bandwidths sigma
and diffusion times t:

* DSE(Z) and DSMI(Z; Y) with :func:`jaxdse.mi.sweep.sweep`: one eigendecomposition
  per sigma gives the entropy at every t, and the same random subsets serve
  every cell.

Both sweeps are jitted functions of the (traced) grids: calling them again on a
different grid of the same size reuses the compiled code, which the JSON
records. For each sigma, the t at the knee of the entropy-versus-t curve
(:func:`jaxdse.mi.sweep.knee`: largest distance below the chord joining its ends,
in log t) is marked.

    python examples/sweep.py --out outputs/sweep
"""

from __future__ import annotations

import _common  # noqa: F401  (sets BLAS threads before numpy/jax are imported)
import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import zoo
from jaxdse.io import plotting
from jaxdse.mi.sweep import knee, sweep


def knee_index(ts, values):
    """Index into ``ts`` of the knee of ``values(t)``; ``None`` when the curve has no knee."""
    t = knee(ts, values)
    return None if np.isnan(t) else int(np.flatnonzero(np.asarray(ts) == t)[0])


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], training=True)
    args = p.parse_args(argv)
    quick = args.quick
    epochs = args.epochs or (2 if quick else 15)
    if quick:
        sigmas, ts, test_size, train_size = np.array([2.5, 10.0, 40.0]), np.array([1.0, 3.0, 10.0]), 80, 200
    else:
        sigmas, ts, test_size, train_size = (
            10.0 * 2.0 ** np.linspace(-4, 2, 13),
            2.0 ** np.linspace(-1, 6, 15),
            None,
            None,
        )
    sigmas = sigmas.astype(np.float32)
    ts = ts.astype(np.float32)

    images, labels, data_name = _common.load_images(args.data)
    (x_tr, y_tr), (x_te, y_te) = zoo.train_test_split(images, labels, key=jax.random.key(args.seed))
    x_tr, y_tr, x_te, y_te = x_tr[:train_size], y_tr[:train_size], x_te[:test_size], y_te[:test_size]
    history = zoo.fit(
        x_tr,
        y_tr,
        x_te,
        y_te,
        epochs=epochs,
        key=jax.random.key(args.seed),
        measure=False,
        width=16,
        features=64,
        learning_rate=3e-3,
        batch_size=32,
        progress=False if args.no_progress else "training the network",
    )
    z = history["model"](jnp.asarray(x_te))[1]
    traces = {"dse": 0, "dsmi": 0}

    @jax.jit
    def dse_sweep(z, sigmas, ts):
        traces["dse"] += 1
        return sweep(z, sigmas, ts).dse  # [S, T]

    @jax.jit
    def dsmi_sweep(z, sigmas, ts, key):
        traces["dsmi"] += 1
        return sweep(z, sigmas, ts, labels=y_te, key=key).dsmi  # [S, T]; the labels are counted on the host

    key = jax.random.key(args.seed + 1)
    bar = _common.progress(4, "sweeps", disable=args.no_progress)
    with _common.Timer() as t_dse_first:
        h = np.asarray(dse_sweep(z, sigmas, ts))
    bar.update(1)
    with _common.Timer() as t_dse_second:
        jax.block_until_ready(dse_sweep(z, sigmas * 1.1, ts * 0.9))  # another grid of the same size
    bar.update(1)
    with _common.Timer() as t_mi_first:
        mi = np.asarray(dsmi_sweep(z, sigmas, ts, key))
    bar.update(1)
    with _common.Timer() as t_mi_second:
        jax.block_until_ready(dsmi_sweep(z, sigmas * 1.1, ts * 0.9, key))
    bar.update(1)
    bar.close()
    compiled_once = dse_sweep._cache_size() == 1 and dsmi_sweep._cache_size() == 1 and traces == {"dse": 1, "dsmi": 1}

    knees = [knee_index(ts, row) for row in h]
    i10 = int(np.argmin(np.abs(np.log(sigmas / 10.0))))
    best = np.unravel_index(np.nanargmax(mi), mi.shape)

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for ax, grid, title in ((axes[0], h, "DSE(Z) (bits)"), (axes[1], mi, "DSMI(Z; Y) (bits)")):
        im = plotting.sweep_heatmap(ax, grid, sigmas, ts, title=title, annotate=False, cmap="magma")
        fig.colorbar(im, ax=ax)
    rows = [i for i, k in enumerate(knees) if k is not None]
    axes[0].plot([knees[i] for i in rows], rows, "c^", ms=5, label="knee in t")
    axes[0].legend(loc="upper right", fontsize=7)
    axes[1].plot(best[1], best[0], "c*", ms=9, label="largest DSMI")
    axes[1].legend(loc="upper right", fontsize=7)
    shown = sorted({0, i10, len(sigmas) - 1})
    for i in shown:
        (line,) = axes[2].plot(ts, h[i], "o-", ms=3, label=f"sigma={sigmas[i]:.3g}")
        if knees[i] is not None:
            axes[2].plot(ts[knees[i]], h[i, knees[i]], "^", color=line.get_color(), ms=8)
    axes[2].set_xscale("log")
    axes[2].set_xlabel("t")
    axes[2].set_ylabel("DSE(Z) (bits)")
    axes[2].set_title("entropy vs t (triangles: knee)")
    axes[2].legend()
    fig.suptitle(
        f"sigma x t sweep, {len(sigmas)}x{len(ts)} grid, penultimate features of a trained CNN "
        f"(test acc {history['test_accuracy'][-1]:.2f}); each sweep compiled once",
        y=1.03,
    )
    payload = {
        "settings": dict(data=data_name, test_size=len(x_te), epochs=epochs, quick=quick),
        "sigma": sigmas,
        "t": ts,
        "dse": h,  # [sigma, t]
        "dsmi_y": mi,  # [sigma, t]
        "knee_t_index": knees,
        "knee_t": [None if k is None else float(ts[k]) for k in knees],  # None: flat curve, no knee
        "knee_t_at_sigma_10": None if knees[i10] is None else float(ts[knees[i10]]),
        "dse_at_sigma_10_t_1": float(h[i10, int(np.argmin(np.abs(ts - 1.0)))]),
        "dsmi_y_at_sigma_10_t_1": float(mi[i10, int(np.argmin(np.abs(ts - 1.0)))]),
        "largest_dsmi": dict(sigma=float(sigmas[best[0]]), t=float(ts[best[1]]), bits=float(mi[best])),
        "test_accuracy": history["test_accuracy"][-1],
        "compilations": {"dse_sweep": dse_sweep._cache_size(), "dsmi_sweep": dsmi_sweep._cache_size()},
        "traces": traces,
        "seconds": dict(
            dse_first_call=t_dse_first.seconds,
            dse_second_grid=t_dse_second.seconds,
            dsmi_first_call=t_mi_first.seconds,
            dsmi_second_grid=t_mi_second.seconds,
        ),
        "claims": {"sweep_compiles_once": bool(compiled_once)},
    }
    png, path = _common.save_outputs(fig, args.out, "sweep", payload)
    print(f"wrote {png} and {path}")
    print(
        f"compiled once: {compiled_once}; DSE sweep {t_dse_first.seconds:.2f} s first, {t_dse_second.seconds:.3f} s "
        f"on a new grid; DSMI sweep {t_mi_first.seconds:.2f} s first, {t_mi_second.seconds:.3f} s on a new grid; "
        f"knee t at sigma {sigmas[i10]:.3g}: {None if knees[i10] is None else round(float(ts[knees[i10]]), 3)}; "
        f"largest DSMI {mi[best]:.2f} bits at sigma {sigmas[best[0]]:.3g}, t {ts[best[1]]:.3g}"
    )


if __name__ == "__main__":
    main()
