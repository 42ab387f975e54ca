"""The end of a run, in one place: record -> store -> (optionally) model and Hub. The only code that decides to push.

    publisher = start_publisher(cfg.hub, study=..., run_id=..., run_dir=...)   # None unless the run goes to the Hub
    end_of_run(run_dir, cfg.hub, record, model_dir=..., store=..., keep_model=..., publisher=..., wait=True)

train_dit.py (`train(cfg, **run_hooks(cfg))`), a sweep job and a trunk's branches all end here; training itself
never imports this package (it sits above training: the hooks are passed in). Pushes run in the background
(`RunPublisher`); a caller that does not wait (`wait=False`, the in-process sweep) leaves them in `pending()` and
waits for all of them at once with `wait_pending(seconds)`, so a study never waits on the Hub longer than
`hub.wait_s`. What did not land is in each run folder's hub_push.json, where `ditlaws push` finds it.
"""

from __future__ import annotations

from pathlib import Path

_PENDING: list = []  # publishers whose final pushes nobody has waited for yet (in this process)


def start_publisher(hub, *, study: str, run_id: str, run_dir: str | Path):
    """The background Hub publisher of a run when it goes to the Hub (`hub.org` set), else None."""
    if not hub.org:
        return None
    from ditlaws.publish.publisher import RunPublisher

    return RunPublisher(hub, study=study, run_id=run_id, run_dir=run_dir)


def run_hooks(cfg) -> dict:
    """What `ditlaws.training.train` is given to publish a run it trains alone (train_dit.py): `publisher` makes the
    background publisher of its metrics while it trains, `end` ends it here (`end_of_run`: the Hub when `hub.org` is
    set; the model only when training wrote one). `train(cfg, **run_hooks(cfg))`."""
    output = Path(cfg.train.output_dir)

    def publisher(cfg, run_id: str, run_dir: Path):
        return start_publisher(cfg.hub, study=cfg.train.study, run_id=run_id, run_dir=run_dir)

    def end(summary: dict, model_dir: Path, publisher) -> None:
        end_of_run(output, cfg.hub, summary, model_dir=model_dir if (model_dir / "config.json").is_file() else None,
                   publisher=publisher)

    return {"publisher": publisher, "end": end}


def end_of_run(run_dir: str | Path, hub, record: dict, *, model_dir: str | Path | None = None, store=None,
               keep_model: bool = False, publisher=None, wait: bool = True):
    """A finished run: its record into `store` (and its model under models/<run_id> with `keep_model`, noted in
    record["sweep"]["model_dir"]), then model + record + metrics to the Hub in the background, waiting at most
    `hub.wait_s` (`wait=False`: not at all; see `wait_pending`). Returns the publisher (None: nothing to push)."""
    if store is not None:
        from ditlaws.locks import file_lock

        if keep_model and model_dir is not None:
            record.setdefault("sweep", {})["model_dir"] = str(store.put_model(record["run_id"], model_dir))
        with file_lock(store.run_path(record["study"], record["run_id"]), label="end of run", timeout=30):
            store.put_run(record)
    publisher = publisher or start_publisher(hub, study=record["study"], run_id=record["run_id"], run_dir=run_dir)
    if publisher is not None:
        publisher.on_end(record, model_dir, wait=wait)
        if not wait:
            _PENDING.append(publisher)
    return publisher


def end_of_study(store_root: str | Path, hub, study: str, run_ids: list[str], log=print) -> None:
    """The end of a study (a sweep): the runs' background pushes, then whatever did not land yet (and the
    generation metrics) to the results repo, all within hub.wait_s; what is still pending is listed (the run
    folders' ledgers keep it for `ditlaws push`). Nothing when the study does not go to the Hub."""
    if not hub.org:
        return
    import time

    from ditlaws.publish.push import push_store, within

    started = time.monotonic()
    left = wait_pending(hub.wait_s)
    remaining = max(0.0, started + hub.wait_s - time.monotonic())
    report, error = None, None
    try:
        report = within(lambda: push_store(store_root, hub, study=study, within=remaining), remaining)
    except Exception as err:  # a Hub failure never fails the study: it is listed below
        error = f"{type(err).__name__}: {err}"
    if report is not None and report.ok:
        log(f"hub: {len(report.landed)} item(s) pushed to {hub.org}/{study}-results")
        return
    why = error or (next(iter(report.failed.values())) if report is not None else
                    f"no answer within hub.wait_s = {hub.wait_s:g} s")
    runs = left or {run_id: ["record"] for run_id in run_ids}
    listed = "; ".join(f"{run_id}: {', '.join(items) or 'results'}" for run_id, items in runs.items())
    log(f"hub: pending for {len(runs)} run(s) after waiting {time.monotonic() - started:.1f} s (hub.wait_s = "
        f"{hub.wait_s:g}): {listed}; last error: {why}; `ditlaws push {store_root}` completes them")


def pending() -> list:
    return list(_PENDING)


def wait_pending(seconds: float) -> dict[str, list[str]]:
    """Wait for every publisher left by `end_of_run(wait=False)`, all within one deadline of `seconds`; returns
    what has not landed by then: {run_id: [items]} (their ledgers say the same)."""
    import time

    deadline = time.monotonic() + seconds
    left: dict[str, list[str]] = {}
    while _PENDING:
        publisher = _PENDING.pop(0)
        if not publisher.close(max(0.0, deadline - time.monotonic())):
            left[publisher.run_id] = publisher.pending_items()
    return left
