"""The run store on the Hugging Face Hub: LocalStore's layout and interface over a results repo and model repos.

    <org>/<study>-results             dataset repo: runs/<study>/<run_id>.json, runs/<study>/<run_id>/metrics.jsonl,
                                      README.md (the results card: a table of every run, how to refit)
    <org>/<study>-<run_id>            model repo per kept run: the transformer at the root + DiTPipeline parts + card

Reading goes through one `snapshot_download` of the results repo pinned to a commit (`snapshot()`: a LocalStore
whose provenance holds the sha; from the cache when HF_HUB_OFFLINE=1). Writing is a commit per change; commits
that rewrite shared files (a record merged into, the results card) name their parent commit, so two writers at
once never lose each other's runs: the loser gets a conflict and retries on the new parent. Unchanged files are
not committed again, so pushing the same run twice makes no new commit. The token comes from HF_TOKEN or
`hf auth login` (huggingface_hub's own lookup), never from a config file.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ditlaws.errors import UserError
from ditlaws.store.cards import model_repo_name, results_card, results_repo_name
from ditlaws.store.layout import (
    RECORD_PATH,
    check_name,
    check_record,
    check_safetensors,
    metrics_path,
    model_files,
    record_path,
)
from ditlaws.store.local import LocalStore, StoredRecord, complete_lines, merge
from ditlaws.store.retry import Retry, describe, is_transient, log, use_timeout

_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,94}[A-Za-z0-9]$")


def record_bytes(record: dict[str, Any]) -> bytes:
    """A record as LocalStore writes it (sorted keys, 2-space indent), so the same record gives the same bytes."""
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


def check_repo_id(repo_id: str, what: str) -> str:
    org, _, name = repo_id.partition("/")
    if not org or "/" in name or not _REPO_NAME.match(name) or "--" in name or ".." in name:
        raise UserError(f"{what}: {repo_id!r} is not a valid Hub repo id (<org>/<name>: letters, digits, '.', '_', "
                        f"'-', at most 96 characters, no '--' or '..')")
    return repo_id


def check_endpoint(endpoint: str | None, what: str = "hub.endpoint") -> str | None:
    """An endpoint is an http(s) URL with a host (None: HF_ENDPOINT or huggingface.co)."""
    from urllib.parse import urlsplit

    if endpoint is None:
        return None
    try:
        parts = urlsplit(str(endpoint))
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # a bad port
        ok = False
    if not ok or any(c.isspace() for c in str(endpoint)):
        raise UserError(f"{what} {endpoint!r}: give an http(s) URL such as https://huggingface.co")
    return str(endpoint).rstrip("/")


class HubStore:
    """A study's run store on the Hub. `revision` pins what the reading methods see (default: the latest commit,
    taken at the first read and again after each write)."""

    kind = "hub"

    def __init__(self, org: str, study: str, api=None, *, endpoint: str | None = None, private: bool = False,
                 cache_dir: str | Path | None = None, revision: str | None = None, retry: Retry | None = None):
        from huggingface_hub import HfApi

        if not isinstance(org, str) or not org or "/" in org:
            raise UserError(f"hub.org {org!r}: give the Hub user or organisation name (no '/')")
        self.org, self.study = org, check_name("study", study)
        self.api = api if api is not None else HfApi(endpoint=check_endpoint(endpoint))
        self.endpoint = self.api.endpoint
        self.private = private
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self.pinned = revision
        self.retry = retry or Retry()
        use_timeout(self.retry.timeout_s)
        self.stop: Callable[[], bool] | None = None  # set by a publisher: give up retrying when it returns True
        self.results_repo = check_repo_id(results_repo_name(org, study), f"study {study!r}")
        self._reader: LocalStore | None = None
        self._ensured: set[tuple[str, str]] = set()
        self._blobs: dict[str, dict | None] = {}  # git blob id -> parsed record
        self.last_commit: str | None = None  # the sha of this store's latest commit

    @property
    def spec(self) -> str:
        return f"hub://{self.org}/{self.study}"

    def model_repo(self, run_id: str, study: str | None = None) -> str:
        study = check_name("study", study or self.study)
        return check_repo_id(model_repo_name(self.org, study, check_name("run id", run_id)), f"run {run_id!r}")

    # ---- reading: one pinned snapshot ----------------------------------------------------------------------------
    def snapshot(self, revision: str | None = None) -> LocalStore:
        """The results repo at `revision` (default: the latest commit) as a LocalStore, from one snapshot_download
        (cached; offline from the cache with HF_HUB_OFFLINE=1). Its provenance() holds the commit sha."""
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

        where = f"{self.spec} ({self.results_repo} on {self.endpoint})"
        try:
            path = self._call(lambda: snapshot_download(self.results_repo, repo_type="dataset", revision=revision,
                                                        endpoint=self.endpoint, cache_dir=self.cache_dir),
                              f"download of {self.results_repo}")
        except RevisionNotFoundError:
            raise UserError(f"{where}: no revision {revision!r}") from None
        except RepositoryNotFoundError:
            raise UserError(f"{where}: no such results repo (or no access to it)") from None
        except LocalEntryNotFoundError as err:
            raise UserError(f"{where}: cannot download it and it is not in the cache ({describe(err)})") from None
        sha = Path(path).name
        return LocalStore(path, source={"kind": "hub", "repo": self.results_repo, "endpoint": self.endpoint,
                                        "revision": sha, "requested_revision": revision or "main"})

    def reader(self) -> LocalStore:
        if self._reader is None:
            self._reader = self.snapshot(self.pinned)
        return self._reader

    def refresh(self) -> None:
        self._reader = None

    def studies(self) -> list[str]:
        return self.reader().studies()

    def iter_records(self, study: str | None = None) -> Iterator[StoredRecord]:
        return self.reader().iter_records(study)

    def list_runs(self, study: str | None = None) -> list[dict[str, Any]]:
        return self.reader().list_runs(study)

    def get_run(self, study: str, run_id: str) -> dict[str, Any]:
        return self.reader().get_run(study, run_id)

    def has_run(self, study: str, run_id: str) -> bool:
        return self.reader().has_run(study, run_id)

    def run_path(self, study: str, run_id: str) -> PurePosixPath:
        return PurePosixPath(record_path(study, run_id))

    def provenance(self) -> dict[str, Any]:
        return self.reader().provenance()

    def revision(self) -> str:
        return self.reader().revision()

    # ---- writing -------------------------------------------------------------------------------------------------
    def put_run(self, record: dict[str, Any]) -> PurePosixPath:
        """The record in one commit; returns its path in the results repo (the commit sha is `last_commit`)."""
        self.put_runs([record])
        return self.run_path(record["study"], record["run_id"])

    def merge_run(self, record: dict[str, Any]) -> dict[str, Any]:
        """Merge `record` into the stored record of its run (created when absent), atomically on the latest
        commit; returns the merged record."""
        check_record(record)
        path = record_path(record["study"], record["run_id"])
        merged: dict[str, Any] = {}

        def change(current: dict[str, dict]) -> dict[str, bytes]:
            merged.clear()
            merged.update(merge(current.get(path) or {}, record))
            return {path: record_bytes(merged)}

        self._commit_results(change, f"ditlaws: merge into run {record['run_id']}")
        return dict(merged)

    def update_run(self, study: str, run_id: str, update: dict[str, Any]) -> dict[str, Any]:
        path = record_path(study, run_id)
        merged: dict[str, Any] = {}

        def change(current: dict[str, dict]) -> dict[str, bytes]:
            if path not in current:
                raise UserError(f"{self.results_repo}/{path}: no such run in the store")
            merged.clear()
            merged.update(merge(current[path], update))
            return {path: record_bytes(merged)}

        self._commit_results(change, f"ditlaws: update run {run_id}")
        return dict(merged)

    def put_runs(self, records: list[dict[str, Any]], metrics: dict[tuple[str, str], Path] | None = None,
                 message: str | None = None) -> str:
        """Records (and metrics.jsonl files, keyed by (study, run_id)) in one commit with the refreshed results
        card; returns the commit sha (the current one when nothing changed)."""
        files: dict[str, bytes] = {}
        for record in records:
            check_record(record)
            files[record_path(record["study"], record["run_id"])] = record_bytes(record)
        for (study, run_id), path in (metrics or {}).items():
            data = complete_lines(Path(path).read_bytes())
            if data:
                files[metrics_path(study, run_id)] = data
        ids = sorted({r["run_id"] for r in records} | {k[1] for k in (metrics or {})})
        message = message or f"ditlaws: {', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''}"
        return self._commit_results(lambda current: dict(files), message)

    def put_metrics(self, study: str, run_id: str, path: str | Path) -> PurePosixPath:
        """A run's metrics.jsonl so far (complete lines) to runs/<study>/<run_id>/metrics.jsonl; returns that path
        (the commit sha is `last_commit`)."""
        data = complete_lines(Path(path).read_bytes())
        self._commit_files(self.results_repo, "dataset", {metrics_path(study, run_id): data},
                           f"ditlaws: metrics of run {run_id}")
        return PurePosixPath(metrics_path(study, run_id))

    def put_model(self, run_id: str, folder: str | Path, *, study: str | None = None,
                  card: str | None = None) -> PurePosixPath:
        """A model folder (`layout.model_files`: the transformer, and the pipeline parts and shipped config that
        `ditlaws.publish` staged beside it) as the run's model repo, with `card` as README.md; returns the repo
        id."""
        repo = self.model_repo(run_id, study)
        files: dict[str, bytes | Path] = dict(model_files(folder))
        if card is not None:
            files["README.md"] = card.encode()
        self._commit_files(repo, "model", files, f"ditlaws: model of run {run_id}")
        return PurePosixPath(repo)

    def put_fit(self, fit_dir: str | Path) -> str:
        """A fit_laws.py output folder (fit.json, report.md, figures) to fit/ in the results repo, where the Space
        reads it; returns the commit sha."""
        folder = Path(fit_dir)
        if not (folder / "fit.json").is_file():
            raise UserError(f"{folder}: not a fit_laws.py output folder (no fit.json)")
        files = {f"fit/{p.name}": p for p in sorted(folder.iterdir())
                 if p.is_file() and p.suffix in (".json", ".md", ".png", ".csv")}
        return self._commit_files(self.results_repo, "dataset", files, "ditlaws: fit")

    def fetch_model(self, run_id: str, *, study: str | None = None, revision: str | None = None) -> Path:
        """The run's model repo downloaded (configs and safetensors only; a repo with only pickle weights is
        refused); `ditlaws.publish.load_kept_model` loads it."""
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        repo = self.model_repo(run_id, study)
        try:
            info = self._call(lambda: self.api.model_info(repo, revision=revision), f"info of {repo}")
        except (RepositoryNotFoundError, RevisionNotFoundError):
            raise UserError(f"{repo}: no such model repo or revision on {self.endpoint}") from None
        check_safetensors([s.rfilename for s in info.siblings or []], repo)
        return Path(self._call(lambda: snapshot_download(repo, revision=info.sha, endpoint=self.endpoint,
                                                         cache_dir=self.cache_dir,
                                                         allow_patterns=["*.json", "*.safetensors"]),
                               f"download of {repo}"))

    # ---- commits -------------------------------------------------------------------------------------------------
    def _call(self, fn, what: str):
        return self.retry.call(fn, what, stop=self.stop)

    def ensure_repo(self, repo_id: str, repo_type: str) -> None:
        if (repo_id, repo_type) in self._ensured:
            return
        self._call(lambda: self.api.create_repo(repo_id, repo_type=repo_type, private=self.private, exist_ok=True),
                   f"creating {repo_id}")
        self._ensured.add((repo_id, repo_type))

    def _commit_files(self, repo_id: str, repo_type: str, files: dict[str, bytes | Path], message: str) -> str:
        """Add or replace files in one commit (no parent needed: nothing here depends on what is there)."""
        from huggingface_hub import CommitOperationAdd

        self.ensure_repo(repo_id, repo_type)

        def attempt() -> str:
            ops = [CommitOperationAdd(p, f if isinstance(f, bytes) else str(f)) for p, f in sorted(files.items())]
            return self.api.create_commit(repo_id, ops, commit_message=message, repo_type=repo_type).oid

        sha = self.last_commit = self._call(attempt, f"commit to {repo_id}")
        if repo_id == self.results_repo:
            self._reader = None
        log.info("hub: %s -> %s@%s", message, repo_id, sha[:10])
        return sha

    def _commit_results(self, change: Callable[[dict[str, dict]], dict[str, bytes]], message: str) -> str:
        """Read the records at the latest commit, apply `change` (current records by path -> files to write),
        rebuild the results card from the outcome, and commit on that parent; a conflict starts over."""
        from huggingface_hub import CommitOperationAdd

        self.ensure_repo(self.results_repo, "dataset")

        def attempt() -> str:
            head = self.api.repo_info(self.results_repo, repo_type="dataset").sha
            current = self._records_at(head)
            files = change(current)
            after = dict(current)
            after.update({p: json.loads(b) for p, b in files.items() if RECORD_PATH.match(p)})
            records = [r for p, r in after.items() if isinstance(r, dict) and _card_ready(r, p)]
            files["README.md"] = results_card(records, org=self.org, study=self.study).encode()
            ops = [CommitOperationAdd(p, b) for p, b in sorted(files.items())]
            return self.api.create_commit(self.results_repo, ops, commit_message=message, repo_type="dataset",
                                          parent_commit=head).oid

        sha = self.last_commit = self._call(attempt, f"commit to {self.results_repo}")
        self._reader = None
        log.info("hub: %s -> %s@%s", message, self.results_repo, sha[:10])
        return sha

    def _records_at(self, sha: str) -> dict[str, dict | None]:
        """Every record file at a commit (path -> parsed record, None when unreadable), through the HF cache."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.hf_api import RepoFile

        files = [f for f in self.api.list_repo_tree(self.results_repo, repo_type="dataset", revision=sha,
                                                    recursive=True)
                 if isinstance(f, RepoFile) and RECORD_PATH.match(f.path)]
        out: dict[str, dict | None] = {}
        for f in files:
            if f.blob_id not in self._blobs:  # a record already read (same git blob) is not fetched again
                local = hf_hub_download(self.results_repo, f.path, repo_type="dataset", revision=sha,
                                        endpoint=self.endpoint, cache_dir=self.cache_dir)
                try:
                    self._blobs[f.blob_id] = json.loads(Path(local).read_bytes())
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self._blobs[f.blob_id] = None
            out[f.path] = copy.deepcopy(self._blobs[f.blob_id])
        return out


def _card_ready(record: dict, path: str) -> bool:
    study, run_id = RECORD_PATH.match(path).groups()
    return record.get("study") == study and record.get("run_id") == run_id


def open_store(spec: str | Path, *, revision: str | None = None, api=None, cache_dir: str | Path | None = None,
               retry: Retry | None = None) -> LocalStore | HubStore:
    """A store from a path (LocalStore) or `hub://<org>/<study>` (HubStore; the endpoint from HF_ENDPOINT or the
    `api` given)."""
    text = str(spec)
    if not text.startswith("hub://"):
        if revision is not None:
            raise UserError(f"--revision applies to a Hub store (hub://<org>/<study>), not to {text}")
        return LocalStore(text)
    parts = text[len("hub://"):].strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise UserError(f"{text}: a Hub store is hub://<org>/<study>")
    return HubStore(parts[0], parts[1], api, revision=revision, cache_dir=cache_dir, retry=retry)


def open_results(repo_id: str, revision: str | None = None, *, api=None, cache_dir: str | Path | None = None,
                 retry: Retry | None = None) -> LocalStore:
    """`fit_laws.py --hub <org>/<study>-results [--revision SHA]` and the Space: that results repo at `revision`
    as a LocalStore (one pinned snapshot_download; its provenance() holds the commit sha)."""
    org, _, name = str(repo_id).partition("/")
    if not org or not name.endswith("-results") or "/" in name or len(name) <= len("-results"):
        raise UserError(f"--hub {repo_id}: give a results repo id, <org>/<study>-results")
    store = HubStore(org, name[: -len("-results")], api, cache_dir=cache_dir, retry=retry)
    return store.snapshot(revision)


__all__ = ["HubStore", "is_transient", "metrics_path", "open_results", "open_store", "record_bytes", "record_path"]
