"""The local run store: a folder with the store layout (see ditlaws.store).

    <root>/runs/<study>/<run_id>.json     one record per run (see docs/ARCHITECTURE.md, "Run record")
    <root>/models/<run_id>/               a kept checkpoint in diffusers format (on the Hub: one model repo per run)

Training writes the record, evaluation merges its metrics into it, fit_laws.py reads all records of a study.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ditlaws.errors import UserError
from ditlaws.jsonio import write_json_atomic
from ditlaws.store import layout
from ditlaws.store.layout import RUNS, check_name, check_record


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict update: nested mappings merge, everything else is replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class StoredRecord:
    """One run record as read from a store: the parsed record, or why it could not be read."""

    where: str  # the file (local path or repo path), for messages
    study: str
    record: dict[str, Any] | None  # None when the file is not a valid record
    error: str | None = None


class LocalStore:
    """A run store in a local folder. `source` describes where the folder came from when it is a download of a
    Hub results repo (`HubStore.snapshot`): its repo and commit sha, which `provenance()` then reports."""

    kind = "local"

    def __init__(self, root: str | Path, source: dict[str, Any] | None = None):
        self.root = Path(root)
        self.source = dict(source) if source else None

    @property
    def spec(self) -> str:
        return str(self.root)

    def run_path(self, study: str, run_id: str) -> Path:
        return self.root / layout.record_path(study, run_id)

    def put_run(self, record: dict[str, Any]) -> Path:
        check_record(record)
        path = self.run_path(record["study"], record["run_id"])
        write_json_atomic(path, record, sort_keys=True)
        return path

    def has_run(self, study: str, run_id: str) -> bool:
        return self.run_path(study, run_id).is_file()

    def merge_run(self, record: dict[str, Any]) -> dict[str, Any]:
        """Merge `record` into the stored record of its run (creating it when absent); returns the result."""
        check_record(record)
        if self.has_run(record["study"], record["run_id"]):
            return self.update_run(record["study"], record["run_id"], record)
        self.put_run(record)
        return record

    def update_run(self, study: str, run_id: str, update: dict[str, Any]) -> dict[str, Any]:
        """Merge `update` (e.g. {"eval": {...}}) into an existing record and return the result."""
        record = merge(self.get_run(study, run_id), update)
        write_json_atomic(self.run_path(study, run_id), record, sort_keys=True)
        return record

    def get_run(self, study: str, run_id: str) -> dict[str, Any]:
        path = self.run_path(study, run_id)
        if not path.is_file():
            raise UserError(f"{path}: no such run in the store")
        return _read_record(path)

    def studies(self) -> list[str]:
        runs = self.root / RUNS
        return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []

    def list_runs(self, study: str | None = None) -> list[dict[str, Any]]:
        studies = [check_name("study", study)] if study else self.studies()
        records = []
        for name in studies:
            records += [_read_record(p) for p in sorted((self.root / RUNS / name).glob("*.json"))]
        return records

    def iter_records(self, study: str | None = None) -> Iterator[StoredRecord]:
        """Every record file of a study (or of all studies), in name order; unreadable ones carry an error."""
        for name in [check_name("study", study)] if study else self.studies():
            for path in sorted((self.root / RUNS / name).glob("*.json")):
                try:
                    record = json.loads(path.read_bytes())
                except OSError as err:  # a folder, a dangling link or a link loop named *.json
                    yield StoredRecord(str(path), name, None, f"not a readable file ({err.strerror or err})")
                    continue
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    yield StoredRecord(str(path), name, None, f"not valid JSON ({err})")
                    continue
                if not isinstance(record, dict):
                    yield StoredRecord(str(path), name, None, "a run record must be a JSON object")
                    continue
                yield StoredRecord(str(path), name, record)

    def provenance(self) -> dict[str, Any]:
        """What a fit records about its input: the store kind, where it is, and the content revision (for a Hub
        snapshot: the repo, the endpoint and the commit sha)."""
        if self.source:
            return {**self.source, "root": str(self.root)}
        return {"kind": "local", "root": str(self.root), "revision": self.revision()}

    def metrics_path(self, study: str, run_id: str) -> Path:
        return self.root / layout.metrics_path(study, run_id)

    def put_metrics(self, study: str, run_id: str, path: str | Path) -> Path:
        """Copy a run's metrics.jsonl (its complete lines) to runs/<study>/<run_id>/metrics.jsonl."""
        dst = self.metrics_path(study, run_id)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.write_bytes(complete_lines(Path(path).read_bytes()))
        os.replace(tmp, dst)
        return dst

    def put_model(self, run_id: str, folder: str | Path, *, study: str | None = None,
                  card: str | None = None) -> Path:
        """Copy a model folder (`layout.model_files`: safetensors + config, pickle weights refused) into
        models/<run_id>/, with its model card as README.md when given (`study` is the Hub's repo name part)."""
        files = layout.model_files(folder)
        dst = self.model_path(run_id)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, path in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, tmp / name)
        if card is not None:
            (tmp / "README.md").write_text(card)
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)
        return dst

    def model_path(self, run_id: str) -> Path:
        return self.root / layout.model_path(run_id)

    def fetch_model(self, run_id: str, *, study: str | None = None, revision: str | None = None) -> Path:
        """The folder of a run's kept model (checked: safetensors only); `ditlaws.publish.load_kept_model`
        loads it."""
        path = self.model_path(run_id)
        if not path.is_dir():
            raise UserError(f"{path}: no kept model for run {run_id!r} in the store")
        layout.check_safetensors((p.name for p in path.iterdir()), str(path))
        return path

    def revision(self) -> str:
        """A content fingerprint of all run records (a local stand-in for a Hub commit sha); for a Hub snapshot,
        its commit sha."""
        if self.source and self.source.get("revision"):
            return str(self.source["revision"])
        digest = hashlib.sha256()
        for path in sorted((self.root / RUNS).glob("*/*.json")):
            digest.update(str(path.relative_to(self.root)).encode())
            digest.update(path.read_bytes() if path.is_file() else b"")  # a folder / dangling link: its name only
        return "local-" + digest.hexdigest()[:16]


def complete_lines(data: bytes) -> bytes:
    """The complete lines of a file being appended to (a half-written last line is left for the next copy)."""
    end = data.rfind(b"\n")
    return data[:end + 1] if end >= 0 else b""


def _read_record(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not a valid run record ({err.msg} at line {err.lineno})") from None
