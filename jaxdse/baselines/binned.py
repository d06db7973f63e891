"""Classic Shannon entropy (CSE) of binned points, the paper's baseline.

Each feature is min-max scaled to [0, 1] over the kept rows and cut into
``B = num_bins_per_dim`` equal bins; the entropy is that of the counts of
identical binned rows. In high dimension almost every row is alone in its cell
and CSE saturates at ``log_b n``: the curse of dimensionality DSE avoids.

Binning follows the reference (``np.digitize`` against the left edges
``0, 1/B, ..., (B-1)/B``): a value on an inner edge goes to the upper bin and the
maximum goes to the top bin. A zero-range (constant) column puts every row in
bin 0, so it does not split any group: CSE equals that of the other columns.
(The reference divides 0 by 0 there; its NaNs all land in one bin, which gives
the same value, with a runtime warning.)

Counting identical rows with static shapes: the bin codes are packed into
int32 words (31 binary digits, or fewer digits of base B, per word), and a
group id per row is refined word by word: sort rows by (group id, word) and
take dense ranks. This is exact (no hashing), costs ``O(n log n)`` per word
and works under ``jit`` and ``vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse import _checks
from jaxdse.entropy.spectral import entropy_of_spectrum


def cse(x, *, num_bins_per_dim: int = 2, mask=None, base=2.0):
    """Classic Shannon entropy of the binned rows of ``x`` ``[n, d]``.

    ``CSE = -sum_c (n_c / m) log_b (n_c / m)``, where ``n_c`` counts the kept rows
    whose binned vector is ``c`` and ``m`` is the number of kept rows.
    ``0 <= CSE <= log_b m``.

    Args:
      x: ``[n, d]`` points (integer data is converted to the default float dtype).
      num_bins_per_dim: ``B >= 1`` equal-width bins per feature (static).
      mask: optional ``[n]`` bool; ``False`` rows are ignored exactly (also in the
        min-max scaling): ``cse(x, mask=m) == cse(x[m])``.
      base: logarithm base; 2 (default) gives bits, ``e`` nats.

    Returns:
      Scalar entropy in units of ``base``.

    Raises:
      TypeError/ValueError naming the argument for bad input, checked before
      tracing (non-finite ``x``, a mask keeping fewer than 2 rows, a
      non-integer ``num_bins_per_dim``...).

    Transformations: works under ``jax.jit`` (``num_bins_per_dim`` and the
    presence of ``mask`` are static) and ``jax.vmap`` over ``x`` and ``mask``.
    Not differentiable (piecewise constant). In float64 it equals
    ``dse_dsmi.diffusion_spectral_entropy(x, classic_shannon_entropy=True)``
    to 1e-9 bits (the reference adds machine epsilon to each probability).

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> float(cse(x))  # four distinct cells of one point each: log2(4)
    2.0
    >>> float(cse(x, mask=jnp.array([True, True, False, False])))
    1.0
    """
    num_bins = _checks.check_int(num_bins_per_dim, "num_bins_per_dim")
    x = _checks.as_array(x, "x")
    mask = _checks.check_mask(mask, np.shape(x)[0] if np.ndim(x) else 0)
    x = _checks.as_points(x, "x", mask=mask)
    base = _checks.check_base(base)
    return masked_cse(x, mask, num_bins=num_bins, base=base)


def masked_cse(x, mask, *, num_bins: int = 2, base=2.0):
    """Unchecked core of :func:`cse`; ``mask`` may be None. For use under vmap."""
    keep = jnp.ones(x.shape[0], bool) if mask is None else mask
    # Non-finite kept values, or fewer than two kept rows, give NaN (under jit).
    ok = jnp.all(jnp.where(keep[:, None], jnp.isfinite(x), True)) & (jnp.sum(keep) >= 2)
    x = jnp.where(keep[:, None] & ok, x, 0.0)
    codes = bin_codes(x, keep, num_bins)
    gid = group_ids(codes, keep, num_bins)
    counts = jax.ops.segment_sum(keep.astype(x.dtype), gid, num_segments=x.shape[0])
    return jnp.where(ok, entropy_of_spectrum(counts, 1.0, base), jnp.nan)


def bin_codes(x, keep, num_bins: int):
    """Bin index ``[n, d]`` in ``0 .. B-1`` of each value (min-max over kept rows)."""
    big = jnp.asarray(jnp.inf, x.dtype)
    # Halved (exactly) so that the range of values near the dtype's limit cannot overflow.
    x = 0.5 * x
    lo = jnp.min(jnp.where(keep[:, None], x, big), axis=0)
    hi = jnp.max(jnp.where(keep[:, None], x, -big), axis=0)
    span = hi - lo
    has_span = span > 0
    # Both sides scaled by the same power of two (exact) so that the division
    # never meets a subnormal reciprocal (flushed to 0) for spans near the limit.
    _, e = jnp.frexp(jnp.where(has_span, span, 1.0))
    scaled = jnp.where(has_span, jnp.ldexp(x - lo, -e) / jnp.ldexp(jnp.where(has_span, span, 1.0), -e), 0.0)
    # The reference's left edges, computed the same way so edge values agree.
    edges = jnp.asarray(np.linspace(0.0, 1.0, num_bins + 1)[1:-1], x.dtype)
    return jnp.sum(scaled[..., None] >= edges, axis=-1, dtype=jnp.int32)


def _digits_per_word(num_bins: int) -> int:
    """How many base-B digits fit an int32 word (at most 31 for B = 2)."""
    if num_bins == 1:
        return 31
    per_word = 0
    while num_bins ** (per_word + 1) <= 2**31:
        per_word += 1
    return per_word


def group_ids(codes, keep, num_bins: int):
    """``[n]`` int32 ids, equal exactly when two rows have equal codes (and keep)."""
    n, d = codes.shape
    per_word = _digits_per_word(num_bins)
    num_words = -(-d // per_word)
    codes = jnp.pad(codes, ((0, 0), (0, num_words * per_word - d)))
    powers = jnp.asarray([num_bins**j for j in range(per_word)], jnp.int32)
    words = jnp.sum(codes.reshape(n, num_words, per_word) * powers, axis=-1, dtype=jnp.int32)
    rows = jnp.arange(n, dtype=jnp.int32)

    def refine(gid, word):
        g, w, perm = jax.lax.sort((gid, word, rows), num_keys=2)
        new_group = (g[1:] != g[:-1]) | (w[1:] != w[:-1])
        rank = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(new_group, dtype=jnp.int32)])
        return jnp.zeros(n, jnp.int32).at[perm].set(rank), None

    # Dropped rows start in their own group and never merge with kept rows.
    gid0 = jnp.where(keep, 0, 1).astype(jnp.int32)
    gid, _ = jax.lax.scan(refine, gid0, words.T)
    return gid
