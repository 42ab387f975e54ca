"""SIGTERM (how Slurm preempts a job and `docker stop` / `kill` end one) as a graceful stop.

While a run trains, SIGTERM only sets a flag; the loop sees it at the end of the current step, writes a checkpoint
of that step and stops with `TrainingInterrupted` (exit code 130, as Ctrl-C), so `--train.resume latest` continues
bit-identically. A second SIGTERM stops at once. Under several processes the flag is or-ed across them every step,
so all of them stop at the same step (the checkpoint is a collective). Outside the main thread (where Python
cannot install handlers) nothing changes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ditlaws.training.faults import TrainingInterrupted


class StopRequest:
    def __init__(self):
        self.signal: str | None = None

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal is not None:  # the second one: stop now
            raise TrainingInterrupted(f"{name} received twice; stopped without a checkpoint of this step")
        self.signal = name

    def requested(self, accelerator=None) -> bool:
        """Whether a stop was asked for, on any process (one scalar all-reduce when there are several)."""
        if accelerator is None or accelerator.num_processes == 1:
            return self.signal is not None
        import torch

        flag = torch.tensor([1.0 if self.signal else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


@contextmanager
def graceful_sigterm() -> Iterator[StopRequest]:
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.signal(signal.SIGTERM, request._handle)
    try:
        yield request
    finally:
        signal.signal(signal.SIGTERM, previous)
