"""Choosing the diffusion time t at the knee of DSE against t.

As PHATE's ``t="auto"``: DSE falls as t grows (small eigenvalues die out) and
then flattens; the knee is where it stops falling fast. Both axes are scaled to
[0, 1] (t on a log scale) and the knee is the point farthest below the chord
that joins the curve's ends. A curve whose range is under ``flat`` (in the
curve's units) does not depend on t: the smallest t is as good as any. A curve
that stays within ``bend`` of its chord (straight, or still falling steeply at
the end of the grid) has no knee: NaN.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# The grid searched by t="auto": 1 to 1024, four points per doubling.
T_GRID = tuple(float(2.0**e) for e in np.arange(0.0, 10.25, 0.25))
FLAT = 0.05
BEND = 0.02


def knee_index(ts, values, *, flat: float = FLAT, bend: float = BEND):
    """Index of the knee of ``values`` ``[T]`` over increasing ``ts`` ``[T]``: 0 for a flat curve, -1 for none.

    Traced (works under ``jit``/``vmap``); a non-finite curve gives -1.
    """
    t = jnp.asarray(ts)
    y = jnp.asarray(values)
    s = jnp.log(t)
    s = (s - s[0]) / (s[-1] - s[0])
    span = jnp.max(y) - jnp.min(y)
    v = (y - jnp.min(y)) / jnp.where(span > 0, span, 1.0)
    gap = v[0] + (v[-1] - v[0]) * s - v
    idx = jnp.argmax(gap)
    idx = jnp.where(span < flat, 0, jnp.where(gap[idx] > bend, idx, -1))
    return jnp.where(jnp.all(jnp.isfinite(y)), idx, -1)


def knee(ts, values, *, flat: float = FLAT, bend: float = BEND):
    """The t at the knee of a decreasing curve ``values(t)`` (``ts[0]`` if flat), or NaN when it has none.

    >>> ts = [1, 2, 4, 8, 16, 32]
    >>> float(knee(ts, [5.0, 2.0, 1.2, 1.1, 1.05, 1.0]))
    2.0
    >>> float(knee(ts, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    1.0
    >>> float(knee(ts, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]))  # straight in log t: no knee
    nan
    """
    t = jnp.asarray(ts, jnp.result_type(float))
    idx = knee_index(t, values, flat=flat, bend=bend)
    return jnp.where(idx >= 0, t[jnp.maximum(idx, 0)], jnp.nan)
