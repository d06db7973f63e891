"""``python -m jaxdse``: DSE of the shipped digits data at a few bandwidths."""

from __future__ import annotations

import time


def main() -> int:
    import jax

    import jaxdse
    from jaxdse.data import load_digits

    x, y = load_digits()
    print(f"jaxdse {jaxdse.__version__} on {jax.devices()[0].platform}: digits data, n={x.shape[0]}, d={x.shape[1]}")
    print(f"{'sigma':>10}  {'DSE (bits)':>10}  {'time (s)':>8}")
    for sigma in (5.0, 10.0, 20.0, 40.0, "median"):
        t0 = time.perf_counter()
        value = float(jaxdse.dse(x, sigma=sigma))
        print(f"{sigma!s:>10}  {value:10.4f}  {time.perf_counter() - t0:8.2f}")
    print(f"(upper bound log2 n = {jaxdse.entropy.max_entropy(x.shape[0]):.4f} bits)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
