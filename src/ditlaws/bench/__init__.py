"""`ditlaws bench`: the training step's speed against diffusers' DiT and the CPU's matmul peak, in one process.

    ditlaws bench [--quick] [--out bench.json] [--threads N] [--only peaks,step,demo,eval,loader]
                  [--rounds R] [--models NAMES] [--sdpa default|math|flash]

Sections (each a table on stdout and a key of the JSON):
- peaks:  fp32 and bf16 matmul peaks (2048² torch.mm) of this machine, this run;
- step:   width 512, depth 8, 64 image tokens, batch 32, bf16 autocast: our two families and diffusers' DiT and
          PixArt at the same width/depth/tokens, with counted FLOPs (FlopCounterMode, MATH SDPA), the median step
          time (forward, backward, fused AdamW), samples/s, tokens/s, FLOP/s, % of the bf16 peak, ratio to DiT;
- demo:   the same table at each size of configs/sweeps/demo.yaml (its precision), then the bare
          forward/backward/AdamW loop of the demo model against the real `train()` loop on a short run;
- eval:   validation loss, VLB, exact NLL and FID-feature throughput at demo scale;
- loader: the training data stream's samples/s against what the demo step consumes.
Compare ratios from one run only: the CPUs of machines of one kind differ (AMX or not), and shared cores are noisy.
With `--rounds R` the step sections time the models in turns (R rounds of --repeats steps each), so a change of load
falls on all of them; every row also has the fastest step and the CPU seconds per step, with their ratios to DiT.
"""

from ditlaws.bench.cli import main

__all__ = ["main"]
