"""Load finished runs into one flat table: a CSV, or a run-store folder of JSON records.

CSV columns: ``budget,N,D,loss`` required; ``fid``, ``ood_loss``, ``study``, ``C_closed_form``, ``run_id`` optional;
lines starting with ``#`` are comments.
Store folder: ``<root>/runs/<study>/<run_id>.json`` (or ``<root>/<study>/<run_id>.json``, or one study folder),
each a run record (docs/ARCHITECTURE.md); loss = ``eval.val_loss.mean`` when present, else ``loss_last10pct``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ditlaws.errors import UserError

FLOP_CONVENTIONS = ("6nd", "closed_form")
REQUIRED_COLUMNS = ("budget", "N", "D", "loss")


@dataclass
class RunTable:
    """Column arrays, one entry per run. ``C`` is the compute under the chosen convention."""

    study: np.ndarray
    budget: np.ndarray
    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    loss: np.ndarray
    fid: np.ndarray  # NaN where absent
    ood_loss: np.ndarray  # NaN where absent
    run_id: np.ndarray
    source: str = ""
    fingerprint: str = ""
    flops: str = "6nd"
    provenance: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.loss)

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.study.tolist()))

    def select(self, mask: np.ndarray) -> RunTable:
        cols = {k: getattr(self, k)[mask] for k in _ARRAY_FIELDS}
        return RunTable(**cols, source=self.source, fingerprint=self.fingerprint, flops=self.flops,
                        provenance=dict(self.provenance))

    def for_study(self, study: str) -> RunTable:
        return self.select(self.study == study)

    @property
    def has_fid(self) -> bool:
        return bool(np.isfinite(self.fid).any())

    @property
    def has_ood(self) -> bool:
        return bool(np.isfinite(self.ood_loss).any())


_ARRAY_FIELDS = ("study", "budget", "N", "D", "C", "loss", "fid", "ood_loss", "run_id")


def load_runs(path: str | Path, flops: str = "6nd", default_study: str | None = None) -> RunTable:
    """Read a CSV file or a run-store folder. Bad input raises UserError naming the file and field."""
    if flops not in FLOP_CONVENTIONS:
        raise UserError(f"--flops: unknown convention {flops!r}; valid: {', '.join(FLOP_CONVENTIONS)}")
    path = Path(path)
    if not path.exists():
        raise UserError(f"--runs: {path} does not exist (give a CSV file or a run-store folder)")
    if path.is_dir():
        rows, fingerprint, provenance = _read_store(path)
    elif path.suffix.lower() == ".csv":
        rows, fingerprint, provenance = _read_csv(path)
    else:
        raise UserError(f"--runs: {path} is neither a .csv file nor a folder of run records")
    study = default_study or path.stem
    return _to_table(rows, str(path), fingerprint, flops, study, provenance)


def _num(value, where: str, name: str, required: bool) -> float:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if required:
            raise UserError(f"{where}: missing value for '{name}'")
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: '{name}' must be a number, got {value!r}") from None
    if required and not math.isfinite(out):
        raise UserError(f"{where}: '{name}' must be finite, got {value!r}")
    return out


def _read_csv(path: Path) -> tuple[list[dict], str, dict]:
    data = path.read_bytes()
    text = data.decode("utf-8-sig")
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if not line.startswith("#")]
    reader = csv.DictReader([line for _, line in lines])
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; required: {','.join(REQUIRED_COLUMNS)}"
                        f" (optional: fid, ood_loss, study, C_closed_form, run_id)")
    rows = []
    for raw in reader:
        row = {k.strip(): v for k, v in raw.items() if k is not None}
        row["_where"] = f"{path} line {lines[reader.line_num - 1][0]}"
        rows.append(row)
    return rows, hashlib.sha256(data).hexdigest(), {"kind": "csv", "sha256": hashlib.sha256(data).hexdigest()}


def _records_root(path: Path) -> Path:
    return path / "runs" if (path / "runs").is_dir() else path


def _read_store(path: Path) -> tuple[list[dict], str, dict]:
    root = _records_root(path)
    files = sorted(root.glob("*.json")) + sorted(root.glob("*/*.json"))
    if not files:
        raise UserError(f"--runs: no run records (*.json) under {root} (expected runs/<study>/<run_id>.json)")
    digest = hashlib.sha256()
    rows = []
    for f in files:
        data = f.read_bytes()
        digest.update(str(f.relative_to(root)).encode() + b"\0" + hashlib.sha256(data).digest())
        try:
            rec = json.loads(data)
        except json.JSONDecodeError as e:
            raise UserError(f"{f}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(rec, dict):
            raise UserError(f"{f}: a run record must be a JSON object")
        rows.append(_record_row(rec, f, default_study=f.parent.name if f.parent != root else None))
    provenance = {"kind": "store", "root": str(path), "n_records": len(files)}
    revision_file = path / "REVISION"
    if revision_file.is_file():  # written by whoever snapshots a Hub store; pins what was fitted
        provenance["revision"] = revision_file.read_text().strip()
    return rows, digest.hexdigest(), provenance


def _metric(value):
    """A metric may be stored as a number or as {"mean": ...} / {"value": ...}."""
    if isinstance(value, dict):
        for key in ("mean", "value"):
            if key in value:
                return value[key]
        return None
    return value


def _record_row(rec: dict, f: Path, default_study: str | None) -> dict:
    ev = rec.get("eval") or {}
    loss = _metric(ev.get("val_loss")) if isinstance(ev, dict) else None
    if loss is None:
        loss = rec.get("loss_last10pct")
    if loss is None:
        raise UserError(f"{f}: no loss; expected 'eval.val_loss.mean' or 'loss_last10pct'")
    ood = ev.get("ood") if isinstance(ev, dict) else None
    if isinstance(ood, dict) and "val_loss" in ood:
        ood = ood["val_loss"]
    ood = _metric(ood if ood is not None else ev.get("ood_val_loss"))
    budget = rec.get("budget")
    if budget is None:  # a run trained for explicit steps: its achieved compute is its isoFLOP group
        budget = rec.get("C")
    return {
        "_where": str(f), "budget": budget, "N": rec.get("N"), "D": rec.get("D"), "loss": loss,
        "fid": _metric(ev.get("fid")) if isinstance(ev, dict) else None, "ood_loss": ood,
        "study": rec.get("study") or default_study, "C_closed_form": rec.get("C_closed_form"),
        "run_id": rec.get("run_id") or f.stem,
    }


def _to_table(rows: list[dict], source: str, fingerprint: str, flops: str, study: str, provenance: dict) -> RunTable:
    if not rows:
        raise UserError(f"{source}: no runs")
    cols = {k: [] for k in _ARRAY_FIELDS}
    for i, r in enumerate(rows):
        where = r["_where"]
        for name in REQUIRED_COLUMNS:
            cols[name].append(_num(r.get(name), where, name, required=True))
        for name in ("N", "D", "budget", "loss"):
            if cols[name][-1] <= 0:
                raise UserError(f"{where}: '{name}' must be > 0, got {cols[name][-1]}")
        cols["fid"].append(_num(r.get("fid"), where, "fid", required=False))
        cols["ood_loss"].append(_num(r.get("ood_loss"), where, "ood_loss", required=False))
        cols["study"].append(str(r.get("study") or study))
        cols["run_id"].append(str(r.get("run_id") or i))
        if flops == "closed_form":
            cols["C"].append(_num(r.get("C_closed_form"), where, "C_closed_form", required=True))
        else:
            cols["C"].append(6.0 * cols["N"][-1] * cols["D"][-1])
    arrays = {k: np.asarray(v, dtype=object if k in ("study", "run_id") else float) for k, v in cols.items()}
    arrays["study"] = arrays["study"].astype(str)
    arrays["run_id"] = arrays["run_id"].astype(str)
    return RunTable(**arrays, source=source, fingerprint=fingerprint, flops=flops, provenance=provenance)
