"""What leaves the machine after a run, above training: model repos (diffusers format, pipeline parts, cards),
pushes of run folders and stores (`ditlaws push`), the background publisher, and the one end-of-run hook.

    from ditlaws.publish import end_of_run, end_of_study, run_hooks, start_publisher
    from ditlaws.publish import push_run, push_store, load_kept_model

The record store underneath (layout, records, `LocalStore`, `HubStore`) is `ditlaws.store`, which imports no torch;
this package imports the pipeline and the models, lazily, only where a model repo is staged or a model loaded.
"""

from ditlaws.publish.hook import end_of_run, end_of_study, pending, run_hooks, start_publisher, wait_pending
from ditlaws.publish.model_repo import load_kept_model
from ditlaws.publish.push import LEDGER, PushReport, push_run, push_store

__all__ = ["LEDGER", "PushReport", "end_of_run", "end_of_study", "load_kept_model", "pending", "push_run", "push_store",
           "run_hooks", "start_publisher", "wait_pending"]
