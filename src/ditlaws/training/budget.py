"""Compute budget -> number of optimizer steps, and the compute a run actually spends.

Conventions (docs/ARCHITECTURE.md): N = trainable DiT parameters, D = image tokens seen
(tokens_per_sample x samples), C = 6 N D. The closed-form count, 3 x forward FLOPs per sample x samples
(backward = 2 x forward), includes attention and text tokens and is recorded alongside.

A budget C gives steps = C / (6 N tokens_per_sample global_batch), rounded to the nearest integer and at
least 1; the achieved C (from the rounded steps) is what the run record holds, next to the nominal budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


def steps_for_budget(budget: float, n_params: int, tokens_per_sample: int, global_batch: int) -> int:
    """Optimizer steps that spend `budget` FLOPs at 6 N D: round to nearest, at least 1."""
    flops_per_step = 6 * n_params * tokens_per_sample * global_batch
    return max(1, round(budget / flops_per_step))


@dataclass(frozen=True)
class ComputePlan:
    """What a run will spend: the numbers that go into the run record."""

    budget: float | None  # nominal budget (the isoFLOP group); None when steps were given explicitly
    steps: int
    global_batch: int
    tokens_per_sample: int
    N: int
    N_non_embedding: int
    forward_flops_per_sample: int

    @property
    def samples(self) -> int:
        return self.steps * self.global_batch

    @property
    def D(self) -> int:
        return self.samples * self.tokens_per_sample

    @property
    def C(self) -> float:
        return 6.0 * self.N * self.D

    @property
    def C_closed_form(self) -> float:
        return 3.0 * self.forward_flops_per_sample * self.samples

    def flops_after(self, steps: int) -> tuple[float, float]:
        """(6 N D, closed form) FLOPs spent after `steps` optimizer steps."""
        samples = steps * self.global_batch
        return 6.0 * self.N * samples * self.tokens_per_sample, 3.0 * self.forward_flops_per_sample * samples

    def record(self) -> dict:
        out = asdict(self)
        out.pop("forward_flops_per_sample")
        out.update(D=self.D, C=self.C, C_closed_form=self.C_closed_form)
        return out


def plan_compute(
    *, budget: float | None, steps: int | None, global_batch: int, counts: dict, forward_flops: int, tokens: int
) -> ComputePlan:
    """Resolve the step count from a budget (or take explicit steps) for a model with the given counts."""
    if steps is None:
        steps = steps_for_budget(budget, counts["total"], tokens, global_batch)
    return ComputePlan(
        budget=budget,
        steps=steps,
        global_batch=global_batch,
        tokens_per_sample=tokens,
        N=counts["total"],
        N_non_embedding=counts["non_embedding"],
        forward_flops_per_sample=forward_flops,
    )
