"""Training: one DiT run under Accelerate (see `loop.train`) and the pieces it is made of.

The names below load on first access, so the sweep planner (`plan_run`, `steps_for_budget`) imports without torch,
diffusers or accelerate (seconds per process).
"""

from ditlaws.lazy import lazy_getattr

EXIT_OK, EXIT_USER_ERROR, EXIT_NON_FINITE, EXIT_NO_SPACE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

_LAZY_EXPORTS = {
    "ComputePlan": "ditlaws.training.budget",
    "plan_compute": "ditlaws.training.budget",
    "steps_for_budget": "ditlaws.training.budget",
    "TrainingInterrupted": "ditlaws.training.faults",
    "NonFiniteLossError": "ditlaws.training.loop",
    "train": "ditlaws.training.loop",
    "RunPlan": "ditlaws.training.plan",
    "plan_run": "ditlaws.training.plan",
    "SCHEDULES": "ditlaws.training.schedule",
    "lr_at": "ditlaws.training.schedule",
}

__getattr__ = lazy_getattr(__name__, _LAZY_EXPORTS)

__all__ = ["EXIT_INTERRUPTED", "EXIT_NON_FINITE", "EXIT_NO_SPACE", "EXIT_OK", "EXIT_USER_ERROR", *_LAZY_EXPORTS]
