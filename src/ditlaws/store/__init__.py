"""The run store: one layout, one interface, for a local folder (`LocalStore`) and the Hugging Face Hub (`HubStore`).

    runs/<study>/<run_id>.json            one record per run (see docs/ARCHITECTURE.md, "Run record")
    runs/<study>/<run_id>/metrics.jsonl   its training curve
    models/<run_id>/                      a kept checkpoint in diffusers format

On the Hub the runs/ tree is the dataset repo `<org>/<study>-results` and each kept model is a model repo
`<org>/<study>-<run_id>`. Training writes the record (and `RunPublisher` pushes it), evaluation merges its metrics
into it, fit_laws.py reads all records through `iter_records` / `provenance` (the only reader of the layout).
`open_store("path" | "hub://<org>/<study>")` gives either; `HubStore.snapshot(revision)` (or
`open_results("<org>/<study>-results", revision)`) is a LocalStore over one pinned download.
"""

from ditlaws.store.hub import HubStore, open_results, open_store
from ditlaws.store.local import LocalStore, StoredRecord, check_name, merge

__all__ = ["HubStore", "LocalStore", "StoredRecord", "check_name", "merge", "open_results", "open_store"]
