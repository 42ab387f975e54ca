"""Finished runs as one flat table, from a CSV file or from any run store (read through its interface only).

CSV columns: ``N,D,loss`` required; optional ``budget`` (the nominal isoFLOP budget; without it each run's budget is
its own C = 6·N·D), ``fid``, ``accuracy`` (and ``accuracy_colour``, ``accuracy_position``, ``accuracy_shape``),
``clip_score``, ``ood_loss``, ``study``, ``C_closed_form``, ``run_id``; lines starting with ``#`` are comments.

A store is any object with ``iter_records()`` (yielding ``ditlaws.store.StoredRecord``: ``where``, ``study``,
``record`` or ``error``) and ``provenance()`` (whose ``revision`` pins what was read; for a Hub snapshot the commit
sha). Loss = ``eval.val_loss.mean`` when present, else ``loss_last10pct``; metrics from ``eval.<key>``. A malformed
or partial record is listed in ``RunTable.skipped`` and left out, or is fatal with ``strict``. In a CSV, which the
user wrote, a bad row is an error naming the line.

Checks on every input: duplicated rows (the same run twice makes intervals too narrow), a D inconsistent with the
row's budget (more than 10x off: wrong units), metrics outside their range (FID <= 0 or infinite, accuracy outside
[0, 1]).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ditlaws.errors import UserError
from ditlaws.laws.metrics import COLUMNS
from ditlaws.store.cost import trained_flops
from ditlaws.store.layout import SHAPE

FLOP_CONVENTIONS = ("6nd", "closed_form")
REQUIRED_COLUMNS = ("N", "D", "loss")
OPTIONAL_COLUMNS = ("budget", *COLUMNS, "study", "C_closed_form", "run_id")
BUDGET_ERROR_FACTOR = 10.0  # 6·N·D this far from the stated budget is an error (units), beyond 2x a warning
BUDGET_WARN_FACTOR = 2.0


class RowError(ValueError):
    """A row or record that cannot be used (the message names the field)."""


@dataclass
class RunTable:
    """Column arrays, one entry per run. ``C`` is the compute under the chosen convention; ``budget`` the isoFLOP
    group label (set by ``group_budgets``); ``nominal`` the stated budget (NaN where none was given)."""

    study: np.ndarray
    nominal: np.ndarray
    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    loss: np.ndarray
    run_id: np.ndarray
    where: np.ndarray
    metrics: dict[str, np.ndarray]  # every key of metrics.COLUMNS; NaN where absent
    budget: np.ndarray | None = None
    source: str = ""
    fingerprint: str = ""
    flops: str = "6nd"
    provenance: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tokens_per_sample: float | None = None
    budget_tolerance: float | None = None
    cost: dict = field(default_factory=dict)  # study -> ditlaws.store.cost.trained_flops of its records

    def __len__(self) -> int:
        return len(self.loss)

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.study.tolist()))

    def select(self, mask: np.ndarray) -> RunTable:
        cols = {k: getattr(self, k)[mask] for k in _ARRAY_FIELDS}
        budget = None if self.budget is None else self.budget[mask]
        return RunTable(**cols, metrics={k: v[mask] for k, v in self.metrics.items()}, budget=budget,
                        source=self.source, fingerprint=self.fingerprint, flops=self.flops,
                        provenance=dict(self.provenance), skipped=list(self.skipped), warnings=list(self.warnings),
                        tokens_per_sample=self.tokens_per_sample, budget_tolerance=self.budget_tolerance,
                        cost=dict(self.cost))

    def for_study(self, study: str) -> RunTable:
        return self.select(self.study == study)

    def has(self, key: str) -> bool:
        return bool(np.isfinite(self.metrics[key]).any())

    @property
    def fid(self) -> np.ndarray:
        return self.metrics["fid"]

    @property
    def ood_loss(self) -> np.ndarray:
        return self.metrics["ood_loss"]


_ARRAY_FIELDS = ("study", "nominal", "N", "D", "C", "loss", "run_id", "where")


# ---------------------------------------------------------------------------------------------------- entry points


def load_runs(path: str | Path, flops: str = "6nd", *, flag: str = "--runs", strict: bool = False,
              drop_duplicates: bool = False) -> RunTable:
    """Read a CSV file or a local run-store folder. Bad input raises UserError naming the flag, file and field."""
    if flops not in FLOP_CONVENTIONS:
        raise UserError(f"--flops: unknown convention {flops!r}; valid: {', '.join(FLOP_CONVENTIONS)}")
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag}: {path} does not exist (give a CSV file or a run-store folder)")
    if path.is_dir():
        from ditlaws.store import LocalStore, is_store

        if not is_store(path):
            hint = f"; did you mean {path.parent.parent}?" if path.parent.name == "runs" or path.name == "runs" \
                else ""
            raise UserError(f"{flag}: {path} is not a run store (no runs/ folder; expected {SHAPE}){hint}")
        return table_from_store(LocalStore(path), flops=flops, strict=strict, drop_duplicates=drop_duplicates,
                                source=str(path), flag=flag)
    if path.suffix.lower() != ".csv":
        raise UserError(f"{flag}: {path} is neither a .csv file nor a run-store folder")
    rows, fingerprint = _read_csv(path)
    table = _to_table(rows, str(path), fingerprint, flops, path.stem, {"kind": "csv", "path": str(path),
                                                                       "sha256": fingerprint}, strict=True)
    check_duplicates(table, drop_duplicates)
    check_spread(table)
    return table


def table_from_store(store, *, flops: str = "6nd", strict: bool = False, drop_duplicates: bool = False,
                     source: str | None = None, flag: str = "--runs") -> RunTable:
    """Build the table from any store object (``iter_records()`` + ``provenance()``)."""
    provenance = dict(store.provenance())
    source = source or str(provenance.get("root") or provenance.get("repo") or "store")
    digest = hashlib.sha256()
    rows, skipped, costed = [], [], {}
    for item in store.iter_records():
        if item.record is None:
            skipped.append({"where": item.where, "reason": item.error or "unreadable"})
            continue
        digest.update(item.where.encode() + b"\0" + json.dumps(item.record, sort_keys=True, default=str).encode())
        try:
            rows.append(_record_row(item.record, item.where, item.study))
            if _costed(item.record):
                costed.setdefault(rows[-1]["study"], []).append(item.record)
        except RowError as e:
            skipped.append({"where": item.where, "reason": str(e)})
    table = _to_table(rows, source, digest.hexdigest(), flops, "store", provenance, strict=False) if rows else None
    skipped += table.skipped if table is not None else []
    if skipped and strict:
        s = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise UserError(f"{s['where']}: {s['reason']}{more}; --strict makes malformed records fatal")
    if table is None:
        why = f"; {len(skipped)} record(s) skipped, first: {skipped[0]['where']}: {skipped[0]['reason']}" \
            if skipped else ""
        raise UserError(f"{flag}: no usable run records in {source} (expected {SHAPE}){why}")
    table.skipped = skipped
    if not len(table):
        raise UserError(f"{flag}: every run record in {source} was malformed (first: {table.skipped[0]['where']}: "
                        f"{table.skipped[0]['reason']})")
    check_duplicates(table, drop_duplicates)
    check_spread(table)
    table.cost = {study: trained_flops(records) for study, records in costed.items()}
    tps = {r.get("tokens_per_sample") for r in rows}
    if len(tps) == 1 and isinstance(next(iter(tps)), (int, float)):
        table.tokens_per_sample = float(next(iter(tps)))
    return table


# ---------------------------------------------------------------------------------------------------- readers


def _read_csv(path: Path) -> tuple[list[dict], str]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if not line.startswith("#")]
    reader = csv.DictReader([line for _, line in lines])
    header = [h.strip() for h in (reader.fieldnames or [])]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise UserError(f"{path}: column {repeated[0]!r} appears {header.count(repeated[0])} times in the header; "
                        "each column once (which one did you mean?)")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; required: {','.join(REQUIRED_COLUMNS)}"
                        f" (optional: {', '.join(OPTIONAL_COLUMNS)})")
    rows = []
    for raw in reader:
        row = {k.strip(): v for k, v in raw.items() if k is not None}
        row["_where"] = f"{path} line {lines[reader.line_num - 1][0]}"
        rows.append(row)
    return rows, hashlib.sha256(data).hexdigest()


def _costed(rec: dict) -> bool:
    """A record whose training cost is known (C and steps; a trunk's branch also its branch point)."""
    C, steps = rec.get("C"), rec.get("steps")
    return isinstance(C, (int, float)) and isinstance(steps, int) and steps > 0 and math.isfinite(C)


def _metric(value):
    """A metric may be stored as a number or as {"mean": ...} / {"value": ...}."""
    if isinstance(value, dict):
        for key in ("mean", "value"):
            if key in value:
                return value[key]
        return None
    return value


def _record_row(rec: dict, where: str, default_study: str | None) -> dict:
    ev = rec.get("eval")
    ev = ev if isinstance(ev, dict) else {}
    loss = _metric(ev.get("val_loss"))
    if loss is None and "val_loss" in ev:
        raise RowError("eval.val_loss is null: the evaluation gave no number (NaN or inf weights?); evaluate the "
                       "run again from a good checkpoint, or remove the record")
    if loss is None:
        loss = rec.get("loss_last10pct")
    if loss is None:
        raise RowError("no loss; expected 'eval.val_loss.mean' or 'loss_last10pct' (a run still training?)")
    ood = ev.get("ood")
    if isinstance(ood, dict) and "val_loss" in ood:
        ood = ood["val_loss"]
    row = {"_where": where, "budget": rec.get("budget", rec.get("C")), "N": rec.get("N"), "D": rec.get("D"),
           "loss": loss, "ood_loss": _metric(ood if ood is not None else ev.get("ood_val_loss")),
           "study": rec.get("study") or default_study, "C_closed_form": rec.get("C_closed_form"),
           "run_id": rec.get("run_id") or Path(where).stem, "tokens_per_sample": rec.get("tokens_per_sample")}
    for key in COLUMNS:
        if key != "ood_loss":
            row[key] = _metric(ev.get(key))
    return row


def _num(value, name: str, required: bool) -> float:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if required:
            raise RowError(f"missing value for '{name}'")
        return math.nan
    if isinstance(value, bool):
        raise RowError(f"'{name}' must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RowError(f"'{name}' must be a number, got {value!r}") from None
    if required and not math.isfinite(out):
        raise RowError(f"'{name}' must be finite, got {value!r}")
    return out


def _parse_row(r: dict, flops: str) -> dict:
    out = {name: _num(r.get(name), name, required=True) for name in REQUIRED_COLUMNS}
    for name in ("N", "D", "loss"):
        if out[name] <= 0:
            raise RowError(f"'{name}' must be > 0, got {out[name]:g}")
    out["budget"] = _num(r.get("budget"), "budget", required=False)
    if not math.isnan(out["budget"]) and not (math.isfinite(out["budget"]) and out["budget"] > 0):
        raise RowError(f"'budget' must be a finite number of FLOPs > 0, got {r.get('budget')!r}")
    for key, metric in COLUMNS.items():
        v = _num(r.get(key), key, required=False)
        if not math.isnan(v) and (problem := metric.problem(v)):
            raise RowError(problem)
        out[key] = v
    if flops == "closed_form":
        out["C"] = _num(r.get("C_closed_form"), "C_closed_form", required=True)
        if out["C"] <= 0:
            raise RowError(f"'C_closed_form' must be > 0, got {out['C']:g}")
    else:
        out["C"] = 6.0 * out["N"] * out["D"]
    return out


def _to_table(rows: list[dict], source: str, fingerprint: str, flops: str, study: str, provenance: dict,
              strict: bool) -> RunTable:
    """Parse and check every row. ``strict``: a bad row is a UserError; otherwise it is skipped and listed."""
    if not rows:
        raise UserError(f"{source}: no runs")
    cols = defaultdict(list)
    skipped, far = [], []
    for i, r in enumerate(rows):
        where = r["_where"]
        try:
            parsed = _parse_row(r, flops)
        except RowError as e:
            if strict:
                raise UserError(f"{where}: {e}") from None
            skipped.append({"where": where, "reason": str(e)})
            continue
        ratio = 6.0 * parsed["N"] * parsed["D"] / parsed["budget"] if math.isfinite(parsed["budget"]) else 1.0
        if max(ratio, 1 / ratio) > BUDGET_ERROR_FACTOR:
            msg = (f"6·N·D = {6 * parsed['N'] * parsed['D']:.3g} is {ratio:.3g}x its budget {parsed['budget']:.3g}; "
                   f"D must be the tokens seen (tokens per sample x samples) and N the parameters")
            if strict:
                raise UserError(f"{where}: {msg}")
            skipped.append({"where": where, "reason": msg})
            continue
        if max(ratio, 1 / ratio) > BUDGET_WARN_FACTOR:
            far.append(where)
        for name in ("N", "D", "C", "loss", *COLUMNS):
            cols[name].append(parsed[name])
        cols["nominal"].append(parsed["budget"])
        cols["study"].append(str(r.get("study") or study))
        cols["run_id"].append(str(r.get("run_id") or i))
        cols["where"].append(where)
    arrays = {k: np.asarray(cols[k], dtype=float) for k in ("nominal", "N", "D", "C", "loss")}
    text = {k: np.asarray(cols[k], dtype=str) for k in ("study", "run_id", "where")}
    metrics = {k: np.asarray(cols[k], dtype=float) for k in COLUMNS}
    table = RunTable(**arrays, **text, metrics=metrics, source=source, fingerprint=fingerprint, flops=flops,
                     provenance=provenance, skipped=skipped)
    if far:
        table.warnings.append(f"{len(far)} run(s) have 6·N·D more than {BUDGET_WARN_FACTOR:g}x from their budget "
                              f"(first: {far[0]}); they are grouped by their stated budget")
    return table


# ---------------------------------------------------------------------------------------------------- checks


def check_spread(table: RunTable) -> None:
    """Losses that are all the same carry no information about scaling (a fit would give zero-width intervals)."""
    if len(table) >= 2 and np.all(table.loss == table.loss[0]):
        raise UserError(f"{table.source}: all {len(table)} runs have the same loss ({table.loss[0]:g}); a scaling "
                        "fit needs runs whose losses differ (a copied value, or runs that did not train?)")


def check_duplicates(table: RunTable, drop: bool = False) -> None:
    """Rows with the same study, N, D and loss are the same run counted twice: an error naming them, or (``drop``)
    keep the first of each and warn."""
    seen: dict[tuple, int] = {}
    pairs = []
    keep = np.ones(len(table), dtype=bool)
    for i, key in enumerate(zip(table.study.tolist(), table.N.tolist(), table.D.tolist(), table.loss.tolist())):
        if key in seen:
            pairs.append((seen[key], i))
            keep[i] = False
        else:
            seen[key] = i
    if not pairs:
        return
    shown = "; ".join(f"{table.where[a]} = {table.where[b]}" for a, b in pairs[:3])
    more = f" and {len(pairs) - 3} more" if len(pairs) > 3 else ""
    if not drop:
        raise UserError(f"duplicated runs (same study, N, D and loss): {shown}{more}; a run counted twice makes the "
                        f"intervals too narrow: remove the copies, or pass --drop-duplicates to keep the first")
    table.warnings.append(f"{len(pairs)} duplicated run(s) dropped (--drop-duplicates): {shown}{more}")
    sub = table.select(keep)
    for name in (*_ARRAY_FIELDS, "metrics"):
        setattr(table, name, getattr(sub, name))


def group_budgets(table: RunTable, tolerance: float) -> RunTable:
    """Set ``table.budget``: runs whose budgets (the stated one, else C) lie within ``tolerance`` (relative, in log
    space: |ln b - ln b0| <= ln(1 + tolerance) of the group's smallest) share one group, labelled by their
    geometric mean. Groups never merge across studies."""
    value = np.where(np.isfinite(table.nominal), table.nominal, table.C)
    label = np.full(len(table), np.nan)
    width = math.log1p(tolerance)
    for study in table.studies:
        idx = np.flatnonzero(table.study == study)
        order = idx[np.argsort(value[idx], kind="stable")]
        start = 0
        while start < len(order):
            lo = math.log(value[order[start]])
            stop = start
            while stop < len(order) and math.log(value[order[stop]]) - lo <= width + 1e-12:
                stop += 1
            members = order[start:stop]
            same = np.all(value[members] == value[members[0]])
            label[members] = value[members[0]] if same else float(np.exp(np.mean(np.log(value[members]))))
            start = stop
    table.budget = label
    table.budget_tolerance = tolerance
    return table
