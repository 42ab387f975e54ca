"""Learning rate as a pure function of the optimizer step, so a resumed run needs no scheduler state.

Step s counts from 0 (the first update). Shapes, each times an optional linear warmup over the first
`warmup_steps` updates (lr * (s + 1) / warmup_steps):

- constant: lr throughout (the paper's recipe for the scaling sweep);
- step:     the paper's decay for its validation run, 80 % of steps at lr, 10 % at lr / sqrt(10), 10 % at lr / 10;
- wsd:      warmup-stable-decay, lr until the last `cooldown_frac` of steps, then linearly down towards 0;
- cosine:   half a cosine from lr (after warmup) to 0 at the last step.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "wsd", "cosine")


def lr_at(step: int, total: int, lr: float, schedule: str, warmup_steps: int = 0, cooldown_frac: float = 0.2) -> float:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    frac = step / total
    if schedule == "constant":
        shape = 1.0
    elif schedule == "step":
        shape = 1.0 if frac < 0.8 else (10**-0.5 if frac < 0.9 else 0.1)
    elif schedule == "wsd":
        cooldown = max(1, round(cooldown_frac * total)) if cooldown_frac > 0 else 0
        start = total - cooldown
        shape = 1.0 if step < start else 1.0 - (step - start) / cooldown
    else:
        span = max(1, total - warmup_steps)
        progress = min(1.0, max(0.0, (step - warmup_steps) / span))
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * warm * shape
