"""Evaluate one DiT checkpoint: validation loss, VLB, exact NLL, FID, accuracy, CLIP score, sample grids -> eval.json.

    python evaluate_dit.py --checkpoint outputs/run --metrics loss,vlb,nll,fid,samples [--splits val,ood]
    python evaluate_dit.py --checkpoint outputs/run --metrics fid,accuracy,samples   # one generation, three metrics
    python evaluate_dit.py --checkpoint user/ditlaws-run --data builtin32 --data.val_size 512 --out eval.json
    python evaluate_dit.py --checkpoint outputs/run --store outputs/store   # also merge the metrics into the store

Every flag below is a field of ditlaws.config.EvalConfig (the sweep's `eval:` section has the same keys), plus
where to read and write; `--data.<key> <value>` overrides the data config. Exit codes: 0 done, 2 bad input (one
line naming the flag or file, before anything is computed).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from ditlaws.options import option


@dataclass
class Target:
    """What to evaluate and where the results go (the measurement itself is an EvalConfig)."""

    checkpoint: str = option(help="run folder, diffusers model folder, or Hub repo id")
    data: str | None = option(None, help="data config YAML or name in configs/data/ (default: the run's config.yaml)")
    out: str | None = option(None, help="where to write eval.json (default: next to the run)")
    store: str | None = option(None, help="run store (a folder, or hub://<org>/<study>): merge the summary into "
                                          "runs/<study>/<run_id>.json")
    fid_stats_dir: str | None = option(None, help="cache of FID reference statistics (default: $DITLAWS_CACHE)")


def parse_args(argv):
    from ditlaws.config import EvalConfig
    from ditlaws.options import ArgumentParser, add_arguments, from_arguments

    parser = ArgumentParser(prog="evaluate_dit.py", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, Target, group_title="what and where")
    add_arguments(parser, EvalConfig, group_title="evaluation (ditlaws.config.EvalConfig)")
    args, overrides = parser.parse_known_args(argv)
    return from_arguments(Target, args, section="eval"), from_arguments(EvalConfig, args, section="eval"), overrides


def main(argv=None) -> int:
    from ditlaws.errors import UserError, report, report_no_space

    try:
        target, cfg, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        from ditlaws.evaluation.loading import resolve_checkpoint
        from ditlaws.evaluation.runner import check_store_target, evaluate_checkpoint, run_record_for_store, store_eval

        record = None
        if target.store:
            from pathlib import Path

            if Path(target.store).exists() and not Path(target.store).is_dir():
                raise UserError(f"--store {target.store}: is a file, not a run store folder")
            if not target.store.startswith("hub://"):
                from ditlaws.paths import check_writable

                check_writable(Path(target.store), "--store", folder=True)  # the record is merged after evaluating
            from ditlaws.store import open_store

            try:
                store = open_store(target.store)  # a malformed hub:// spec fails here, before any evaluation
            except UserError as err:
                raise UserError(f"--store {err}") from None
            record = run_record_for_store(resolve_checkpoint(target.checkpoint)[1])
            check_store_target(store, record)  # a bad id or a damaged record is refused before computing
            if getattr(store, "org", None) and store.study != record["study"]:
                raise UserError(f"--store {target.store}: the run belongs to study {record['study']!r}, not "
                                f"{store.study!r}")
        report, path = evaluate_checkpoint(target.checkpoint, target.data, cfg, out=target.out,
                                           data_overrides=overrides, stats_dir=target.fid_stats_dir)
        if record is not None:
            print(f"store: {store_eval(target.store, record, report['summary'])}")
    except UserError as err:
        return report(err)
    except OSError as err:
        return report_no_space(err, "the results", "files written before are intact: free space and run again")
    print(json.dumps(report["summary"], indent=2, allow_nan=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
