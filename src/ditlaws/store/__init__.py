"""The run store, torch-free, at the bottom of the house: one layout and one interface (`RunStore`) for a local
folder (`LocalStore`) and the Hugging Face Hub (`HubStore`).

    runs/<study>/<run_id>.json            one record per run (see docs/ARCHITECTURE.md, "Run record")
    runs/<study>/<run_id>/metrics.jsonl   its training curve
    models/<run_id>/                      a kept checkpoint in diffusers format

On the Hub the runs/ tree is the dataset repo `<org>/<study>-results` and each kept model is a model repo
`<org>/<study>-<run_id>`. The layout is spelled in `layout.py` only; `iter_records` / `provenance` are the only
reader of it. `open_store("path" | "hub://<org>/<study>")` gives either; `HubStore.snapshot(revision)` (or
`open_results("<org>/<study>-results", revision)`) is a LocalStore over one pinned download. What leaves the
machine after a run (model repos with their pipeline parts, background pushes) is `ditlaws.publish`.
"""

from ditlaws.store.hub import HubStore, check_endpoint, open_results, open_store
from ditlaws.store.layout import check_name, is_store, require_store
from ditlaws.store.local import LocalStore, StoredRecord, merge
from ditlaws.store.protocol import RunStore

__all__ = ["HubStore", "LocalStore", "RunStore", "StoredRecord", "check_endpoint", "check_name", "is_store", "merge",
           "open_results", "open_store", "require_store"]
