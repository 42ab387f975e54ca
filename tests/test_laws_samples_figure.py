"""The samples-by-budget picture: one row per budget, each the first row of that budget's lowest-loss run's grid."""

import json

import numpy as np
import torch
from PIL import Image

from ditlaws.evaluation.samples import save_grid
from ditlaws.laws.samples_figure import LABEL_WIDTH, compute_optimal_runs, samples_by_budget


def _record(tmp_path, run_id, budget, loss, shade=None, n_images=12):
    record = {"run_id": run_id, "budget": budget, "N": 1000.0 * (1 + loss), "eval": {"val_loss": {"mean": loss}}}
    if shade is not None:
        folder = tmp_path / run_id
        images = torch.full((n_images, 3, 8, 8), shade)
        images[:, :, 0, 0] = torch.linspace(-1, 1, n_images)[:, None]  # every tile differs
        grid = save_grid(images, [f"caption {i}" for i in range(n_images)], folder / "samples_val.png", tile=32)
        (folder / "eval.json").write_text(json.dumps({"results": {"val": {"samples": {"grid": str(grid)}}}}))
        record["eval"].update(fid=12.5, accuracy_colour=0.75,
                              generation={"eval_json": str(folder / "eval.json")})
    return record


def test_rows_are_the_lowest_loss_run_of_each_budget(tmp_path):
    records = [_record(tmp_path, "a1", 1e11, 0.30), _record(tmp_path, "a2", 1e11, 0.20, shade=-0.5),
               _record(tmp_path, "b1", 2e11, 0.15, shade=0.5), _record(tmp_path, "b2", 2e11, 0.18, shade=0.9)]
    assert [r["run_id"] for r in compute_optimal_runs(records)] == ["a2", "b1"]
    path = samples_by_budget(records, tmp_path / "fig.png", columns=8)
    figure = np.asarray(Image.open(path).convert("RGB"))
    grid = np.asarray(Image.open(tmp_path / "a2" / "samples_val.png").convert("RGB"))
    row_height = grid.shape[0] // 2  # 12 images in rows of 8
    assert figure.shape == (2 * row_height, LABEL_WIDTH + 8 * 32, 3)
    # the first strip is a2's first grid row, pixel for pixel (below the row's separator line)
    assert np.array_equal(figure[1:row_height, LABEL_WIDTH:], grid[1:row_height])
    second = np.asarray(Image.open(tmp_path / "b1" / "samples_val.png").convert("RGB"))
    assert np.array_equal(figure[row_height + 1:, LABEL_WIDTH:], second[1:row_height])


def test_no_figure_without_two_budgets_of_samples(tmp_path):
    records = [_record(tmp_path, "a1", 1e11, 0.2, shade=0.0), _record(tmp_path, "b1", 2e11, 0.1)]
    assert samples_by_budget(records, tmp_path / "fig.png") is None
    assert not (tmp_path / "fig.png").exists()
