"""torch.profiler over demo-scale training steps: the bare model step and the real `train()` loop.

    python benchmarks/profile_step.py [--width 32] [--steps 20] [--loop] [--rows 25]
    python benchmarks/profile_step.py --arch "ditlaws in_context" --steps 3   # the bench's w512 d8 bf16 step

Prints the operators by self CPU time (what docs/performance.md's profiler findings come from).
"""

import argparse
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/sweeps/demo.yaml")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--loop", action="store_true", help="profile train() instead of the bare step")
    parser.add_argument("--sort", default="self_cpu_time_total")
    parser.add_argument("--arch", help="profile `ditlaws bench`'s headline step of this architecture instead "
                                       "(e.g. 'diffusers DiT', 'ditlaws in_context')")
    args = parser.parse_args()
    if args.arch:
        from ditlaws.bench.cli import HEADLINE
        from ditlaws.bench.step import prepare

        _, step = prepare(args.arch, HEADLINE, "bf16")
        step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        print(prof.key_averages().table(sort_by=args.sort, row_limit=args.rows))
        return
    from ditlaws.bench.demo import _loss, demo_runs, real_batch
    from ditlaws.bench.step import make_optimizer, train_step
    from ditlaws.training.plan import plan_run

    cfg = next(c for c in demo_runs(args.config, quick=False) if c.model.width == args.width)
    if args.loop:
        from ditlaws.training import train

        with tempfile.TemporaryDirectory() as out:
            t = cfg.train
            t.budget, t.steps, t.output_dir, t.resume, t.log_every = None, args.steps, out, None, 10
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                train(cfg)
    else:
        plan = plan_run(cfg)
        torch.manual_seed(0)
        model = plan.build_model().train()
        step = train_step(model, _loss, real_batch(cfg), make_optimizer(model), cfg.train.mixed_precision)
        for _ in range(3):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
    print(prof.key_averages().table(sort_by=args.sort, row_limit=args.rows))


if __name__ == "__main__":
    main()
