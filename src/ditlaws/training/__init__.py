"""Training: one DiT run under Accelerate (see `loop.train`) and the pieces it is made of."""

from ditlaws.training.budget import ComputePlan, plan_compute, steps_for_budget
from ditlaws.training.faults import TrainingInterrupted
from ditlaws.training.loop import NonFiniteLossError, train
from ditlaws.training.plan import RunPlan, plan_run
from ditlaws.training.schedule import SCHEDULES, lr_at

EXIT_OK, EXIT_USER_ERROR, EXIT_NON_FINITE, EXIT_NO_SPACE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

__all__ = ["EXIT_INTERRUPTED", "EXIT_NON_FINITE", "EXIT_NO_SPACE", "EXIT_OK", "EXIT_USER_ERROR", "SCHEDULES",
           "ComputePlan", "NonFiniteLossError", "RunPlan", "TrainingInterrupted", "lr_at", "plan_compute",
           "plan_run", "steps_for_budget", "train"]
