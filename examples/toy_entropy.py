"""DSE against intrinsic dimension (the paper's toy entropy study, in miniature).

n points in D ambient dimensions; the first d coordinates are U[-1, 1], the
other D - d one shared constant; uniform noise U[-noise, noise] is added to
every coordinate. DSE (sigma 10) should rise with d and saturate near log2 n;
larger t delays the rise and suppresses the noise. Classic Shannon entropy
(CSE, 2 bins per feature) is shown alongside: once noise makes every binned row
unique it is flat at log2 n.

The whole grid (d, noise, repetition) -- data generation, DSE for every t from
one eigendecomposition, and CSE -- is one jitted call, vmapped over the grid
(in batches, through ``lax.map``, to bound memory).

    python examples/toy_entropy.py --out outputs/toy_entropy
"""

from __future__ import annotations

import _common  # noqa: F401  (sets BLAS threads before numpy/jax are imported)
import jax
import jax.numpy as jnp
import numpy as np

import jaxdse
from jaxdse.baselines import cse


def make_points(key, d, noise, *, n, ambient):
    """``[n, ambient]``: U[-1, 1] in the first ``d`` coordinates (traced), a constant elsewhere, plus noise."""
    k1, k2, k3 = jax.random.split(key, 3)
    signal = jax.random.uniform(k1, (n, ambient), minval=-1.0, maxval=1.0)
    constant = jax.random.uniform(k2, (), minval=-1.0, maxval=1.0)
    x = jnp.where(jnp.arange(ambient)[None, :] < d, signal, constant)
    return x + noise * jax.random.uniform(k3, (n, ambient), minval=-1.0, maxval=1.0)


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--sigma", type=float, default=10.0)
    args = p.parse_args(argv)
    if args.quick:
        n, ambient, reps = 64, 128, 1
        dims = [1, 4, 16, 64, 128]
        noises = [0.0, 0.3]
    else:
        n, ambient, reps = 500, 2048, 3
        dims = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
        noises = [0.0, 0.1, 0.3]
    ts = [1.0, 2.0, 3.0, 5.0]
    t_arr = jnp.asarray(ts)

    grid = [(d, s, r) for s in noises for d in dims for r in range(reps)]
    d_arr = jnp.asarray([g[0] for g in grid])
    s_arr = jnp.asarray([g[1] for g in grid], jnp.float32)
    keys = jax.random.split(jax.random.key(args.seed), len(grid))

    def one(args_):
        key, d, noise = args_
        x = make_points(key, d, noise, n=n, ambient=ambient)
        return jaxdse.dse(x, sigma=args.sigma, t=t_arr), cse(x)

    @jax.jit
    def whole_grid(keys, d_arr, s_arr):
        return jax.lax.map(one, (keys, d_arr, s_arr), batch_size=6)

    bar = _common.progress(1, "toy entropy grid (one jitted call)", disable=args.no_progress)
    with _common.Timer() as timer:
        h_dse, h_cse = jax.block_until_ready(whole_grid(keys, d_arr, s_arr))
    bar.update(1)
    bar.close()
    compiles = whole_grid._cache_size()

    h_dse = np.asarray(h_dse).reshape(len(noises), len(dims), reps, len(ts))
    h_cse = np.asarray(h_cse).reshape(len(noises), len(dims), reps)
    ceiling = float(np.log2(n))

    # Claims: DSE rises with d and saturates near log2 n (t = 1, no noise);
    # larger t delays the rise; CSE is flat at log2 n when there is noise.
    mean_dse = h_dse.mean(2)
    t1_clean = mean_dse[0, :, 0]
    rises = bool(t1_clean[-1] - t1_clean[0] > 0.5 * ceiling and np.all(np.diff(t1_clean) > -0.05))
    saturates = bool(t1_clean[-1] > 0.9 * ceiling)
    # Delayed rise: at every intermediate d, DSE decreases with t.
    delayed = bool(np.all(np.diff(mean_dse[0, 1:-1, :], axis=-1) <= 1e-3))
    noisy_cse = h_cse[1:].mean(-1) if len(noises) > 1 else h_cse
    cse_flat = bool(np.all(np.abs(noisy_cse - ceiling) < 0.05))
    # Noise suppression: the gap between noisy and clean DSE at the smallest d shrinks as t grows.
    noise_gap = mean_dse[-1, 0, :] - mean_dse[0, 0, :]
    noise_suppressed = bool(noise_gap[-1] < noise_gap[0])

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, len(noises), figsize=(3.2 * len(noises), 2.8), sharey=True)
    axes = np.atleast_1d(axes)
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(ts)))
    for i, (ax, s) in enumerate(zip(axes, noises)):
        for j, t in enumerate(ts):
            m, sd = h_dse[i, :, :, j].mean(-1), h_dse[i, :, :, j].std(-1)
            ax.plot(dims, m, "o-", ms=3, color=colors[j], label=f"DSE t={t:g}")
            ax.fill_between(dims, m - sd, m + sd, color=colors[j], alpha=0.2)
        ax.plot(dims, h_cse[i].mean(-1), "k--", lw=1, label="CSE")
        ax.axhline(ceiling, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("intrinsic dimension d")
        ax.set_title("no noise" if s == 0 else f"noise U[-{s:g}, {s:g}] in every coordinate")
    axes[0].set_ylabel(f"entropy (bits), n={n}, D={ambient}")
    axes[0].legend(loc="lower right")
    fig.suptitle(
        f"DSE (sigma {args.sigma:g}) and CSE against intrinsic dimension; dotted: log2 n = {ceiling:.2f}", y=1.02
    )
    payload = {
        "settings": dict(n=n, ambient_dim=ambient, repetitions=reps, sigma=args.sigma, quick=args.quick),
        "dims": dims,
        "t": ts,
        "noise": noises,
        "log2_n": ceiling,
        "dse": h_dse.tolist(),  # [noise, d, repetition, t]
        "dse_mean": mean_dse.tolist(),  # [noise, d, t]
        "cse": h_cse.tolist(),  # [noise, d, repetition]
        "seconds_whole_grid": timer.seconds,
        "compilations": compiles,
        "claims": {
            "dse_rises_with_d": rises,
            "dse_saturates_near_log2_n": saturates,
            "larger_t_delays_rise": delayed,
            "larger_t_suppresses_noise": noise_suppressed,
            "cse_flat_at_log2_n_with_noise": cse_flat,
        },
    }
    png, path = _common.save_outputs(fig, args.out, "toy_entropy", payload)
    print(f"wrote {png} and {path} ({len(grid)} point sets x {len(ts)} t in {timer.seconds:.1f} s)")
    print("claims:", {k: v for k, v in _common.json.loads(path.read_text())["claims"].items()})


if __name__ == "__main__":
    main()
