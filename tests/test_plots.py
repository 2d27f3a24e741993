"""The pictures say what they show: titles that match their panels, named axes, a
colour bar for a shaded probability."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from backprop import plots  # noqa: E402


def test_the_curves_title_names_only_the_panels_drawn(figures):
    plots.curves([{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4}], "c.png", "sine")
    plots.curves([{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.7}], "c.png", "moons")
    titles = [fig._suptitle.get_text() for fig in figures]
    assert titles == ["sine: loss per epoch", "moons: loss and accuracy per epoch"]
    assert [len(fig.axes) for fig in figures] == [1, 2]


def test_a_decision_boundary_names_its_axes_and_its_shading(figures):
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    labels = np.array([0, 0, 1, 1])

    def two(G):  # (M, 2) -> (M, 2) class scores
        p = 1 / (1 + np.exp(-(G[:, 0] - G[:, 1])))
        return np.column_stack([1 - p, p])

    plots.decision_boundary(two, X, labels, ["no", "yes"], "d.png", resolution=20,
                            axis_names=("height", "weight"))
    ax, bar = figures[0].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("height", "weight")
    assert bar.get_ylabel() == "probability of yes"


def test_a_fitted_curve_names_the_input_and_the_target(figures):
    x = np.linspace(0, 1, 5)[:, None]
    plots.fitted_curve(lambda G: 2 * G, x, 2 * x[:, 0], "f.png", axis_names=("hours", "price"))
    ax = figures[0].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("hours", "price")
