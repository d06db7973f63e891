"""Entropy: a spectrum -> its entropy, and the public DSE estimates.

:mod:`~jaxdse.entropy.spectral` is the entropy of a spectrum;
:mod:`~jaxdse.entropy.diffusion_entropy` the DSE of masked subsets of one
prepared input, with any solver; :mod:`~jaxdse.entropy.estimators` the public
:func:`dse`, :func:`dse_estimate`, :func:`choose_t` and
:func:`diffusion_eigenvalues`; :mod:`~jaxdse.entropy.knee` the knee of DSE
against t that ``t="auto"`` takes.

Imports from jaxdse: :mod:`jaxdse._checks`, :mod:`jaxdse.kernels` and :mod:`jaxdse.solvers`.
"""

from jaxdse.entropy.diffusion_entropy import DiffusionEntropy
from jaxdse.entropy.estimators import choose_t, diffusion_eigenvalues, dse, dse_estimate
from jaxdse.entropy.spectral import entropy_of_spectrum, max_entropy, spectral_entropy

__all__ = [
    "DiffusionEntropy",
    "choose_t",
    "diffusion_eigenvalues",
    "dse",
    "dse_estimate",
    "entropy_of_spectrum",
    "max_entropy",
    "spectral_entropy",
]
