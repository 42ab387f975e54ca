"""Model and results cards: the Jinja templates in hub_cards/ filled through huggingface_hub's card classes.

    model_card(...)    README.md of a run's model repo <org>/<study>-<run_id> (ModelCard + ModelCardData)
    results_card(...)  README.md of the results dataset repo <org>/<study>-results (DatasetCard + DatasetCardData)
    validate_card(...) offline validation: the front matter parses and holds the fields the Hub pages rely on

Cards hold only what the records hold (no dates, no local paths), so the same runs give the same bytes and a
re-push makes no commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ditlaws.errors import UserError

MODEL_TAGS = ("ditlaws", "isoflop", "text-to-image")
RESULTS_TAGS = ("ditlaws", "isoflop", "scaling-laws")
CURVE_POINTS = (0.1, 0.25, 0.5, 0.75, 1.0)  # fractions of the run at which the card shows the loss curve


def template_path(name: str) -> Path:
    """hub_cards/<name>: shipped inside the package as ditlaws/store/cards (a link to hub_cards/ in the source
    tree, a copy in a wheel)."""
    for folder in (Path(__file__).resolve().parent / "cards", Path(__file__).resolve().parents[3] / "hub_cards"):
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"card template {name} not found (expected in hub_cards/ or ditlaws/store/cards/)")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, dict) and "mean" in value:
        sem = value.get("sem")
        return _fmt(value["mean"]) + (f" ± {sem:.2g}" if isinstance(sem, (int, float)) else "")
    return str(value)


def _rows(source: dict, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(label, _fmt(source[key])) for key, label in keys if source.get(key) is not None]


def _eval_rows(ev: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key in sorted(ev):
        value = ev[key]
        if isinstance(value, dict) and "mean" not in value:
            rows += _eval_rows(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float, dict)) and not isinstance(value, bool):
            rows.append((f"{prefix}{key}", _fmt(value)))
    return rows


def curve_rows(metrics: list[dict], steps: int | None) -> list[list[str]]:
    """The logged metrics nearest to 10 %, 25 %, 50 %, 75 % and 100 % of the run."""
    if not metrics:
        return []
    total = steps or max(int(m.get("step", 0)) for m in metrics)
    chosen: list[dict] = []
    for frac in CURVE_POINTS:
        best = min(metrics, key=lambda m: abs(int(m.get("step", 0)) - frac * total))
        if best not in chosen:
            chosen.append(best)
    return [[_fmt(m.get("step")), _fmt(m.get("image_tokens")), _fmt(m.get("flops"), 3), _fmt(m.get("loss")),
             _fmt(m.get("loss_ema")), _fmt(m.get("lr"), 3)] for m in chosen]


def model_repo_name(org: str, study: str, run_id: str) -> str:
    return f"{org}/{study}-{run_id}"


def results_repo_name(org: str, study: str) -> str:
    return f"{org}/{study}-results"


def train_command(record: dict) -> str:
    processes = int(record.get("processes") or 1)
    out = f"--train.output_dir outputs/{record['run_id']}"
    if processes > 1:
        return f"accelerate launch --num_processes {processes} train_dit.py --config train_config.yaml {out}"
    return f"python train_dit.py --config train_config.yaml {out}"


def model_card(record: dict, *, org: str, run_config: dict | None = None, metrics: list[dict] | None = None,
               has_text_encoder: bool = False) -> str:
    """The model card of one run, from its record, its resolved config (config.yaml) and its metrics.jsonl rows."""
    from huggingface_hub import ModelCard, ModelCardData

    study, run_id = record["study"], record["run_id"]
    repo_id = model_repo_name(org, study, run_id)
    cfg = run_config or {}
    data = cfg.get("data") or {}
    source = data.get("source")
    card_data = ModelCardData(
        library_name="diffusers", pipeline_tag="text-to-image", tags=[*MODEL_TAGS, study],
        datasets=[source] if isinstance(source, str) and "/" in source else None,
        ditlaws={k: record.get(k) for k in ("study", "run_id", "family", "budget", "N", "D", "C") if k in record},
    )
    model_config = record.get("model_config") or {}
    model_keys = [("depth", "depth"), ("width", "width"), ("heads", "heads"), ("patch_size", "patch size"),
                  ("sample_size", "latent size"), ("in_channels", "latent channels"), ("text_dim", "text width"),
                  ("text_len", "text tokens"), ("mlp_ratio", "MLP ratio")]
    model_rows = [("family", str(record.get("family"))), *_rows(model_config, model_keys),
                  *_rows(record, [("N", "N (parameters)"), ("N_non_embedding", "N without embeddings")])]
    compute_rows = _rows(record, [("budget", "budget (FLOPs)"), ("steps", "steps"), ("global_batch", "global batch"),
                                  ("tokens_per_sample", "image tokens per sample"), ("D", "D (image tokens)"),
                                  ("C", "C = 6·N·D (FLOPs)"), ("C_closed_form", "C, closed form (FLOPs)"),
                                  ("processes", "processes"), ("wall_time_s", "wall time (s)")])
    data_keys = [("source", "data"), ("resolution", "resolution"), ("image_encoder", "image encoder"),
                 ("text_encoder", "text encoder"), ("text_len", "text tokens"), ("seed", "data seed")]
    data_rows = _rows(data, data_keys) or _rows(record, [("image_encoder", "image encoder"),
                                                          ("text_encoder", "text encoder")])
    versions = record.get("versions") or {}
    card = ModelCard.from_template(
        card_data, template_path=str(template_path("model_card.md")),
        repo_id=repo_id, org=org, study=study, run_id=run_id, family=record.get("family"),
        class_name=model_config.get("_class_name") or "InContextDiT",
        results_repo=results_repo_name(org, study), results_url=f"/datasets/{results_repo_name(org, study)}",
        model_rows=model_rows, compute_rows=compute_rows, curve_rows=curve_rows(metrics or [], record.get("steps")),
        final_loss=_fmt(record.get("final_loss")), final_loss_ema=_fmt(record.get("final_loss_ema")),
        loss_last10pct=_fmt(record.get("loss_last10pct")), eval_rows=_eval_rows(record.get("eval") or {}),
        data_rows=data_rows, has_text_encoder=has_text_encoder, command=train_command(record),
        git_commit=record.get("git_commit") or "unknown",
        versions=", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "not recorded",
    )
    return str(card)


def _results_row(record: dict, org: str) -> list[str]:
    mc = record.get("model_config") or {}
    ev = record.get("eval") or {}
    loss = ev.get("val_loss")
    repo = model_repo_name(org, record["study"], record["run_id"])
    return [record["run_id"], str(record.get("family", "–")), _fmt(mc.get("depth")), _fmt(mc.get("width")),
            _fmt(record.get("N")), _fmt(record.get("D")), _fmt(record.get("C"), 3), _fmt(record.get("budget"), 3),
            _fmt(loss) if loss is not None else _fmt(record.get("loss_last10pct")) + " (train)",
            _fmt(ev.get("fid")), f"[{repo}](/{repo})"]


def results_card(records: list[dict], *, org: str, study: str) -> str:
    """The results repo's card: a table of every run of every study in the repo, and how to refit."""
    from huggingface_hub import DatasetCard, DatasetCardData

    by_study: dict[str, list[dict]] = {}
    for record in records:
        by_study.setdefault(record["study"], []).append(record)
    studies = [{"name": name, "rows": [_results_row(r, org) for r in sorted(rs, key=_run_order)]}
               for name, rs in sorted(by_study.items())]
    tags = [*RESULTS_TAGS, *sorted(set(by_study) | {study})]
    card_data = DatasetCardData(pretty_name=f"ditlaws study {study}: run records", tags=tags)
    card = DatasetCard.from_template(
        card_data, template_path=str(template_path("results_card.md")), repo_id=results_repo_name(org, study),
        org=org, study_name=study, studies=studies, n_runs=len(records))
    return str(card)


def _run_order(record: dict) -> tuple:
    return (float(record.get("budget") or record.get("C") or 0), float(record.get("N") or 0), record["run_id"])


def validate_card(text: str, kind: str, study: str | None = None) -> dict:
    """Offline card validation (what `card.validate()` checks on the Hub, without the Hub): the YAML front matter
    parses to a mapping and holds the fields this project relies on. Returns the metadata; raises UserError."""
    from huggingface_hub import DatasetCard, ModelCard

    if not text.startswith("---\n"):
        raise UserError(f"{kind} card: no YAML front matter (the card must start with '---')")
    try:
        card = (ModelCard if kind == "model" else DatasetCard)(text)
    except Exception as err:  # yaml errors and "front matter is not a dict"
        raise UserError(f"{kind} card: front matter does not parse ({str(err).splitlines()[0]})") from None
    meta = card.data.to_dict()
    problems = []
    tags = set(meta.get("tags") or [])
    required_tags = set(MODEL_TAGS if kind == "model" else RESULTS_TAGS) | ({study} if study else set())
    if not required_tags <= tags:
        problems.append(f"tags missing {sorted(required_tags - tags)}")
    if kind == "model":
        if meta.get("library_name") != "diffusers":
            problems.append("library_name must be 'diffusers'")
        if meta.get("pipeline_tag") != "text-to-image":
            problems.append("pipeline_tag must be 'text-to-image'")
        if not {"study", "run_id", "N", "D", "C"} <= set(meta.get("ditlaws") or {}):
            problems.append("the 'ditlaws' block needs study, run_id, N, D and C")
    elif not meta.get("pretty_name"):
        problems.append("pretty_name is missing")
    if problems:
        raise UserError(f"{kind} card: " + "; ".join(problems))
    return meta
