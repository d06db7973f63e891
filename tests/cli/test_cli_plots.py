"""Figures the command line and the examples draw (:mod:`jaxdse.io.plotting`)."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from jaxdse.io import plotting  # noqa: E402


def _ticks(labels):
    return [label.get_text() for label in labels]


def test_heatmap_axes_are_sorted_and_keep_their_labels():
    sigmas, ts = [4.0, 2.63, 1.0], [5.0, 1.0, 2.0]
    grid = np.array([[40.0, 41.0, 42.0], [20.0, 21.0, 22.0], [10.0, 11.0, 12.0]])  # grid[i, j] for sigmas[i], ts[j]
    fig = plotting.sweep_figure(sigmas, ts, grid, sigma_labels=["4", "median (= 2.63)", "1"])
    ax = fig.axes[0]
    assert _ticks(ax.get_yticklabels()) == ["1", "median (= 2.63)", "4"]
    assert _ticks(ax.get_xticklabels()) == ["1", "2", "5"]
    image = ax.images[0].get_array()
    np.testing.assert_array_equal(image, [[11.0, 12.0, 10.0], [21.0, 22.0, 20.0], [41.0, 42.0, 40.0]])
    plotting.pyplot().close(fig)


def test_demo_figure_states_sigma_and_t(tmp_path):
    curves = {
        "epoch": [0, 1],
        "train_accuracy": [0.1, 0.5],
        "accuracy": [0.1, 0.4],
        "dse": [1.0, 2.0],
        "dsmi": [0.1, 0.5],
        "dsmi_x": [0.2, 0.3],
    }
    fig = plotting.demo_figure(curves, n_test=100, sigma=10.0, t=1.0)
    title = fig.axes[1].get_title()
    assert "sigma = 10" in title and "t = 1" in title
    path = plotting.save_figure(fig, tmp_path / "demo.png")
    assert path.stat().st_size > 1000


def test_image_formats_include_png_and_pdf():
    formats = plotting.image_formats()
    assert ".png" in formats and ".pdf" in formats and ".xyz" not in formats
