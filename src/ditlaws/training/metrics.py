"""Training metrics: the loss EMA, the tail mean, and the append-only metrics.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ditlaws.jsonio import write_text_atomic


class LossTracker:
    """Loss EMA (ema <- a·ema + (1 - a)·loss, starting at the first loss) and the mean over the last steps.

    The tail window is the last `max(1, round(0.1 * total))` steps; its state is a sum and a count, so it
    travels in a checkpoint as two numbers.
    """

    def __init__(self, alpha: float, total_steps: int, tail_frac: float = 0.1):
        self.alpha = alpha
        self.tail_start = total_steps - max(1, round(tail_frac * total_steps))
        self.ema: float | None = None
        self.last: float | None = None
        self.tail_sum = 0.0
        self.tail_count = 0

    def update(self, step: int, loss: float) -> None:
        """`step` is the 0-based index of the update that produced `loss`."""
        self.ema = loss if self.ema is None else self.alpha * self.ema + (1 - self.alpha) * loss
        self.last = loss
        if step >= self.tail_start:
            self.tail_sum += loss
            self.tail_count += 1

    @property
    def tail_mean(self) -> float | None:
        return self.tail_sum / self.tail_count if self.tail_count else None

    def state_dict(self) -> dict:
        return {"ema": self.ema, "last": self.last, "tail_sum": self.tail_sum, "tail_count": self.tail_count}

    def load_state_dict(self, state: dict) -> None:
        self.ema, self.last = state["ema"], state["last"]
        self.tail_sum, self.tail_count = state["tail_sum"], state["tail_count"]


class MetricsWriter:
    """One JSON object per line in `<output>/metrics.jsonl`, flushed as it goes (main process only).

    Appends can be cut short (a full disk, a kill) and a resume goes back to a checkpoint, so the log is repaired
    when a run resumes: every checkpoint carries its own copy of the log up to its step (`snapshot`), and resuming
    from it rewrites metrics.jsonl from that copy, atomically (a resume that fails, e.g. on a full disk, leaves the
    old file). Records after the checkpoint are dropped (they are logged again), a torn last line is dropped, and
    records lost from the live file are restored."""

    def __init__(self, path: str | Path, resume_step: int | None = None, enabled: bool = True,
                 checkpoint: str | Path | None = None):
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        if resume_step is None:
            write_text_atomic(self.path, "")
            return
        saved = Path(checkpoint) / LOG_COPY if checkpoint is not None else None
        if saved is not None and saved.is_file():
            text = saved.read_text(encoding="utf-8")
        elif self.path.exists():  # a checkpoint from before log copies: keep the live file's records up to it
            text = self.path.read_text(encoding="utf-8", errors="replace")
        else:
            text = ""
        write_text_atomic(self.path, records_up_to(text, resume_step))

    def write(self, record: dict) -> None:
        if self.enabled:
            try:
                with self.path.open("a") as f:
                    f.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
            except OSError as err:  # name the file (a failed flush says nothing about which)
                raise OSError(err.errno, err.strerror, str(self.path)) from err

    def snapshot(self, folder: str | Path, step: int) -> None:
        """Copy the log's complete records up to `step` into a checkpoint folder (what a resume restores)."""
        if self.enabled:
            text = self.path.read_text(encoding="utf-8", errors="replace") if self.path.exists() else ""
            write_text_atomic(Path(folder) / LOG_COPY, records_up_to(text, step))


LOG_COPY = "metrics.jsonl"  # the name of the log's copy inside a checkpoint folder


def records_up_to(text: str, step: int) -> str:
    """The complete, parseable lines of a metrics log whose step is <= `step` (a torn last line is dropped)."""
    lines = text.split("\n")
    complete = lines[:-1]  # the part after the last newline is a torn record (or empty)
    return "".join(line + "\n" for line in complete if _step_of(line) <= step)


def _step_of(line: str) -> float:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return math.inf
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else math.inf


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class PendingSteps:
    """Each update's loss and gradient norm, kept on the device until the next sync point.

    The step itself never waits for the device (no `.item()`): values are read back in one transfer when
    the loop logs, checkpoints or ends. A non-finite update is never applied (see `loop.skip_if_non_finite`),
    and the first one found at a sync point stops the run."""

    def __init__(self):
        self.steps: list[int] = []
        self.values: list = []

    def add(self, step: int, loss, grad_norm) -> None:
        import torch

        self.steps.append(step)
        self.values.append(torch.stack([loss.detach().float(), grad_norm.detach().float()]))

    def flush(self) -> list[tuple[int, float, float]]:
        """[(0-based step, loss, grad norm), ...] since the last flush (one device -> host transfer)."""
        import torch

        if not self.steps:
            return []
        values = torch.stack(self.values).cpu().tolist()
        out = [(s, v[0], v[1]) for s, v in zip(self.steps, values)]
        self.steps, self.values = [], []
        return out
