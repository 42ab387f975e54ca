"""Progressive scaling: propose the next budget's sizes from the current fit, and write the sweep that runs them.

    python -m ditlaws.sweep next --from configs/sweeps/demo.yaml --budget 4e12 [--sizes 5] --write next.yaml
        [--store DIR (default: the sweep's store)] [--span 1.5]

The study so far is fitted (`ditlaws.laws`, the same fit as fit_laws.py); its N_opt(C) at the new budget, with
the 90 % interval that includes extrapolation error, sets the sizes: geometrically spaced from the interval's low
end / span to its high end × span, so the new isoFLOP curve's minimum falls inside the sampled sizes. Each target N
is matched to the nearest model in the sweep's own size family (its depths, or its (depth, heads) with the width
chosen to hit N). The written YAML is the same sweep with `budgets: [C]` and those sizes: running it extends the
same study in the same store. With `trunks: true` the new budget's branches continue the existing trunks of the
sizes picked (a trunk is identified by size and seed alone; it resumes from its latest checkpoint) and start new
trunks only for new sizes; the YAML's header says which.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import yaml

from ditlaws.config import SweepConfig, preset_size, read_yaml
from ditlaws.errors import UserError
from ditlaws.jsonio import write_text_atomic
from ditlaws.options import ArgumentParser
from ditlaws.paths import check_writable


def predicted_n_opt(store_dir: Path, study: str, budget: float, seed: int = 0, n_boot: int = 200) -> dict:
    """N_opt at `budget` from the study's runs in the store: {"value", "ci90", "approach", "fit": FitResult}."""
    from ditlaws.laws.document import fit_document
    from ditlaws.laws.predict import load_fit
    from ditlaws.laws.study import FitOptions
    from ditlaws.laws.table import table_from_store
    from ditlaws.store import LocalStore

    table = table_from_store(LocalStore(store_dir))
    if study not in table.studies:
        raise UserError(f"--store: study {study!r} has no runs in {store_dir} (found: {', '.join(table.studies)})")
    fit = load_fit(fit_document(table.for_study(study), FitOptions(n_boot=n_boot, seed=seed), [budget], seed))
    prediction = fit.predict(budget)
    for approach in ("approach2", "approach3"):
        q = prediction.get(approach, {}).get("N_opt")
        if q and q.get("value"):
            ci = q.get("ci90") or q.get("ci90_noise")
            return {"value": q["value"], "ci90": ci, "approach": approach, "warnings": prediction["warnings"]}
    raise UserError(f"the fit of study {study!r} has no N_opt law yet (run more budgets first)")


def target_sizes(n_opt: float, ci90, count: int, span: float) -> np.ndarray:
    """`count` parameter counts, geometric from ci90 low / span to ci90 high * span (the point inside)."""
    lo, hi = (ci90 if ci90 and None not in ci90 else (n_opt, n_opt))
    lo, hi = min(lo, n_opt) / span, max(hi, n_opt) * span
    return np.exp(np.linspace(math.log(lo), math.log(hi), count))


def size_candidates(sweep: SweepConfig, n_of) -> list[tuple[float, dict]]:
    """(N, size) for the models of the sweep's size family: its preset depths 1..32, or its (depth, heads) pairs
    with every width that is a multiple of 4·heads up to 64x the largest width it has. At a fixed depth N is a
    quadratic in the width (attention and MLP matrices, norms and embeddings), so three exact counts give all."""
    if sweep.depths is not None:
        return [(float(n_of(preset_size(d))), preset_size(d)) for d in range(1, 33)]
    out = []
    largest = max(s["width"] or preset_size(s["depth"])["width"] for s in sweep.size_list)
    for depth, heads in sorted({(s["depth"], s.get("heads") or s["depth"]) for s in sweep.size_list}):
        step = 4 * heads
        widths = np.arange(step, 64 * largest + 1, step)
        probe = widths[[0, len(widths) // 2, -1]] if len(widths) >= 3 else widths
        counts = [n_of({"depth": depth, "width": int(w), "heads": heads}) for w in probe]
        poly = np.polyfit(probe.astype(float), np.asarray(counts, float), deg=min(2, len(probe) - 1))
        out += [(float(np.polyval(poly, w)), {"depth": depth, "width": int(w), "heads": heads}) for w in widths]
    return out


def choose_sizes(targets: np.ndarray, candidates: list[tuple[float, dict]]) -> list[dict]:
    """For each target N the candidate nearest in log N, each used once, ordered by N."""
    chosen: list[tuple[float, dict]] = []
    free = sorted(candidates, key=lambda c: c[0])
    for target in targets:
        if not free:
            break
        i = int(np.argmin([abs(math.log(n / target)) for n, _ in free]))
        chosen.append(free.pop(i))
    return [size for _, size in sorted(chosen, key=lambda c: c[0])]


def propose(sweep_path: Path, budget: float, count: int = 5, span: float = 1.5, store: str | None = None,
            seed: int = 0) -> tuple[dict, dict]:
    """(the next sweep as a YAML mapping, what the proposal is based on)."""
    from ditlaws.sweep.plan import load_sweep, run_config
    from ditlaws.training.plan import data_geometry, plan_run

    sweep = load_sweep(sweep_path)
    store_dir = Path(store) if store else sweep.store_dir
    n = predicted_n_opt(store_dir, sweep.study, budget, seed=seed)
    geometry = data_geometry(run_config(sweep, budget, sweep.size_list[0], sweep.seeds[0]).data)

    def n_of(size: dict) -> int:
        return plan_run(run_config(sweep, budget, size, sweep.seeds[0]), geometry, check_warmup=False).compute.N

    sizes = choose_sizes(target_sizes(n["value"], n["ci90"], count, span), size_candidates(sweep, n_of))
    raw = copy.deepcopy(read_yaml(sweep_path))
    raw.pop("depths", None)
    if raw.get("base_config") is not None:  # keep it findable from wherever the new file is written
        raw["base_config"] = str((sweep_path.parent / raw["base_config"]).resolve())
    raw.update(budgets=[float(budget)], sizes=sizes, out=str(sweep.out_dir), store=str(store_dir))
    basis = {"study": sweep.study, "budget": budget, "N_opt": n["value"], "ci90": n["ci90"],
             "approach": n["approach"], "warnings": n["warnings"],
             "N": [n_of(s) for s in sizes],
             "trunks": trunk_notes(sweep, budget, sizes, store_dir) if sweep.trunks else []}
    return raw, basis


def trunk_notes(sweep: SweepConfig, budget: float, sizes: list[dict], store_dir: Path) -> list[str]:
    """Per size: which existing trunk the new budget's branch continues (constant LR has no end), or a new one. The
    trunks are looked for beside the store (`<out>/runs` of a sweep run with `--out`), else in the sweep's folder."""
    from ditlaws.sweep.plan import run_config
    from ditlaws.sweep.trunks import trunk_config
    from ditlaws.training.checkpoint import complete_checkpoints

    runs_dir = store_dir.parent / "runs" if (store_dir.parent / "runs").is_dir() else sweep.runs_dir
    notes = []
    for size in sizes:
        for seed in sweep.seeds:
            cfg = trunk_config(run_config(sweep, budget, size, seed), runs_dir)
            found = complete_checkpoints(cfg.train.output_dir)
            notes.append(f"{cfg.train.run_id}: " + (f"continues the existing trunk from step {found[-1][0]:,}"
                                                     if found else "new trunk (trained from step 0)"))
    return notes


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m ditlaws.sweep next", description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="sweep", required=True, help="the study's sweep YAML (its base and size family)")
    p.add_argument("--budget", type=float, required=True, help="the next compute budget (FLOPs)")
    p.add_argument("--sizes", type=int, default=5, help="how many sizes (default 5)")
    p.add_argument("--span", type=float, default=1.5, help="widen the N_opt interval by this factor each side")
    p.add_argument("--store", help="the study's store (default: the sweep's)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed of the fit")
    p.add_argument("--write", required=True, help="where to write the next sweep YAML")
    args = p.parse_args(argv)
    if not (math.isfinite(args.budget) and args.budget > 0):
        raise UserError(f"--budget must be a finite number of FLOPs > 0, got {args.budget}")
    if args.sizes < 3:
        raise UserError(f"--sizes must be at least 3 (a parabola needs three points), got {args.sizes}")
    if not (math.isfinite(args.span) and args.span >= 1):
        raise UserError(f"--span must be a factor >= 1, got {args.span}")
    out = Path(args.write)
    check_writable(out, "--write")
    raw, basis = propose(Path(args.sweep), args.budget, args.sizes, args.span, args.store, args.seed)
    lo, hi = basis["ci90"] or (None, None)
    header = (f"# Next budget of study {basis['study']}: C = {args.budget:.3g} FLOPs. Proposed by\n"
              f"#   python -m ditlaws.sweep next --from {args.sweep} --budget {args.budget:g} --sizes {args.sizes} "
              f"--span {args.span:g}\n"
              f"# from the current fit ({basis['approach']}): N_opt = {basis['N_opt']:.4g}"
              + (f", 90 % interval [{lo:.4g}, {hi:.4g}]" if lo else "") + "\n"
              f"# sizes N = {', '.join(f'{n:,}' for n in basis['N'])}\n")
    for note in basis["trunks"]:
        header += f"# trunk {note}\n"
    for w in basis["warnings"]:
        header += f"# warning: {w}\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, header + yaml.safe_dump(raw, sort_keys=False))
    print(header.rstrip())
    print(f"wrote {out}; run it with: python -m ditlaws.sweep --config {out}")
    return 0
