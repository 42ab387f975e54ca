"""How one optimizer step's global batch is spread over processes and accumulation micro-steps.

Global batch G = micro_batch x processes x accumulation. Within a step, micro-step m of process r holds the
global rows [(m * processes + r) * micro_batch, ... + micro_batch): micro-step major, then rank, which is the
order the data loader deals samples in, so the per-row random draws (ditlaws.training.rng) follow the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

from ditlaws.errors import UserError


@dataclass(frozen=True)
class BatchLayout:
    global_batch: int
    micro_batch: int
    processes: int
    rank: int

    @classmethod
    def resolve(cls, global_batch: int, micro_batch: int | None, processes: int, rank: int) -> BatchLayout:
        if micro_batch is None:
            if global_batch % processes:
                raise UserError(f"train.global_batch ({global_batch}) must be divisible by the number of "
                                f"processes ({processes})")
            micro_batch = global_batch // processes
        if global_batch % (micro_batch * processes):
            raise UserError(f"train.global_batch ({global_batch}) must be a multiple of train.micro_batch "
                            f"({micro_batch}) x processes ({processes})")
        return cls(global_batch, micro_batch, processes, rank)

    @property
    def accumulation(self) -> int:
        return self.global_batch // (self.micro_batch * self.processes)

    def rows(self, micro_step: int) -> slice:
        start = (micro_step * self.processes + self.rank) * self.micro_batch
        return slice(start, start + self.micro_batch)
