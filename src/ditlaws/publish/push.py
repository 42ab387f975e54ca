"""Push what is on disk to the Hub: a run folder (`push_run`) or a whole local store (`push_store`), and the
`ditlaws push` command. Everything is idempotent: what is already on the Hub is not committed again, so pushing
after any failure (server down, a killed push) completes the Hub copy without duplicates.

A run folder keeps a ledger, `hub_push.json`: where it pushes (org, endpoint, study, run id), what has landed
(commit shas) and what is still pending with the last error. The local files are only ever read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ditlaws.config import HubConfig
from ditlaws.errors import UserError
from ditlaws.jsonio import read_json_if_present, write_json_atomic
from ditlaws.paths import check_writable
from ditlaws.store import layout
from ditlaws.store.cards import model_card
from ditlaws.store.hub import HubStore
from ditlaws.store.local import LocalStore
from ditlaws.store.retry import Retry, describe

LEDGER = "hub_push.json"
log = logging.getLogger("ditlaws.store")


def hub_store(hub: HubConfig, study: str, *, api=None, retry: Retry | None = None, cache_dir=None) -> HubStore:
    if not hub.org:
        raise UserError("hub.org: set the Hub user or organisation to push to (--hub.org ORG)")
    retry = retry or Retry(timeout_s=hub.timeout_s)
    return HubStore(hub.org, study, api, endpoint=hub.endpoint, private=hub.private, retry=retry, cache_dir=cache_dir)


@dataclass
class StagedModel:
    """A model repo staged on disk with its card, ready to upload (`stage_model`); `cleanup()` removes it."""

    folder: Path
    card: str

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.folder.parent, ignore_errors=True)


def stage_model(store: HubStore, record: dict, model_dir: Path, run: RunFolder | None) -> StagedModel:
    """A kept model's repo staged in a temporary folder: the card from the record (and the run folder when there is
    one), the pipeline parts and the shipped config beside the weights. It loads the model, so it runs in the
    caller's thread: loading patches torch process-wide (accelerate's empty-weights init), which must never
    overlap a training run building its model."""
    import tempfile

    from ditlaws.publish.model_repo import stage_model_repo

    config = run.config if run else None
    card = model_card(record, org=store.org, run_config=config, metrics=run.metrics_rows() if run else [],
                      has_text_encoder=((config or {}).get("data") or {}).get("text_encoder") == "builtin")
    folder = Path(tempfile.mkdtemp(prefix="ditlaws-model-")) / "repo"
    folder.mkdir()
    try:
        stage_model_repo(model_dir, folder, data_config=run.data_config() if run else None,
                         train_config=run.shipped_config() if run else None)
    except BaseException:
        StagedModel(folder, card).cleanup()
        raise
    return StagedModel(folder, card)


def put_model_repo(store: HubStore, study: str, run_id: str, record: dict, model_dir: Path,
                   run: RunFolder | None, staged: StagedModel | None = None) -> str:
    """A kept model as its model repo (staged here unless `staged` is given); returns the repo id."""
    staged = staged or stage_model(store, record, model_dir, run)
    try:
        return str(store.put_model(run_id, staged.folder, study=study, card=staged.card))
    finally:
        staged.cleanup()


@dataclass
class PushReport:
    """What one push did: items that landed (with their commit or repo) and items that did not (with why)."""

    landed: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class RunFolder:
    """A train_dit.py run folder, read only: its record when finished, its config, metrics and model."""

    path: Path
    study: str
    run_id: str
    record: dict | None
    config: dict | None  # config.yaml as written by training (resolved)

    @classmethod
    def load(cls, path: str | Path, study: str | None = None) -> RunFolder:
        path = Path(path)
        record = read_json_if_present(path / "summary.json")
        ledger = read_json_if_present(path / LEDGER) or {}
        config = _read_yaml(path / "config.yaml")
        train = (config or {}).get("train") or {}
        study = study or (record or {}).get("study") or ledger.get("study") or train.get("study")
        run_id = (record or {}).get("run_id") or ledger.get("run_id") or train.get("run_id")
        if not study or not run_id:
            raise UserError(f"{path}: not a finished run folder (no summary.json) and no {LEDGER} or "
                            f"train.run_id naming its run")
        return cls(path, study, run_id, record, config)

    @property
    def metrics(self) -> Path | None:
        path = self.path / "metrics.jsonl"
        return path if path.is_file() else None

    @property
    def model_dir(self) -> Path | None:
        path = self.path / "model"
        return path if (path / "config.json").is_file() else None

    def hub_config(self) -> dict:
        return dict((self.config or {}).get("hub") or {})

    def data_config(self):
        from ditlaws.config import DataConfig
        from ditlaws.options import section_from_dict

        data = (self.config or {}).get("data")
        return section_from_dict(DataConfig, data, "data") if isinstance(data, dict) else None

    def shipped_config(self) -> str | None:
        """The resolved config as pushed with the model: no Hub section (a reproduction pushes nowhere unless
        asked) and a fresh output folder."""
        if self.config is None:
            return None
        cfg = {k: v for k, v in self.config.items() if k != "hub"}
        cfg["train"] = {**(cfg.get("train") or {}), "output_dir": f"outputs/{self.run_id}", "resume": None}
        return yaml.safe_dump(cfg, sort_keys=False)

    def metrics_rows(self) -> list[dict]:
        return read_metrics(self.metrics) if self.metrics else []


def read_metrics(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def push_run(run_dir: str | Path, hub: HubConfig, *, study: str | None = None, record: dict | None = None,
             store: HubStore | None = None, api=None, retry: Retry | None = None,
             staged: StagedModel | None = None) -> PushReport:
    """Push a run folder: the model repo (finished runs, `hub.push_model`), then the record and metrics.jsonl in
    one commit to the results repo. `record` replaces summary.json (e.g. the sweep's record with its evaluation).
    Never raises for Hub failures: they are in the report and the folder's ledger."""
    run = RunFolder.load(run_dir, study)
    record = record if record is not None else run.record
    store = store or hub_store(hub, run.study, api=api, retry=retry)
    report = PushReport()
    items = (["model"] if model_due(hub, record, run) else []) + \
            (["record"] if record is not None else []) + (["metrics"] if run.metrics else [])
    write_ledger(run.path, store, run, pending=items)
    if "model" in items:
        try:
            report.landed["model"] = put_model_repo(store, run.study, run.run_id, record, run.model_dir, run,
                                                    staged)
        except UserError:
            raise
        except Exception as err:
            report.failed["model"] = describe(err)
    results = [i for i in items if i != "model"]
    if results:
        try:
            metrics = {(run.study, run.run_id): run.metrics} if run.metrics else {}
            sha = store.put_runs([record] if record is not None else [], metrics)
            report.landed.update({item: sha for item in results})
        except UserError:
            raise
        except Exception as err:
            report.failed.update({item: describe(err) for item in results})
    write_ledger(run.path, store, run, pending=list(report.failed), landed=report.landed,
                 error="; ".join(f"{k}: {v}" for k, v in report.failed.items()) or None)
    if staged is not None:
        staged.cleanup()
    return report


def model_due(hub: HubConfig, record: dict | None, run: RunFolder) -> bool:
    """A run folder's push includes its model repo: finished (a record), with a model, and `hub.push_model`."""
    return bool(hub.push_model and record is not None and run.model_dir)


def out_of_time(store: HubStore, report: PushReport, items: list[str]) -> bool:
    """True (and `items` marked as not tried) when the store's deadline (`stop`) has passed: a store push that ran
    out of its budget tries nothing more."""
    if store.stop is None or not store.stop():
        return False
    report.failed.update({item: "not tried: the time for this push ran out" for item in items})
    return True


def with_deadline(store: HubStore, seconds: float | None) -> HubStore:
    """`store` whose retries stop, and whose next items are not tried, `seconds` from now (None: no deadline)."""
    if seconds is not None:
        end = time.monotonic() + seconds
        store.stop = lambda: time.monotonic() > end
    return store


def write_ledger(run_dir: Path, store: HubStore, run: RunFolder, *, pending: list[str] | None,
                 landed: dict[str, str] | None = None, error: str | None = None) -> None:
    """hub_push.json: where this run is pushed, what landed, what is pending (None: as before) and the last error
    (no token, ever)."""
    old = read_json_if_present(run_dir / LEDGER) or {}
    if pending is None:
        pending, error = old.get("pending") or [], old.get("error")
    write_json_atomic(run_dir / LEDGER, {
        "org": store.org, "endpoint": store.endpoint, "private": store.private, "study": run.study,
        "run_id": run.run_id, "results_repo": store.results_repo, "model_repo": store.model_repo(run.run_id, run.study),
        "landed": {**(old.get("landed") or {}), **(landed or {})}, "pending": pending, "error": error,
    })


def push_store(store_dir: str | Path, hub: HubConfig, *, study: str | None = None, api=None,
               retry: Retry | None = None, within: float | None = None) -> PushReport:
    """Push a local store: per study, the kept models (models/<run_id>/) as model repos, then every record with
    its metrics (runs/<study>/<run_id>/metrics.jsonl, or the run folder's) in one results commit."""
    local = LocalStore(store_dir)
    studies = [study] if study else local.studies()
    found = {name: valid_records(local, name) for name in studies}
    if not any(found.values()):
        raise UserError(f"{store_dir}: no run records (runs/<study>/<run_id>.json)"
                        + (f" for study {study!r}" if study else ""))
    report = PushReport()
    end = None if within is None else time.monotonic() + within
    for name, records in found.items():
        if not records:
            continue
        store = with_deadline(hub_store(hub, name, api=api, retry=retry),
                              None if end is None else end - time.monotonic())
        metrics: dict[tuple[str, str], Path] = {}
        for record in records:
            run_id = record["run_id"]
            run_dir = Path(((record.get("sweep") or {}).get("output_dir")) or "/nonexistent")
            for candidate in (local.metrics_path(name, run_id), run_dir / "metrics.jsonl"):
                if candidate.is_file():
                    metrics[(name, run_id)] = candidate
                    break
            model_dir = local.model_path(run_id)
            if hub.push_model and (model_dir / "config.json").is_file() and \
                    not out_of_time(store, report, [f"{name}/{run_id}/model"]):
                run = RunFolder.load(run_dir, name) if (run_dir / "config.yaml").is_file() else None
                try:
                    report.landed[f"{name}/{run_id}/model"] = put_model_repo(store, name, run_id, record, model_dir,
                                                                            run)
                except UserError:
                    raise
                except Exception as err:
                    report.failed[f"{name}/{run_id}/model"] = describe(err)
        if out_of_time(store, report, [f"{name}/records"]):
            continue
        try:
            report.landed[f"{name}/records"] = store.put_runs(records, metrics, f"ditlaws: {len(records)} runs of "
                                                                                f"{name}")
        except UserError:
            raise
        except Exception as err:
            report.failed[f"{name}/records"] = describe(err)
    return report


def valid_records(local: LocalStore, study: str) -> list[dict]:
    """The study's records that name their own file (study, run_id); the others are listed and left out."""
    records = []
    for item in local.iter_records(study):
        rec = item.record
        stem = Path(item.where).stem
        if rec is None or rec.get("study") != study or rec.get("run_id") != stem:
            why = item.error or f"its study/run_id do not match the file (runs/{study}/{stem}.json)"
            log.warning("skipped %s: %s", item.where, why)
            continue
        records.append(rec)
    return records


def store_folder(path: Path) -> Path | None:
    """The run store in `path`: the folder itself (runs/<study>/<run_id>.json) or a sweep's <out>/store (whose
    <out>/runs/ holds run folders, not records)."""
    if layout.is_store(path / "store"):
        return path / "store"
    runs = path / layout.RUNS
    if runs.is_dir() and not (path / "summary.json").is_file() and not any(runs.glob("*/summary.json")):
        return path
    return None


# ---------------------------------------------------------------------------------------------------------------
# ditlaws push


def main(argv: list[str] | None = None) -> int:
    from ditlaws.options import ArgumentParser, add_arguments, fail, from_arguments

    parser = ArgumentParser(prog="ditlaws push", description="Push a run folder or a local run store to the Hub: "
                            "whatever did not reach it (nothing is committed twice).")
    parser.add_argument("path", help="a train_dit.py run folder, a store folder (runs/<study>/<run_id>.json) or a "
                        "sweep's output folder (its store/)")
    parser.add_argument("--study", help="only this study (store), or the study to push the run under")
    add_arguments(parser, HubConfig, style="dotted", section="hub")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    path = Path(args.path)
    logging.basicConfig(level=logging.ERROR, format="%(message)s")  # retries are summed up in one line below
    try:
        if not path.is_dir():
            what = "is a file, not a folder" if path.exists() else "no such folder"
            raise UserError(f"{path}: {what} (give a run folder or a store folder)")
        store = store_folder(path)
        if store is not None:
            hub = from_arguments(HubConfig, args, section="hub")
            started = time.monotonic()
            report = within(lambda: push_store(store, hub, study=args.study, within=hub.wait_s), hub.wait_s) or \
                PushReport(failed={"store": f"no answer within hub.wait_s = {hub.wait_s:g} s"})
        else:
            run = RunFolder.load(path, args.study)
            check_writable(path / LEDGER, "")  # the ledger of what landed is written there
            base = {**run.hub_config(), **{k: v for k, v in (read_json_if_present(path / LEDGER) or {}).items()
                                           if k in ("org", "endpoint", "private")}}
            hub = from_arguments(HubConfig, args, section="hub", base={k: v for k, v in base.items()
                                                                      if k in HUB_FIELDS})
            hub_run = hub_store(hub, run.study)
            staged = stage_model(hub_run, run.record, run.model_dir, run) if model_due(hub, run.record, run) \
                else None  # local work (loading the model), before the Hub's clock starts
            started = time.monotonic()
            report = within(lambda: push_run(path, hub, study=args.study, store=with_deadline(hub_run, hub.wait_s),
                                             staged=staged), hub.wait_s) or unfinished(path, hub)
            if staged is not None:  # the upload gave up (or is done): the process ends here either way
                staged.cleanup()
    except UserError as err:
        fail(str(err))
    for item, where in report.landed.items():
        print(f"pushed {item}: {where}")
    if report.failed:
        why = next(iter(report.failed.values()))
        print(f"error: {', '.join(report.failed)} did not reach {hub.endpoint or 'the Hub'} (gave up after "
              f"{time.monotonic() - started:.1f} s; hub.wait_s = {hub.wait_s:g}, hub.timeout_s = "
              f"{hub.timeout_s:g}): {why}; run the same command again", file=sys.stderr)
    return 0 if report.ok else 1


def within(fn, seconds: float):
    """fn() in a daemon thread, waited for at most `seconds`: its result, or None when it is still running (a Hub
    call stuck past every time limit, inside huggingface_hub's own retries, cannot hold the caller). Its
    exception is raised here."""
    import threading

    box: dict = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the caller
            box["error"] = err

    worker = threading.Thread(target=work, name="hub-push", daemon=True)
    worker.start()
    worker.join(seconds)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def unfinished(run_dir: Path, hub: HubConfig) -> PushReport:
    """What a push that ran out of time left pending, from the run folder's ledger."""
    ledger = read_json_if_present(run_dir / LEDGER) or {}
    why = ledger.get("error") or f"no answer within hub.wait_s = {hub.wait_s:g} s"
    return PushReport(failed={item: why for item in ledger.get("pending") or ["push"]})


HUB_FIELDS = {f.name for f in dataclasses.fields(HubConfig)}


def _read_yaml(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return data if isinstance(data, dict) else None
