import os

# The tests run on two worker processes (pytest-xdist); a multi-threaded BLAS in
# each of them oversubscribes a small machine, and OpenBLAS's spinning threads
# then slow small eigendecompositions by two orders of magnitude. One BLAS
# thread per worker; set before numpy and jax load their libraries.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Most of the suite's time is XLA compiling small programs for the CPU. LLVM's -O0
# compiles them about a third faster (they run slower, which matters little at
# these sizes). A level already set in XLA_FLAGS is kept.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import gc

import jax
import numpy as np
import pytest


def _memory_maps():
    try:
        with open("/proc/self/maps") as fh:
            return sum(1 for _ in fh)
    except OSError:  # not Linux
        return 0


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Drop jax's compiled programs once a worker holds many of them.

    Every program XLA compiles for the CPU keeps about three memory mappings
    until it is released. A test worker compiles thousands; past Linux's
    default limit of 65,530 mappings per process, a compilation's mmap fails
    and XLA crashes the worker with a segmentation fault.
    """
    yield
    if _memory_maps() > 20_000:
        jax.clear_caches()
        gc.collect()


@pytest.fixture
def x64():
    """Run the test body with jax's float64 mode on."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def blobs(rng, n=60, d=5, k=3, sep=6.0):
    centres = rng.normal(scale=sep, size=(k, d))
    labels = np.arange(n) % k
    return centres[labels] + rng.normal(size=(n, d)), labels


# Hypothesis: the default tier draws a few examples per property (each compiled
# function is reused by all of them); the slow tier's copies of the property tests
# draw the "ci" profile's number. JAXDSE_HYPOTHESIS_PROFILE=thorough draws many more.
from hypothesis import HealthCheck, settings  # noqa: E402

_QUIET = [HealthCheck.too_slow, HealthCheck.differing_executors]
settings.register_profile("default", max_examples=5, deadline=None, derandomize=True, suppress_health_check=_QUIET)
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=_QUIET)
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("JAXDSE_HYPOTHESIS_PROFILE", "default"))


def slow_tier_settings():
    """Settings of a property test's slow-tier copy: the "ci" profile, or the loaded one where it draws more."""
    ci = settings.get_profile("ci")
    return settings.default if settings.default.max_examples > ci.max_examples else ci
