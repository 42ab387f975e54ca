"""eval.json accumulates: a second `evaluate_dit.py` on the same checkpoint adds its metrics to the first's.

An evaluation is costly (NLL alone can take minutes), and the README runs two commands into one run folder
(loss/VLB/NLL, then FID/accuracy). So the new report is merged into the one already there, per (split, metric):
a metric measured again replaces its old result, every other result, summary key, timing and sample grid stays,
and `options_by_metric` says with which settings each result was measured. A report is merged only into one of
the same weights and the same data; otherwise the old one is replaced, and the reason is returned to be printed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ditlaws.jsonio import read_json_if_present

FORMAT = 2  # eval.json with options_by_metric and model_sha256


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 of the model folder's config.json and safetensors files (what makes two evaluations comparable)."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).iterdir()):
        if path.name == "config.json" or path.name.endswith(".safetensors"):
            digest.update(path.name.encode())
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def previous_report(path: Path) -> dict | None:
    """The eval.json already at `path` (None if there is none); a damaged one is an error naming the file, raised
    before any metric runs, so it is never overwritten by accident."""
    return read_json_if_present(path, "eval.json")


def per_metric_options(report: dict) -> dict:
    """{"<split>/<metric>": options} for every result of a report (older reports: their one `options`)."""
    if "options_by_metric" in report:
        return dict(report["options_by_metric"])
    options = report.get("options") or {}
    return {f"{split}/{metric}": options for split, results in (report.get("results") or {}).items()
            for metric in results}


def merge_reports(old: dict | None, new: dict) -> tuple[dict, str | None]:
    """(merged report, why the old one was replaced instead, or None). `new` carries `model_sha256` and `data`."""
    new = {**new, "format": FORMAT, "options_by_metric": per_metric_options(new)}
    if not old:
        return new, None
    if old.get("model_sha256") != new.get("model_sha256"):
        return new, "the existing eval.json was measured on other weights (or predates fingerprints); replaced"
    if old.get("data") != new.get("data"):
        return new, "the existing eval.json was measured on other data settings; replaced"
    results = {split: dict(r) for split, r in (old.get("results") or {}).items()}
    for split, r in new["results"].items():
        results.setdefault(split, {}).update(r)
    summary = {**(old.get("summary") or {}), **new["summary"]}
    timing = {**(old.get("timing_s") or {}), **new["timing_s"]}
    warnings = list(dict.fromkeys([*(old.get("warnings") or []), *new["warnings"]]))
    options = {**per_metric_options(old), **new["options_by_metric"]}
    merged = {**old, **new, "results": results, "summary": summary, "timing_s": timing, "warnings": warnings,
              "options_by_metric": options}
    return merged, None
