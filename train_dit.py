"""Train one DiT: `accelerate launch train_dit.py --config configs/train/demo.yaml [--section.key value ...]`.

Also runs as plain `python train_dit.py ...` (one process). Exit codes: 0 done, 2 bad config or input
(one line naming the key), 3 the loss became NaN / inf (the last good checkpoint is kept), 4 no space left on the
disk (or quota / file-size limit; what was written stays intact, free space and resume), 130 interrupted (Ctrl-C, or
SIGTERM: stops after the current step with a checkpoint of it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str]) -> tuple[str | None, list[str]]:
    from ditlaws.config import RUN_SECTIONS
    from ditlaws.options import ArgumentParser, section_help

    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="Any config key can be overridden (--train.budget 1e15 --model.depth 6):\n\n"
                                   + section_help(RUN_SECTIONS))
    parser.add_argument("--config", help="YAML run config with sections model / data / train")
    args, overrides = parser.parse_known_args(argv)
    return args.config, overrides


def main(argv: list[str] | None = None) -> int:
    from ditlaws.config import load_config
    from ditlaws.errors import UserError

    config_path, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load_config(config_path, overrides)  # before the heavy imports: a bad config fails in a blink
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from ditlaws import training

    train = training.train

    try:
        summary = train(cfg)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return training.EXIT_USER_ERROR
    except training.NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return training.EXIT_NON_FINITE
    except KeyboardInterrupt as err:
        from ditlaws.training.loop import latest_checkpoint_name

        print(f"interrupted: {str(err) or 'keyboard interrupt'}; last checkpoint: "
              f"{latest_checkpoint_name(Path(cfg.train.output_dir))}; resume with --train.resume latest",
              file=sys.stderr)
        return training.EXIT_INTERRUPTED
    except OSError as err:
        from ditlaws.jsonio import no_space

        if not no_space(err):
            raise
        print(f"error: no space left ({err.strerror}) writing {err.filename or cfg.train.output_dir}; what was "
              "written before is intact: free space and rerun with --train.resume latest", file=sys.stderr)
        return training.EXIT_NO_SPACE
    from accelerate import PartialState

    if PartialState().is_main_process:
        out = cfg.train.output_dir
        print(f"done: {summary['steps']} steps, final loss EMA {summary['final_loss_ema']:.4f}, "
              f"C = {summary['C']:.3g} FLOPs (6ND), N = {summary['N']:,}, D = {summary['D']:,} image tokens")
        print(f"outputs in {out}/: model/ (diffusers format), summary.json, metrics.jsonl, config.yaml, checkpoints/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
