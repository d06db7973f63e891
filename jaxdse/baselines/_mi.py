"""Mutual informations of the baseline entropies, built exactly like DSMI.

Each entropy is wrapped as a hashable masked entropy and handed to
:func:`jaxdse.dsmi.mutual_information`, so the reference handling (labels,
binning, clustering), the estimators (``"subsample"``, ``"plugin"``) and the
padding to a static class size are DSMI's own.
"""

from __future__ import annotations

from typing import NamedTuple

from jaxdse.affinity import Bandwidth


def estimate(z, y, entropy_fn, params, options, bytes_per_subset=None):
    """Run DSMI's estimator with ``entropy_fn``; ``options`` are its keyword arguments."""
    from jaxdse.dsmi import mutual_information

    return mutual_information(z, y, entropy_fn=entropy_fn, params=params, bytes_per_subset=bytes_per_subset, **options)


class ClassicEntropy(NamedTuple):
    """Masked CSE; static: bins per feature; ``params = base``."""

    num_bins: int

    def __call__(self, points, mask, params):
        from jaxdse.baselines.cse import masked_cse

        return masked_cse(points, mask, num_bins=self.num_bins, base=params)


class MatrixEntryEntropy(NamedTuple):
    """Masked matrix-entry entropy; static: bandwidth rule (and k); ``params = (sigma, base)``."""

    rule: str
    k: int | None = None

    def __call__(self, points, mask, params):
        from jaxdse.baselines.variants import masked_matrix_entry_entropy

        sigma, base = params
        bandwidth = Bandwidth(self.rule, sigma if self.rule == "fixed" else self.k)
        return masked_matrix_entry_entropy(points, mask, sigma=bandwidth, base=base)


class AdjacencyEntropy(NamedTuple):
    """Masked adjacency spectral entropy; static: kind, knn, bandwidth rule; ``params = (sigma, base)``."""

    kind: str
    knn: int
    rule: str
    k: int | None = None

    def __call__(self, points, mask, params):
        from jaxdse.baselines.variants import masked_adjacency_spectral_entropy

        sigma, base = params
        bandwidth = Bandwidth(self.rule, sigma if self.rule == "fixed" else self.k)
        return masked_adjacency_spectral_entropy(points, mask, kind=self.kind, knn=self.knn, sigma=bandwidth, base=base)
