"""The run store: one layout, one interface, for a local folder (`LocalStore`) and (soon) the Hugging Face Hub.

    runs/<study>/<run_id>.json     one record per run (see docs/ARCHITECTURE.md, "Run record")
    models/<run_id>/               a kept checkpoint in diffusers format (on the Hub: one model repo per run)

Training writes the record, evaluation merges its metrics into it, fit_laws.py reads all records through
`iter_records` (the only reader of the layout).
"""

from ditlaws.store.local import LocalStore, StoredRecord, check_name, merge

__all__ = ["LocalStore", "StoredRecord", "check_name", "merge"]
