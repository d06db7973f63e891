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

# The two test workers (and the command-line subprocesses) share compiled
# programs through JAX's persistent compilation cache: a program one worker has
# compiled is read from disk by the other instead of compiled again (about 15%
# of the default tier). One fresh folder per test session, removed at its end;
# a folder already set in JAX_COMPILATION_CACHE_DIR is used as it is.
import tempfile  # noqa: E402

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _session = os.getppid() if "PYTEST_XDIST_WORKER" in os.environ else os.getpid()
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"jaxdse-test-cache-{_session}")
    os.environ["JAXDSE_TEST_CACHE_OWNED"] = os.environ["JAX_COMPILATION_CACHE_DIR"]
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

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


# The slower checks: the test functions that took longest on two cores (mostly
# XLA compilation), each still run by the slow tier, `python -m pytest -m slow`.
# Every module keeps tests in the default tier; tests/test_layout.py checks that
# each name here is a test function of its module.
SLOW = {
    "test_baselines_binned.py": {
        "test_mask_equals_slice_jit_and_vmap",
    },
    "test_baselines_mi.py": {
        "test_adjacency_mi_plugin_equals_the_sliced_formula",
        "test_matrix_entry_mi_plugin_equals_the_sliced_formula",
    },
    "test_baselines_variants.py": {
        "test_mask_equals_slice_and_vmap",
    },
    "test_bench_gpu.py": {
        "test_bench_gpu_quick_writes_every_section",
    },
    "test_cli.py": {
        "test_compare_lists_every_estimator_with_units_and_timings",
        "test_dse_bandwidth_rules",
        "test_python_dash_m_entry_point",
    },
    "test_cli_contracts.py": {
        "test_t_auto_on_the_command_line",
    },
    "test_contracts.py": {
        "test_dsmi_references",
    },
    "test_dse.py": {
        "test_mask_equals_slice",
        "test_string_bandwidths",
        "test_vmap_over_masks_and_jit_of_closed_over_data",
    },
    "test_dsmi.py": {
        "test_array_t_equals_one_call_per_t",
        "test_batches_and_skipped_subsets_do_not_change_the_result",
        "test_grad_of_subsample_matches_finite_differences",
        "test_informative_labels_beat_shuffled_and_corruption_decreases",
        "test_shared_distance_path_equals_per_subset_path",
    },
    "test_examples.py": {
        "test_init_search",
        "test_layerwise",
        "test_layerwise_on_a_hugging_face_model",
        "test_model_zoo_on_user_data",
        "test_model_zoo_study",
        "test_regularizer",
        "test_sweep",
        "test_toy_mutual_information",
        "test_training_dynamics",
    },
    "test_inputs.py": {
        "test_a_bandwidth_rule_is_resolved_once_on_the_whole_set",
        "test_integer_seeds_wherever_a_key_is_taken",
        "test_precomputed_distances_and_affinities_equal_the_points",
        "test_precomputed_matrices_that_fail_the_checks_give_nan_under_jit",
        "test_results_report_the_t_they_used",
        "test_t_auto_takes_the_knee_of_dse_against_t",
    },
    "test_layerwise.py": {
        "test_labels_give_per_layer_dsmi",
        "test_lax_map_path_equals_vmap_path",
        "test_normalize_options_equal_manual_normalisation",
        "test_normalize_per_prompt",
        "test_vmap_over_stacks",
    },
    "test_metrics.py": {
        "test_evaluator_equals_the_separate_measures_and_vmaps",
        "test_gradients_agree_with_finite_differences",
        "test_jit_vmap_and_grad",
        "test_masked_call_equals_call_on_kept_rows",
    },
    "test_multiprocess.py": {
        "test_two_processes_equal_one_process",
    },
    "test_nystrom.py": {
        "test_dsmi_all_rows_matches_exact",
        "test_kmeanspp_and_fixed_landmarks",
    },
    "test_peers.py": {
        "test_transformer_dispersion_equals_the_authors_call",
    },
    "test_precision.py": {
        "test_every_dot_general_runs_at_highest_precision",
    },
    "test_reference.py": {
        "test_dsmi_digits_clustered_pixels_matches_reference",
        "test_reference_at_n_4000_nearly_constant_kernel",
    },
    "test_sharding.py": {
        "test_eight_devices_equal_one_device_for_every_mesh_and_layout",
    },
    "test_slq.py": {
        "test_a_mask_keeping_fewer_rows_than_the_deflation_rank",
        "test_dense_and_blockwise_operators_give_the_same_estimate",
        "test_dsmi_with_the_stochastic_solver",
        "test_duplicates_and_tiny_sets",
        "test_ends_of_the_range_stay_in_bounds_and_near_exact",
        "test_float32_data_with_x64_enabled",
        "test_gradient_at_a_constant_kernel_is_finite",
        "test_gradient_near_dse_one_at_n_2000",
        "test_gradient_with_64_deflation_columns_at_n_2000",
        "test_gradient_of_a_smooth_kernel_on_few_points",
        "test_gradients_follow_the_exact_gradient",
        "test_jit_vmap_and_results_as_pytrees",
        "test_memory_budget_changes_how_not_what",
        "test_standard_error_carries_no_derivative",
    },
    "test_sweep.py": {
        "test_a_new_grid_of_the_same_size_does_not_compile_again",
        "test_dsmi_options_as_in_dsmi",
        "test_grid_equals_single_calls",
    },
    "test_training.py": {
        "test_fit_then_evaluator_matches_library_and_compiles_once",
        "test_penalty_is_differentiated_and_reported",
        "test_train_epoch_compiles_once_and_vmaps_over_a_population",
    },
}


def pytest_sessionfinish(session, exitstatus):
    # The controller (not a worker) removes the cache folder this session made.
    owned = os.environ.get("JAXDSE_TEST_CACHE_OWNED")
    if owned and "PYTEST_XDIST_WORKER" not in os.environ:
        import shutil

        shutil.rmtree(owned, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.originalname in SLOW.get(item.path.name, ()):
            item.add_marker(pytest.mark.slow)
