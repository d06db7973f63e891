"""Layer profiles from batches of a data loader: :class:`LayerAccumulator`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdse.layers.inputs import _check_settings, as_layers, check_mask, layer_shape, pool_tokens
from jaxdse.layers.profile import layerwise, profile


class LayerAccumulator:
    """:func:`jaxdse.layerwise` over batches: ``.add(...)`` each batch, then ``.result()``.

    ``result()`` equals one :func:`jaxdse.layerwise` call on the concatenated
    batches (for the exact solver; an SLQ draws per batch for ``"prompt"``).
    What is kept (host memory, float32):

    * ``"dataset"``: the pooled vectors, ``L * N * D * 4`` bytes for ``N`` sequences;
    * ``"prompt"``: the per-prompt values only (each batch is computed on ``add``);
    * ``"tokens"``: every kept token row, ``L * n * D * 4`` bytes for ``n``
      kept tokens, and at ``result()`` one dense ``n x n`` problem per layer.

    Settings are :func:`jaxdse.layerwise`'s keywords (not ``mask``/``labels``,
    given per batch). Batches may differ in ``B`` and ``T``, not in ``L`` or the
    layer widths.

    >>> import numpy as np
    >>> acc = LayerAccumulator(granularity="dataset", sigma=1.0)
    >>> for seed in range(2):
    ...     _ = acc.add(np.random.default_rng(seed).normal(size=(3, 8, 5, 4)))  # [L, B, T, D]
    >>> acc.result().value.shape
    (3,)
    """

    def __init__(
        self, *, granularity="tokens", pool="mean", normalize=None, sigma=10.0, t=1.0, alpha=0.0, base=2.0,
        solver=None, key=None, mi_options=None,
    ):  # fmt: skip
        _check_settings(granularity, pool, normalize, sigma, t, alpha, base, solver, key)
        self.settings = dict(
            granularity=granularity,
            pool=pool,
            normalize=normalize,
            sigma=sigma,
            t=t,
            alpha=alpha,
            base=base,
            solver=solver,
            key=key,
            mi_options=mi_options,
        )
        self._rows = None  # per layer: list of [n_b, D_l] arrays
        self._labels = []
        self._values = []  # "prompt": (value, stderr, t, count) per batch
        self._batches = 0

    def add(self, hidden_states, mask=None, labels=None):
        """Add one batch: ``[L, B, T, D]``, a sequence of ``[B, T, D]``, or ``[L, N, D]``.

        ``mask`` and ``labels`` are as in :func:`jaxdse.layerwise`.
        """
        g = self.settings["granularity"]
        if self._batches and (labels is None) != (not self._labels):
            raise ValueError("labels: give them for every batch or for none")
        if g == "prompt":
            if labels is not None:
                raise ValueError("labels: per-layer DSMI needs granularity 'tokens' or 'dataset', not 'prompt'")
            s = dict(self.settings)
            if s["key"] is not None:
                s["key"] = jax.random.fold_in(
                    jax.random.key(s["key"]) if isinstance(s["key"], int) else s["key"], self._batches
                )
            r = layerwise(hidden_states, mask=mask, **s)
            self._values.append(tuple(np.asarray(a) for a in (r.value, r.stderr, r.t, r.count)))
            self._batches += 1
            return self
        layers, token_axis = as_layers(hidden_states)
        if self._rows is not None and len(layers) != len(self._rows):
            raise ValueError(f"hidden_states: {len(layers)} layers, earlier batches had {len(self._rows)}")
        if token_axis:
            B, T = layer_shape(layers, 0)[:2]
        else:
            g = "tokens"  # each row is one point: keep the kept rows
            B, T = 1, layer_shape(layers, 0)[0]
        m = check_mask(mask, (B, T) if token_axis else (B * T,))
        m = None if m is None else np.asarray(m).reshape(B, T)
        if m is not None and g == "dataset" and m.sum(-1).min() < 1:
            raise ValueError(f"mask: sequence {int(np.argmin(m.sum(-1)))} keeps no tokens; nothing to pool")
        rows = []
        for h in layers:
            h = jnp.asarray(h, jnp.float32).reshape(B, T, -1)
            if g == "dataset":
                r = pool_tokens(h, None if m is None else jnp.asarray(m), self.settings["pool"])
            else:
                r = h.reshape(B * T, -1)
                if m is not None:
                    r = r[np.flatnonzero(m.reshape(-1))]
            rows.append(np.asarray(r))
        if self._rows is None:
            self._rows = [[] for _ in rows]
        for acc, r in zip(self._rows, rows):
            if acc and acc[0].shape[-1] != r.shape[-1]:
                raise ValueError(f"hidden_states: layer width {r.shape[-1]}, earlier batches had {acc[0].shape[-1]}")
            acc.append(r)
        if labels is not None:
            y = np.asarray(labels)
            want = (B,) if g == "dataset" else ((B, T) if token_axis else (T,))
            if y.shape != want:
                raise ValueError(f"labels must have shape {want} for granularity {g!r}, got {y.shape}")
            y = y.reshape(-1)
            self._labels.append(y if m is None or g == "dataset" else y[m.reshape(-1)])
        self._batches += 1
        return self

    def result(self):
        """The :class:`jaxdse.LayerProfile` of everything added."""
        if not self._batches:
            raise ValueError("nothing added yet")
        s = dict(self.settings)
        if s["granularity"] == "prompt":
            value, stderr, t, count = (jnp.asarray(np.concatenate(a, axis=1)) for a in zip(*self._values))
            return profile(value, stderr, t, count, s["base"])
        layers = [np.concatenate(r) for r in self._rows]  # [N, D_l] each
        labels = np.concatenate(self._labels) if self._labels else None
        if len({x.shape[-1] for x in layers}) == 1:
            layers = np.stack(layers)  # one stack [L, N, D]
        return layerwise(layers, labels=labels, **s)
