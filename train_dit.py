"""Train one DiT: `accelerate launch train_dit.py --config configs/train/demo.yaml [--section.key value ...]`.

Also runs as plain `python train_dit.py ...` (one process). Exit codes: 0 done, 2 bad config or input
(one line naming the key), 3 the loss became NaN / inf (the last good checkpoint is kept), 4 no space left on the
disk (or quota / file-size limit; what was written stays intact, free space and resume), 130 interrupted (Ctrl-C, or
SIGTERM: stops after the current step with a checkpoint of it).
"""

from __future__ import annotations

import argparse
import sys


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
    from ditlaws.errors import UserError, report, report_no_space

    config_path, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load_config(config_path, overrides)  # before the heavy imports: a bad config fails in a blink
    except UserError as err:
        return report(err)
    from ditlaws.publish import run_hooks
    from ditlaws.training import EXIT_INTERRUPTED, EXIT_NON_FINITE, NonFiniteLossError, train

    try:
        summary = train(cfg, **run_hooks(cfg))
    except UserError as err:
        return report(err)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NON_FINITE
    except KeyboardInterrupt as err:
        from ditlaws.training.messages import interrupted

        print(interrupted(cfg, str(err)), file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        return report_no_space(err, cfg.train.output_dir, "what was written before is intact: free space and rerun "
                               "with --train.resume latest")
    from accelerate import PartialState

    if PartialState().is_main_process:
        from ditlaws.training.messages import finished

        print(finished(cfg, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
