"""A trunk's branch starts from the trunk's checkpoint at its branch point (`train(..., start_from=...)`).

The trunk job that runs a trunk to each branch point and its branches from there (`train(..., stop_at=p)`, then
`train(..., start_from=<trunk>/checkpoints/step_p)`) is `ditlaws.sweep.trunk_job`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ditlaws.errors import UserError
from ditlaws.training import checkpoint as ckpt


def load_branch_point(accelerator, losses, folder: Path, output: Path) -> int:
    """Load a trunk's checkpoint as a branch's start (model, optimizer, RNG, loss EMA); returns its step.

    The trunk's tail sum is dropped: the branch's last-10 % window starts after the branch point (a cooldown of
    at least 10 %), as it does in the independent run. The trunk's metrics up to the step become the branch's."""
    state = ckpt.read_state(folder)
    step = state["step"]
    if losses.tail_start < step:
        raise UserError(f"{output}: branch point {step} lies inside the run's last-10 % loss window (from step "
                        f"{losses.tail_start}); use train.cooldown_frac >= 0.1")
    accelerator.load_state(str(folder))
    losses.load_state_dict({**state["losses"], "tail_sum": 0.0, "tail_count": 0})
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        trunk_metrics = folder.parents[1] / "metrics.jsonl"
        lines = trunk_metrics.read_text().splitlines() if trunk_metrics.is_file() else []
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", step + 1) <= step]
        (output / "metrics.jsonl").write_text("".join(line + "\n" for line in kept))
    return step
