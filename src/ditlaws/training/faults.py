"""Fault injection for tests and fault drills: the one seam through which they reach into training.

Set `DITLAWS_FAULT` to a comma list of `<kind>:<step>` (steps are 1-based optimizer updates):
  nan:k          the loss of update k becomes NaN -> the run stops with exit code 3, its last good checkpoint kept
  stop:k         raise TrainingInterrupted after update k (and its checkpoint, if one is due), as a Ctrl-C would
  kill_save:k    kill the process (os._exit, like kill -9) halfway through writing the checkpoint of update k
  kill_model:k   kill the process halfway through saving the final model (k = the run's last update)
Nothing here runs unless the variable is set. (DITLAWS_INJECT_NAN_AT_STEP / DITLAWS_STOP_AFTER_STEP, the older
names of nan / stop, are still read.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

KINDS = ("nan", "stop", "kill_save", "kill_model")


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by the `stop` fault, as if the run had been interrupted."""


@dataclass(frozen=True)
class Faults:
    at: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Faults:
        at = {}
        for item in filter(None, (os.environ.get("DITLAWS_FAULT") or "").split(",")):
            kind, _, step = item.partition(":")
            if kind not in KINDS or not step.isdigit():
                raise ValueError(f"DITLAWS_FAULT: {item!r}; use <kind>:<step> with kind one of {', '.join(KINDS)}")
            at[kind] = int(step)
        for kind, name in (("nan", "DITLAWS_INJECT_NAN_AT_STEP"), ("stop", "DITLAWS_STOP_AFTER_STEP")):
            if os.environ.get(name):
                at.setdefault(kind, int(os.environ[name]))
        return cls(at)

    def loss(self, loss, step: int):
        """The loss of update `step` (1-based), poisoned if a `nan` fault is due."""
        return loss + float("nan") if self.at.get("nan") == step else loss

    def after_step(self, step: int) -> None:
        if self.at.get("stop") == step:
            raise TrainingInterrupted(f"stopped after step {step} (DITLAWS_FAULT stop:{step})")

    def during_save(self, kind: str, step: int) -> None:
        """Called between the two halves of a save; dies there if a kill fault is due."""
        if self.at.get(kind) == step:
            os._exit(137)
