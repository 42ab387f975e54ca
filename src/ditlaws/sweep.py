"""isoFLOP sweeps: a sweep config -> a plan of runs (budgets x sizes x seeds) -> an idempotent local runner.

    python -m ditlaws.sweep --config configs/sweeps/demo.yaml [--out DIR] [--dry-run]

Each (budget, size, seed) becomes one run of `ditlaws.training.train` whose step count comes from the budget
(`ditlaws.training.budget`, C = 6 N D). After training, the run's validation loss is measured on the fixed
validation split (`ditlaws.evaluation.validation_loss`) and the merged record (training summary + eval.val_loss)
goes into the run store as `runs/<study>/<run_id>.json`, which is what fit_laws.py reads.

Sweep YAML (configs/sweeps/): `study`; `base_config` (a run config file; its per-run keys are ignored) and/or
`base` (sections model / data / train, applied on top); `budgets` (FLOPs); `sizes` (list of {depth, width, heads})
or `depths` (width 64·depth, heads = depth); `seeds` [0]; `min_steps` 50 (runs with fewer steps are listed but
not run); `eval` {max_samples 256, timesteps_per_sample 16, batch_size 64, seed 0}; `out` (run folders in
<out>/runs/<run_id>, store in <out>/store); `store` (another store folder); `keep_models` true (copy each model
into <store>/models/<run_id>).

Running a sweep again trains nothing that is already in the store with the same configuration; a run that was
interrupted resumes from its latest checkpoint. Job files for cluster schedulers are not generated yet: on a
cluster, `--dry-run` lists the runs and each can be launched with train_dit.py + evaluate_dit.py.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ditlaws.config import RunConfig, config_from_dict, read_yaml
from ditlaws.errors import UserError

SWEEP_KEYS = ("study", "base_config", "base", "budgets", "sizes", "depths", "seeds", "min_steps", "eval", "out",
              "store", "keep_models")
SIZE_KEYS = ("depth", "width", "heads")
EVAL_KEYS = ("max_samples", "timesteps_per_sample", "batch_size", "seed")
_PER_RUN = ("steps", "budget", "run_id", "study", "output_dir", "resume", "seed")
# Run settings that change how a run is logged or where it lives, not what it computes.
_NOT_IDENTITY = {"train": ("output_dir", "resume", "log_every", "checkpoint_every", "keep_checkpoints", "trackers",
                           "peak_flops", "cpu"), "data": ("num_workers",)}


@dataclass(frozen=True)
class EvalSettings:
    """Validation loss for the fit: stratified t, K timesteps per validation sample (see validation_loss)."""

    max_samples: int = 256
    timesteps_per_sample: int = 16
    batch_size: int = 64
    seed: int = 0


@dataclass
class Sweep:
    study: str
    base: dict[str, Any]  # a run config as a mapping (sections model / data / train)
    budgets: list[float]
    sizes: list[dict[str, int]]
    seeds: list[int] = field(default_factory=lambda: [0])
    min_steps: int = 50
    eval: EvalSettings = field(default_factory=EvalSettings)
    out: str = "outputs/sweeps/default"
    store: str | None = None  # default <out>/store
    keep_models: bool = True  # copy each trained model into <store>/models/<run_id>

    @property
    def store_dir(self) -> Path:
        return Path(self.store) if self.store else Path(self.out) / "store"

    @property
    def runs_dir(self) -> Path:
        return Path(self.out) / "runs"


@dataclass
class PlannedRun:
    run_id: str
    budget: float
    size: dict[str, int]
    seed: int
    N: int
    N_non_embedding: int
    tokens_per_sample: int
    steps: int
    D: int
    C: float
    config: RunConfig
    skip_reason: str | None = None  # why the run is left out of the sweep (None: it runs)


# ---------------------------------------------------------------------------------------------------------------
# Reading and validating a sweep config


def load_sweep(path: str | Path, out: str | None = None) -> Sweep:
    """Read and validate a sweep YAML; `out` overrides its `out` folder (and the store inside it)."""
    raw = read_yaml(path)
    return sweep_from_dict(raw, source=str(path), root=Path(path).parent, out=out)


def sweep_from_dict(raw: dict, source: str = "sweep", root: Path | None = None, out: str | None = None) -> Sweep:
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise UserError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(SWEEP_KEYS)}")
    study = raw.get("study")
    if not isinstance(study, str) or not study:
        raise UserError(f"{source}: study must be a name (letters, digits, '.', '_', '-'), got {study!r}")
    from ditlaws.store import check_name

    check_name("study", study)
    base = _base_config(raw, source, root)
    budgets = _number_list(raw.get("budgets"), "budgets", source, positive=True)
    sizes = _sizes(raw, source)
    seeds = [int(s) for s in _number_list(raw.get("seeds", [0]), "seeds", source, integer=True)]
    if len(set(seeds)) < len(seeds):
        raise UserError(f"{source}: seeds must not repeat, got {seeds}")
    min_steps = raw.get("min_steps", 50)
    if not isinstance(min_steps, int) or isinstance(min_steps, bool) or min_steps < 1:
        raise UserError(f"{source}: min_steps must be a positive integer, got {min_steps!r}")
    keep_models = raw.get("keep_models", True)
    if not isinstance(keep_models, bool):
        raise UserError(f"{source}: keep_models must be true or false, got {keep_models!r}")
    sweep = Sweep(study=study, base=base, budgets=budgets, sizes=sizes, seeds=seeds, min_steps=min_steps,
                  eval=_eval_settings(raw.get("eval"), source), keep_models=keep_models,
                  out=str(out or raw.get("out") or f"outputs/sweeps/{study}"),
                  store=None if out else _optional_str(raw.get("store"), "store", source))
    # Validate the base once with a placeholder budget, so a bad base key fails before any planning.
    run_config(sweep, sweep.budgets[0], sweep.sizes[0], sweep.seeds[0], source=source)
    return sweep


def _base_config(raw: dict, source: str, root: Path | None) -> dict:
    base: dict = {}
    if raw.get("base_config") is not None:
        name = raw["base_config"]
        if not isinstance(name, str):
            raise UserError(f"{source}: base_config must be a path to a run config YAML, got {name!r}")
        path = Path(name)
        if not path.is_file() and root is not None and (root / name).is_file():
            path = root / name
        if not path.is_file():
            raise UserError(f"{source}: base_config {name}: file not found")
        base = read_yaml(path)
        train = base.get("train") or {}
        for key in _PER_RUN:  # a run config names one run; the sweep sets these for each of its runs
            train.pop(key, None)
    inline = raw.get("base") or {}
    if not isinstance(inline, dict):
        raise UserError(f"{source}: base must be a mapping with sections model / data / train")
    for section, values in inline.items():
        if not isinstance(values, dict):
            raise UserError(f"{source}: base.{section} must be a mapping of keys")
        base.setdefault(section, {})
        base[section] = {**(base[section] or {}), **values}
    for key in _PER_RUN:
        if (inline.get("train") or {}).get(key) is not None:
            raise UserError(f"{source}: base.train.{key} is set by the sweep for each run; remove it")
    return base


def _number_list(value, key: str, source: str, positive: bool = False, integer: bool = False) -> list:
    if not isinstance(value, list) or not value:
        raise UserError(f"{source}: {key} must be a non-empty list, got {value!r}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, str):  # YAML reads 1e17 (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                pass
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok and integer:
            ok = float(v).is_integer()
        if ok and positive:
            ok = v > 0 and v != float("inf")
        if not ok:
            kind = "an integer" if integer else "a positive number" if positive else "a number"
            raise UserError(f"{source}: {key}[{i}] must be {kind}, got {v!r}")
        out.append(int(v) if integer else float(v))
    if len(set(out)) < len(out):
        raise UserError(f"{source}: {key} must not repeat, got {value}")
    return out


def _sizes(raw: dict, source: str) -> list[dict[str, int]]:
    if ("sizes" in raw) == ("depths" in raw):
        raise UserError(f"{source}: set exactly one of sizes (a list of {{depth, width, heads}}) or depths "
                        "(width 64·depth, heads = depth)")
    if "depths" in raw:
        from ditlaws.models import preset

        depths = _number_list(raw["depths"], "depths", source, positive=True, integer=True)
        return [preset(d) for d in depths]
    sizes = raw["sizes"]
    if not isinstance(sizes, list) or not sizes:
        raise UserError(f"{source}: sizes must be a non-empty list of {{depth, width, heads}}, got {sizes!r}")
    out = []
    for i, size in enumerate(sizes):
        if not isinstance(size, dict):
            raise UserError(f"{source}: sizes[{i}] must be a mapping like {{depth: 2, width: 64, heads: 2}}")
        bad = sorted(set(size) - set(SIZE_KEYS))
        if bad:
            raise UserError(f"{source}: sizes[{i}].{bad[0]}: unknown key; valid keys: {', '.join(SIZE_KEYS)}")
        if "depth" not in size:
            raise UserError(f"{source}: sizes[{i}].depth is required")
        for key, value in size.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"{source}: sizes[{i}].{key} must be a positive integer, got {value!r}")
        out.append(dict(size))
    keys = [json.dumps(s, sort_keys=True) for s in out]
    if len(set(keys)) < len(keys):
        raise UserError(f"{source}: sizes must not repeat")
    return out


def _eval_settings(value, source: str) -> EvalSettings:
    if value is None:
        return EvalSettings()
    if not isinstance(value, dict):
        raise UserError(f"{source}: eval must be a mapping with keys {', '.join(EVAL_KEYS)}")
    bad = sorted(set(value) - set(EVAL_KEYS))
    if bad:
        raise UserError(f"{source}: eval.{bad[0]}: unknown key; valid keys: {', '.join(EVAL_KEYS)}")
    for key, v in value.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if key == "seed" else 1):
            raise UserError(f"{source}: eval.{key} must be a positive integer, got {v!r}")
    return EvalSettings(**value)


def _optional_str(value, key: str, source: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UserError(f"{source}: {key} must be a path, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------------------------
# Planning


def run_config(sweep: Sweep, budget: float, size: dict, seed: int, source: str = "sweep") -> RunConfig:
    """The full run config of one (budget, size, seed): the base with the size, budget, seed and study set."""
    from ditlaws.training.record import default_run_id

    raw = copy.deepcopy(sweep.base)
    model = {k: v for k, v in (raw.get("model") or {}).items() if k not in SIZE_KEYS}
    raw["model"] = {**model, **size}
    raw["train"] = {**(raw.get("train") or {}), "budget": budget, "seed": seed, "study": sweep.study}
    try:
        cfg = config_from_dict(raw, source=f"{source}: base")
    except UserError as err:
        raise UserError(f"{source}: {err}" if not str(err).startswith(source) else str(err)) from None
    cfg.train.run_id = default_run_id(cfg)
    cfg.train.output_dir = str(sweep.runs_dir / cfg.train.run_id)
    return cfg


def model_geometry(data_cfg) -> dict:
    """The DiT's input geometry for a data config: read off the config for pixels + the built-in text encoder,
    else off the first encoded training sample (as training does)."""
    if data_cfg.image_encoder == "identity" and data_cfg.text_encoder == "builtin":
        return {"sample_size": data_cfg.resolution, "in_channels": 3, "text_len": data_cfg.text_len,
                "text_dim": data_cfg.text_dim}
    from ditlaws.training.data import open_train_data
    from ditlaws.training.layout import BatchLayout

    return open_train_data(data_cfg, BatchLayout(1, 1, 1, 0)).geometry


def plan(sweep: Sweep) -> list[PlannedRun]:
    """Every (budget, size, seed) run with its N, steps, D and C; runs with too few steps are flagged, not run."""
    import torch

    from ditlaws.models import build_model
    from ditlaws.training.budget import plan_compute

    geometry = model_geometry(run_config(sweep, sweep.budgets[0], sweep.sizes[0], sweep.seeds[0]).data)
    runs = []
    for budget in sweep.budgets:
        for size in sweep.sizes:
            for seed in sweep.seeds:
                cfg = run_config(sweep, budget, size, seed)
                m = cfg.model
                with torch.device("meta"):  # counts and closed forms only: no memory, no init time
                    model = build_model(m.family, patch_size=m.patch_size, depth=m.depth, width=m.width,
                                        heads=m.heads, mlp_ratio=m.mlp_ratio, **geometry)
                compute = plan_compute(budget=budget, steps=None, global_batch=cfg.train.global_batch,
                                       counts=model.parameter_counts(), forward_flops=model.flops_per_sample(),
                                       tokens=model.tokens_per_sample)
                reason = None
                if compute.steps < sweep.min_steps:
                    reason = f"{compute.steps} steps < min_steps {sweep.min_steps}"
                elif cfg.train.warmup_steps >= compute.steps:
                    reason = f"{compute.steps} steps <= warmup_steps {cfg.train.warmup_steps}"
                runs.append(PlannedRun(run_id=cfg.train.run_id, budget=budget, size=dict(size), seed=seed,
                                       N=compute.N, N_non_embedding=compute.N_non_embedding,
                                       tokens_per_sample=compute.tokens_per_sample, steps=compute.steps,
                                       D=compute.D, C=compute.C, config=cfg, skip_reason=reason))
    ids = [r.run_id for r in runs]
    if len(set(ids)) < len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"sweep: two runs share the id {dup}; budgets must differ in their first 3 digits")
    return runs


def format_plan(runs: list[PlannedRun]) -> str:
    header = f"{'run_id':<40} {'depth':>5} {'width':>5} {'N':>12} {'steps':>8} {'tokens (D)':>14} {'C (6ND)':>10}  note"
    lines = [header, "-" * len(header)]
    for r in runs:
        width = r.config.model.width or 64 * r.config.model.depth
        lines.append(f"{r.run_id:<40} {r.size['depth']:>5} {width:>5} {r.N:>12,} {r.steps:>8,} {r.D:>14,} "
                     f"{r.C:>10.3g}  {'skip: ' + r.skip_reason if r.skip_reason else ''}")
    active = [r for r in runs if r.skip_reason is None]
    lines.append(f"{len(active)} of {len(runs)} runs to train; total {sum(r.C for r in active):.3g} FLOPs (6ND)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# The local runner


def config_fingerprint(cfg: RunConfig, eval_settings: EvalSettings) -> str:
    """sha256 of everything that determines a run's result (not where it is written or how it logs)."""
    data = cfg.to_dict()
    for section, keys in _NOT_IDENTITY.items():
        for key in keys:
            data[section].pop(key, None)
    data["eval"] = dataclasses.asdict(eval_settings)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()


def evaluate_run(cfg: RunConfig, settings: EvalSettings) -> dict:
    """Validation loss of a trained run (its model/ folder) on the run's validation split."""
    from ditlaws.data import make_dataloader
    from ditlaws.evaluation import validation_loss
    from ditlaws.evaluation.loading import load_model

    model = load_model(Path(cfg.train.output_dir) / "model").eval()
    batches = make_dataloader(cfg.data, "val", batch_size=settings.batch_size, seed=cfg.data.seed)
    r = validation_loss(model, batches, timesteps_per_sample=settings.timesteps_per_sample,
                        sampler=cfg.train.t_sampler, loc=cfg.train.t_loc, scale=cfg.train.t_scale,
                        seed=settings.seed, max_samples=settings.max_samples)
    return {"mean": r["mean"], "sem": r["sem"], "n_samples": r["n_samples"],
            "timesteps_per_sample": r["timesteps_per_sample"], "seed": r["seed"]}


def run_sweep(sweep: Sweep, log=print) -> list[dict]:
    """Train and evaluate every planned run that is not already in the store; returns all the sweep's records."""
    from ditlaws.store import LocalStore
    from ditlaws.training import train
    from ditlaws.training.checkpoint import complete_checkpoints

    store = LocalStore(sweep.store_dir)
    runs = [r for r in plan(sweep) if r.skip_reason is None]
    records = []
    started = time.perf_counter()
    for i, run in enumerate(runs, 1):
        cfg = run.config
        fingerprint = config_fingerprint(cfg, sweep.eval)
        prefix = f"[{i}/{len(runs)}] {run.run_id}  steps {run.steps:,}"
        path = store.run_path(sweep.study, run.run_id)
        if path.is_file():
            record = store.get_run(sweep.study, run.run_id)
            stored = (record.get("sweep") or {}).get("config_sha256")
            if stored != fingerprint:
                raise UserError(f"{path}: this run is in the store with a different configuration; remove the "
                                f"record (and {cfg.train.output_dir}) or use another study name")
            log(f"{prefix}  in store, skipped  val_loss {_loss(record)}")
            records.append(record)
            continue
        t0 = time.perf_counter()
        resumed = bool(complete_checkpoints(cfg.train.output_dir))
        cfg.train.resume = "latest" if resumed else None
        summary = train(cfg)
        summary.pop("replica_param_sha256", None)
        train_s = time.perf_counter() - t0
        val = evaluate_run(cfg, sweep.eval)
        record = {**summary, "eval": {"val_loss": val},
                  "sweep": {"study": sweep.study, "config_sha256": fingerprint, "eval": dataclasses.asdict(sweep.eval),
                            "output_dir": cfg.train.output_dir}}
        if sweep.keep_models:
            record["sweep"]["model_dir"] = str(store.put_model(run.run_id, Path(cfg.train.output_dir) / "model"))
        store.put_run(record)
        records.append(record)
        log(f"{prefix}  {'resumed, ' if resumed else ''}train {train_s:.1f} s + eval "
            f"{time.perf_counter() - t0 - train_s:.1f} s  val_loss {_loss(record)}")
    log(f"sweep {sweep.study}: {len(records)} runs in {store.root} ({time.perf_counter() - started:.0f} s)")
    return records


def _loss(record: dict) -> str:
    val = (record.get("eval") or {}).get("val_loss") or {}
    return f"{val['mean']:.4f} ± {val['sem']:.4f}" if "mean" in val else "n/a"


# ---------------------------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ditlaws.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="sweep YAML (see configs/sweeps/)")
    parser.add_argument("--out", help="output folder: run folders in <out>/runs, the store in <out>/store")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.config, out=args.out)
        if args.dry_run:
            print(f"study {sweep.study}: {len(sweep.budgets)} budgets x {len(sweep.sizes)} sizes x "
                  f"{len(sweep.seeds)} seeds; store {sweep.store_dir}")
            print(format_plan(plan(sweep)))
            return 0
        run_sweep(sweep)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as err:
        from ditlaws.training import NonFiniteLossError

        if not isinstance(err, NonFiniteLossError):
            raise
        print(f"error: {err}", file=sys.stderr)  # lower train.lr in the sweep's base, then run it again
        return 3
    print(f"store: {sweep.store_dir}   fit: python fit_laws.py --runs {sweep.store_dir} --out <dir>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
