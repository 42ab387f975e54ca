"""fig3 (loss and generation metrics of compute-optimal models) readable at its natural size: a grid of panels,
y ranges that follow the data, every label inside the figure."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fit_helpers import demo_fit  # noqa: E402

from ditlaws.laws.plots import _log_limits, loss_metrics_figure, loss_metrics_plot  # noqa: E402
from ditlaws.laws.predict import load_fit  # noqa: E402


@pytest.fixture(scope="module")
def fit():
    return load_fit(demo_fit(targets=(1e20, 1e23)))  # 1e23: 10^4x beyond the data, where the bands explode


def test_a_grid_of_panels_with_every_label_inside(fit):
    fig = loss_metrics_plot(fit)
    try:
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len(panels) == 1 + 1 + 4  # loss, FID, four accuracies
        w, h = fig.get_size_inches()
        assert w <= 3 * 5.0 + 1e-9 and h >= 2 * 3.9 - 1e-9  # three a row, not one long strip
        renderer = fig.canvas.get_renderer()
        frame = fig.bbox
        for ax in panels:
            box = ax.get_tightbbox(renderer)
            assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0
            assert box.y1 <= frame.y1 + 1, ax.get_title()
        boxes = [ax.get_tightbbox(renderer) for ax in panels]
        for i, a in enumerate(boxes):  # panels (with their tick labels and axis labels) do not overlap
            for b in boxes[i + 1:]:
                assert not a.overlaps(b) or min(a.x1, b.x1) - max(a.x0, b.x0) < 2 or min(a.y1, b.y1) - \
                    max(a.y0, b.y0) < 2
        loss = panels[0]
        points = np.asarray(fit.laws()["L_opt"]["fitted_on"]["value"])
        lo, hi = loss.get_ylim()
        assert lo > points.min() / 30 and hi < points.max() * 30  # the loss panel follows the data
    finally:
        plt.close(fig)


def test_log_limits_cap_intervals_a_decade_beyond_the_data():
    lo, hi = _log_limits([1.0, 2.0], [1e-8, 1e4])
    pad = (20 / 0.1) ** 0.04
    assert lo == pytest.approx(0.1 / pad) and hi == pytest.approx(20 * pad)
    lo, hi = _log_limits([1.0, 2.0], [0.9, 2.5])
    assert 0.8 < lo < 0.9 and 2.5 < hi < 2.8


def test_written_at_its_natural_size(fit, tmp_path):
    path = loss_metrics_figure(fit, tmp_path / "fig3.png")
    image = plt.imread(path)
    assert image.shape[1] <= 3 * 5.0 * 110 + 1 and image.shape[0] >= 2 * 3.9 * 110 - 1
