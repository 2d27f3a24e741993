"""The fit pictures MATLAB users read (``plotregression``, ``ploterrhist``, ``plotperform``):
their numbers against NumPy's own, what each picture shows, and which runs draw which."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import backprop as bp  # noqa: E402
from backprop import plots  # noqa: E402
from conftest import run_cli  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
OUR_MARK = b"tEXtSoftware\x00backprop "
FIT_PICTURES = ("regression.png", "error_histogram.png", "fit.png")


def noisy_fit(n=200, k=2, seed=0):
    """Outputs (n, k) that follow targets (n, k) with a slope, an offset and noise."""
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=(n, k)) * 3 + 1
    return 0.8 * targets + 0.5 + rng.normal(scale=0.7, size=(n, k)), targets


# -- the numbers -------------------------------------------------------------------------
def test_r_is_pearsons_over_every_output_pooled():
    outputs, targets = noisy_fit()
    r, _, _ = plots.regression_line(outputs, targets)
    assert r == pytest.approx(np.corrcoef(outputs.ravel(), targets.ravel())[0, 1], rel=1e-12)


def test_the_line_is_numpys_least_squares_fit_of_outputs_on_targets():
    outputs, targets = noisy_fit(k=3, seed=1)
    _, slope, intercept = plots.regression_line(outputs, targets)
    want_slope, want_intercept = np.polyfit(targets.ravel(), outputs.ravel(), 1)
    assert (slope, intercept) == pytest.approx((want_slope, want_intercept), rel=1e-10)


def test_constant_targets_give_no_r_and_no_line_rather_than_a_division_error(figures):
    r, slope, _ = plots.regression_line(np.arange(5.0), np.ones(5))
    assert np.isnan(r) and np.isnan(slope)
    plots.regression({"training": (np.arange(5.0), np.ones(5))}, "r.png")
    ax = figures[0].axes[0]
    assert ax.get_ylabel() == "output" and "fit" not in [line.get_label() for line in ax.get_lines()]


def test_the_histogram_has_20_shared_bins_counted_as_numpy_counts_them():
    rng = np.random.default_rng(2)
    errors = {"training": rng.normal(size=300), "validation": rng.normal(size=60) + 1,
              "test": rng.normal(size=(40, 2))}
    edges, counts = plots.error_bins(errors)
    pooled = np.concatenate([e.ravel() for e in errors.values()])
    want_counts, want_edges = np.histogram(pooled, bins=20)
    np.testing.assert_allclose(edges, want_edges, rtol=1e-12)
    for part, e in errors.items():
        np.testing.assert_array_equal(counts[part], np.histogram(e.ravel(), bins=want_edges)[0])
    np.testing.assert_array_equal(sum(counts.values()), want_counts)


def test_the_confusion_counts_are_scikit_learns_with_outputs_down_and_targets_across():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(7)
    targets = rng.integers(0, 4, size=300)
    predicted = np.where(rng.random(300) < 0.7, targets, rng.integers(0, 4, size=300))
    want = confusion_matrix(targets, predicted, labels=range(5)).T  # scikit-learn: true down
    np.testing.assert_array_equal(plots.confusion_counts(predicted, targets, 5), want)


# -- what each picture shows ----------------------------------------------------------------
def test_the_regression_picture_has_a_panel_per_part_and_all_with_r_fit_and_reference(figures):
    parts = {"training": noisy_fit(seed=3), "test": noisy_fit(n=50, seed=4)}
    plots.regression(parts, "r.png", "sine")
    axes = figures[0].axes
    assert [ax.get_title().split(":")[0] for ax in axes] == ["Training", "Test", "All"]
    r = np.corrcoef(*(np.ravel(a) for a in parts["test"]))[0, 1]
    assert axes[1].get_title() == f"Test: R = {r:.5f}"
    for ax in axes:
        assert ax.get_xlabel() == "target" and ax.get_ylabel().startswith("output ≈")
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["data", "output = target", "fit"]
        reference = next(line for line in ax.get_lines() if line.get_label() == "output = target")
        np.testing.assert_array_equal(reference.get_xdata(), reference.get_ydata())


def test_the_error_histogram_stacks_each_parts_counts(figures):
    parts = {"training": noisy_fit(seed=5), "validation": noisy_fit(n=40, seed=6)}
    plots.error_histogram(parts, "e.png")
    ax = figures[0].axes[0]
    _, counts = plots.error_bins({p: t - o for p, (o, t) in parts.items()})
    bars = [c for c in ax.containers]
    assert [b.get_label() for b in bars] == ["training", "validation"]
    tops = [rect.get_y() + rect.get_height() for rect in bars[-1]]
    np.testing.assert_array_equal(tops, counts["training"] + counts["validation"])
    assert "20 bins" in ax.get_title() and ax.get_xlabel() == "error = target − output"


def test_the_performance_curve_draws_each_part_and_circles_the_best_validation_epoch(figures):
    records = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e + (e - 3) ** 2 / 10} for e in range(1, 7)]
    plots.performance(records, "p.png", "sine", loss="mse", test_losses={e: 2 / e for e in range(1, 7)})
    ax = figures[0].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert {"training", "validation", "test", "best"} <= set(lines)
    np.testing.assert_allclose(lines["test"].get_ydata(), [2 / e for e in range(1, 7)])
    best = 3  # the lowest validation loss
    assert list(lines["best"].get_xdata()) == [best] and ax.get_yscale() == "log"
    assert ax.get_title() == f"sine: best validation loss {records[best - 1]['val_loss']:.4g} at epoch {best}"
    figures.clear()
    plots.performance(records, "p.png", best_epoch=5)  # the history's best epoch, as early stopping saw it
    marked = {line.get_label(): line for line in figures[0].axes[0].get_lines()}["best"]
    assert list(marked.get_xdata()) == [5]


def test_without_a_validation_part_the_curve_says_so(figures):
    plots.performance([{"epoch": e, "train_loss": 1 / e} for e in range(1, 4)], "p.png")
    ax = figures[0].axes[0]
    assert ax.get_title() == "loss per epoch (no validation part)"
    assert [line.get_label() for line in ax.get_lines()] == ["training"]


def test_each_confusion_panel_titles_its_share_correct(figures):
    parts = {"training": (np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])),
             "test": (np.array([0, 0]), np.array([0, 1]))}
    plots.confusion(parts, ["a", "b", "c"], "c.png", "iris")
    axes = figures[0].axes
    assert [ax.get_title() for ax in axes] == ["Training: 75.0% correct", "Test: 50.0% correct",
                                               "All: 66.7% correct"]
    assert axes[0].get_xlabel() == "target class" and axes[0].get_ylabel() == "output class"
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["a", "b", "c"]


# -- which runs draw which, and the files ---------------------------------------------------
def test_a_regression_run_draws_the_fit_pictures_marked_as_ours(tmp_path, capsys):
    code, _, err = run_cli(["train", "sine", "--epochs", "4", "--plot", tmp_path, "--quiet"], capsys)
    assert code == 0, err
    for name in plots.RUN_PICTURES.values():
        if name in ("decision_boundary.png", "confusion.png"):
            assert not (tmp_path / name).exists()
            continue
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and OUR_MARK in data[:1 << 14], name


def test_a_classifier_draws_performance_and_confusion_and_no_regression_pictures(tmp_path, capsys):
    code, _, err = run_cli(["train", "moons", "--epochs", "3", "--plot", tmp_path, "--quiet"], capsys)
    assert code == 0, err
    for name in ("performance.png", "confusion.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and OUR_MARK in data[:1 << 14], name
    assert not any((tmp_path / name).exists() for name in FIT_PICTURES)


def test_measuring_the_test_loss_for_the_picture_leaves_training_as_it_was(tmp_path):
    plain = bp.Run("sine", epochs=6).fit()
    run = bp.Run("sine", epochs=6, plot=str(tmp_path))
    plotted = run.fit()
    for key in ("train_loss", "val_loss", "test_loss", "best_epoch"):
        assert plotted[key] == plain[key], key
    # the per-epoch test loss is the summary's, in the same units, at the epoch whose weights were kept
    kept = plotted["best_epoch"] or plotted["epochs"]
    assert sorted(run.test_watch.losses) == list(range(1, 7))
    assert run.test_watch.losses[kept] == pytest.approx(plotted["test_loss"], rel=1e-12)


@pytest.mark.parametrize("name", ["performance.png", "regression.png", "error_histogram.png",
                                  "confusion.png"])
def test_a_users_file_in_the_way_is_refused_before_training_and_kept(tmp_path, capsys, name):
    (tmp_path / name).write_bytes(b"my own picture")
    code, _, err = run_cli(["train", "sine", "--epochs", "2", "--plot", tmp_path, "--quiet"], capsys)
    assert code == 2 and name in err
    assert (tmp_path / name).read_bytes() == b"my own picture"
    assert not (tmp_path / "curves.png").exists()


def test_a_later_run_replaces_its_own_fit_pictures(tmp_path, capsys):
    for _ in range(2):
        code, _, err = run_cli(["train", "sine", "--epochs", "2", "--plot", tmp_path, "--quiet"], capsys)
        assert code == 0, err
