"""Background pushes of one training run to the Hub, for the training loop and the sweep runner.

    publisher = RunPublisher(cfg.hub, study=..., run_id=..., run_dir=...)
    publisher.on_log(metrics_row)         # at every metrics.jsonl write: O(1); every hub.push_every_s seconds it
                                          # queues a commit of metrics.jsonl
    publisher.on_end(summary, model_dir)  # at the end: queues model + record + final metrics, waits up to hub.wait_s
    publisher.close(timeout)              # wait for the queue (on_end calls it); True when everything landed

One daemon thread per run does the commits (retries with backoff on 429 / 5xx / time-outs, conflicts retried on
the new parent), so training never waits on the network except for the bounded wait at the end, and a process
that exits never hangs on a push. Nothing raises into the caller; the run folder is only read. What did not land
is in the folder's ledger (hub_push.json), where `ditlaws push <run dir>` finds it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ditlaws.publish.push import LEDGER, PushReport, RunFolder, hub_store, push_run, stage_model, write_ledger
from ditlaws.store.retry import Retry, describe, log


class RunPublisher:
    def __init__(self, hub, *, study: str, run_id: str, run_dir: str | Path, api=None, retry: Retry | None = None):
        self.hub, self.study, self.run_id, self.run_dir = hub, study, run_id, Path(run_dir)
        self.report = PushReport()
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._outstanding = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._last_metrics: float | None = None
        self._metrics_queued = False
        self._final_queued = False
        self._deadline: float | None = None
        self._closed = False
        self.store = None
        try:
            self.store = hub_store(hub, study, api=api, retry=retry)
            self.store.stop = self._should_stop
            write_ledger(self.run_dir, self.store, self._run(), pending=None)
        except Exception as err:  # bad settings must not stop training either: say so once, push nothing
            self.report.failed["setup"] = describe(err)
            log.warning("hub: not pushing run %s (%s)", run_id, describe(err))

    # ---- the calls the training loop makes ----------------------------------------------------------------------
    def on_log(self, record: dict | None = None) -> None:
        """A metrics.jsonl row was written: push the file if push_every_s has passed and no push is queued."""
        try:
            now = time.monotonic()
            if self.store is None or self._closed or self._metrics_queued or self._final_queued:
                return
            if self._last_metrics is not None and now - self._last_metrics < self.hub.push_every_s:
                return
            self._last_metrics, self._metrics_queued = now, True
            self._submit(self._push_metrics)
        except Exception as err:
            log.warning("hub: metrics push of run %s not queued (%s)", self.run_id, describe(err))

    def on_end(self, summary: dict, model_dir: str | Path | None = None, *, record: dict | None = None,
               wait: bool = True) -> bool:
        """Training finished: push the model, the record (`record`, default the summary) and the final metrics;
        then wait up to hub.wait_s (`wait=False`: return at once). True when everything landed."""
        try:
            if self.store is None or self._closed:
                return False
            self._final_queued = True
            record = record if record is not None else summary
            items = ["model"] if self.hub.push_model and model_dir is not None else []
            write_ledger(self.run_dir, self.store, self._run(), pending=[*items, "record", "metrics"])
            staged = self._stage(record, model_dir) if items else None
            self._submit(lambda: self._push_final(record, staged))
            return self.close(self.hub.wait_s) if wait else False
        except Exception as err:
            log.warning("hub: final push of run %s not queued (%s)", self.run_id, describe(err))
            return False

    def close(self, timeout: float | None = None) -> bool:
        """Let queued pushes finish, waiting at most `timeout` seconds (retries stop at that deadline); True when
        nothing failed or is left. The worker thread is a daemon: an unfinished push never blocks the exit."""
        try:
            self._deadline = None if timeout is None else time.monotonic() + timeout
            with self._cond:
                self._cond.wait_for(lambda: self._outstanding == 0, timeout)
                done = self._outstanding == 0
            if not self._closed:  # the worker ends after the jobs queued so far (which stop at the deadline)
                self._closed = True
                self._jobs.put(None)
            if not done:
                log.warning("hub: run %s: pushes still pending after %.0f s; `ditlaws push %s` completes them",
                            self.run_id, timeout or 0, self.run_dir)
            return done and self.report.ok
        except Exception as err:
            log.warning("hub: closing the publisher of run %s failed (%s)", self.run_id, describe(err))
            return False

    def pending_items(self) -> list[str]:
        """What has not landed, as the run folder's ledger says (everything when the publisher never started)."""
        from ditlaws.jsonio import read_json_if_present

        if self.store is None:
            return ["setup"]
        try:
            return list((read_json_if_present(self.run_dir / LEDGER) or {}).get("pending") or [])
        except Exception as err:
            return [f"unknown ({describe(err)})"]

    # ---- the worker ---------------------------------------------------------------------------------------------
    def _submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            self._outstanding += 1
        self._jobs.put(job)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"hub-push-{self.run_id}", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception as err:  # a bug or a bad folder: recorded, never raised into training
                self.report.failed["push"] = describe(err)
                log.warning("hub: push of run %s failed (%s)", self.run_id, describe(err))
            finally:
                with self._cond:
                    self._outstanding -= 1
                    self._cond.notify_all()

    def _should_stop(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _run(self) -> RunFolder:
        return RunFolder(self.run_dir, self.study, self.run_id, None, None)

    def _push_metrics(self) -> None:
        self._metrics_queued = False
        path = self.run_dir / "metrics.jsonl"
        if self._final_queued or not path.is_file():
            return  # the final push carries the metrics
        try:
            self.store.put_metrics(self.study, self.run_id, path)
            sha = self.store.last_commit
            self.report.landed["metrics"] = sha
            self.report.failed.pop("metrics", None)
            write_ledger(self.run_dir, self.store, self._run(), pending=[], landed={"metrics": sha})
        except Exception as err:
            self.report.failed["metrics"] = describe(err)
            log.warning("hub: metrics of run %s did not reach the Hub (%s); the next push retries",
                        self.run_id, describe(err))
            write_ledger(self.run_dir, self.store, self._run(), pending=["metrics"], error=describe(err))

    def _stage(self, record: dict, model_dir: str | Path):
        """The model repo staged here, in the caller's thread (see `stage_model`); None: the push stages it."""
        try:
            return stage_model(self.store, record, Path(model_dir), RunFolder.load(self.run_dir, self.study))
        except Exception as err:
            log.warning("hub: model repo of run %s not staged (%s)", self.run_id, describe(err))
            return None

    def _push_final(self, record: dict, staged=None) -> None:
        report = push_run(self.run_dir, self.hub, study=self.study, record=record, store=self.store, staged=staged)
        self.report.landed.update(report.landed)
        self.report.failed.pop("metrics", None)
        self.report.failed.update(report.failed)
        if report.ok:
            log.info("hub: run %s pushed (%s)", self.run_id, ", ".join(f"{k}: {v}" for k, v in
                                                                     report.landed.items()))
        else:
            log.warning("hub: run %s: %s did not reach the Hub (%s); `ditlaws push %s` completes it (see %s)",
                        self.run_id, ", ".join(report.failed), next(iter(report.failed.values())), self.run_dir,
                        LEDGER)
