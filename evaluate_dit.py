"""Evaluate one DiT checkpoint: validation loss, VLB, exact NLL, FID, sample grids -> eval.json.

    python evaluate_dit.py --checkpoint outputs/run --metrics loss,vlb,nll,fid,samples [--splits val,ood]
    python evaluate_dit.py --checkpoint user/ditlaws-run --data builtin32 --data.val_size 512 --out eval.json
    python evaluate_dit.py --checkpoint outputs/run --store outputs/store   # also merge the metrics into the store
"""

from __future__ import annotations

import argparse
import json
import sys

from ditlaws.errors import UserError
from ditlaws.evaluation.loading import resolve_checkpoint
from ditlaws.evaluation.runner import METRICS, EvalOptions, evaluate_checkpoint, run_record_for_store, store_eval


def parse_args(argv=None):
    defaults = EvalOptions()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="run folder, diffusers model folder, or Hub repo id")
    p.add_argument("--data", help="data config YAML or name in configs/data/ (default: the run's config.yaml)")
    p.add_argument("--metrics", default=",".join(METRICS), help=f"comma list of {', '.join(METRICS)}")
    p.add_argument("--splits", default="val", help="comma list of val, ood")
    p.add_argument("--out", help="where to write eval.json (default: next to the run)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--max-samples", type=int, default=None, help="validation samples for loss / VLB (default all)")
    p.add_argument("--loss-timesteps", type=int, default=defaults.loss_timesteps, help="t per sample (paper: 1000)")
    p.add_argument("--vlb-timesteps", type=int, default=defaults.vlb_timesteps)
    p.add_argument("--vlb-proposal", default=defaults.vlb_proposal, help="logsnr_uniform, logit_normal or uniform")
    p.add_argument("--nll-samples", type=int, default=defaults.nll_samples)
    p.add_argument("--nll-method", default=defaults.nll_method, help="euler or rk45")
    p.add_argument("--nll-steps", type=int, default=defaults.nll_steps)
    p.add_argument("--nll-divergence", default=defaults.nll_divergence, help="hutchinson or exact")
    p.add_argument("--nll-probes", type=int, default=defaults.nll_probes)
    p.add_argument("--fid-samples", type=int, default=defaults.fid_samples)
    p.add_argument("--fid-features", default=defaults.fid_features, help="builtin-cnn or clip-vit-l-14")
    p.add_argument("--fid-weights", help="weights for the FID feature extractor (file)")
    p.add_argument("--fid-stats-dir", help="cache of reference feature statistics (default ~/.cache/ditlaws)")
    p.add_argument("--sample-steps", type=int, default=defaults.sample_steps)
    p.add_argument("--guidance-scale", type=float, default=defaults.guidance_scale)
    p.add_argument("--grid-samples", type=int, default=defaults.grid_samples)
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--store", help="run store folder: merge the summary into runs/<study>/<run_id>.json as 'eval'")
    return p.parse_known_args(argv)


def main(argv=None) -> int:
    args, overrides = parse_args(argv)
    try:
        options = EvalOptions(
            metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()),
            splits=tuple(s.strip() for s in args.splits.split(",") if s.strip()),
            seed=args.seed, batch_size=args.batch_size, max_samples=args.max_samples,
            loss_timesteps=args.loss_timesteps, vlb_timesteps=args.vlb_timesteps, vlb_proposal=args.vlb_proposal,
            nll_samples=args.nll_samples, nll_method=args.nll_method, nll_steps=args.nll_steps,
            nll_divergence=args.nll_divergence, nll_probes=args.nll_probes, fid_samples=args.fid_samples,
            fid_features=args.fid_features, fid_weights=args.fid_weights, sample_steps=args.sample_steps,
            guidance_scale=args.guidance_scale, grid_samples=args.grid_samples, device=args.device,
        )
        record = run_record_for_store(resolve_checkpoint(args.checkpoint)[1]) if args.store else None
        report, path = evaluate_checkpoint(args.checkpoint, args.data, options, out=args.out,
                                           data_overrides=overrides, stats_dir=args.fid_stats_dir)
        if record is not None:
            print(f"store: {store_eval(args.store, record, report['summary'])}")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
