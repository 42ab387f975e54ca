"""Where the Space's fit comes from: a local fit.json, a results repo on the Hub (one pinned ``snapshot_download``),
or the Space's environment. Each gives a ``Source``: the fit, the study's run records, the preset table.

On a Hub Space (``from_environment``), the first that is set wins:
  the Space variables DITLAWS_RESULTS_REPO=<org>/<study>-results [DITLAWS_RESULTS_REVISION=<sha>]
  space.json next to app.py, {"results_repo", "revision"} (``ditlaws space deploy --results-repo``)
      -> one pinned snapshot of that results repo; its fit/fit.json
  the Space variable DITLAWS_FIT=<path>                      -> that fit.json
  fit.json next to app.py (``ditlaws space deploy --fit``)   -> that fit.json
and presets.json next to app.py (deploy ships it) gives the preset table without torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ditlaws.errors import UserError
from ditlaws.jsonio import read_json_if_present
from ditlaws.laws.predict import FitResult, load_fit
from ditlaws.space.presets import presets_from_records
from ditlaws.store.layout import is_store, require_store

FIT_PATHS = ("fit/fit.json", "fit.json")  # where a results repo keeps its fit (first found wins)
ENV_REPO, ENV_REVISION, ENV_FIT = "DITLAWS_RESULTS_REPO", "DITLAWS_RESULTS_REVISION", "DITLAWS_FIT"


@dataclass
class Source:
    fit: FitResult
    runs: list[dict] = field(default_factory=list)  # the run records of the fit's studies (may be empty)
    presets: dict | None = None  # {"geometry", "presets"}: see ditlaws.space.presets
    origin: str = ""  # what was read, for the page's footer (path, or repo@commit)


def read_records(root: Path, studies: list[str]) -> list[dict]:
    """Valid run records of ``studies`` from a store folder (a local store or a results-repo snapshot)."""
    from ditlaws.store import LocalStore

    store = LocalStore(root)
    return [r.record for s in studies if s in store.studies() for r in store.iter_records(s) if r.record]


def read_presets(path: Path) -> dict | None:
    doc = read_json_if_present(path, "presets.json")
    if doc is None:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("presets"), list):
        raise UserError(f"{path}: a presets.json holds {{'geometry': ..., 'presets': [...]}}")
    return doc


def _space_config(path: Path) -> dict:
    doc = read_json_if_present(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("results_repo"), str):
        raise UserError(f"{path}: a space.json holds {{'results_repo': '<org>/<study>-results', 'revision': ...}}")
    return doc


def _complete(fit: FitResult, runs: list[dict], presets: dict | None, origin: str) -> Source:
    main = [r for r in runs if r.get("study") == fit.study]
    return Source(fit, runs, presets or presets_from_records(main), origin)


def from_fit_file(path: str | Path, runs: str | Path | None = None, presets: str | Path | None = None) -> Source:
    """A local fit.json; run records from ``runs`` (a store folder), else from the local store the fit was made
    from when it still exists (fit.json ``provenance.root``)."""
    fit = load_fit(path)
    origin = str(path)
    root = require_store(runs, "--runs") if runs else None
    prov = fit.root.get("provenance") or {}
    if root is None and prov.get("kind") == "local" and is_store(prov.get("root", "")):
        root = Path(prov["root"])
    records = read_records(root, fit.studies) if root else []
    if root:
        origin += f" (runs from {root})"
    return _complete(fit, records, read_presets(Path(presets)) if presets else None, origin)


def from_hub(repo: str, revision: str | None = None, endpoint: str | None = None) -> Source:
    """The results dataset repo ``<org>/<study>-results`` through the run store's Hub reader (``open_results``:
    one snapshot_download pinned to ``revision``, or to the current commit, which the origin records): fit.json
    from FIT_PATHS (``HubStore.put_fit`` writes fit/) and the run records under runs/."""
    from ditlaws.store.hub import open_results

    api = None
    if endpoint:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=endpoint)
    snapshot = open_results(repo, revision, api=api)
    found = [snapshot.root / p for p in FIT_PATHS if (snapshot.root / p).is_file()]
    if not found:
        raise UserError(f"--hub: {repo} holds no fit ({' or '.join(FIT_PATHS)}); push one with "
                        "HubStore.put_fit(<fit_laws.py --out folder>), or serve a local one with --fit")
    fit = load_fit(found[0])
    commit = snapshot.provenance()["revision"]
    return _complete(fit, read_records(snapshot.root, fit.studies), read_presets(snapshot.root / "presets.json"),
                     f"{repo}@{commit} ({found[0].relative_to(snapshot.root).as_posix()})")


def from_environment(app_dir: Path, environ=os.environ) -> Source:
    """The configuration of a deployed Space (see the module docstring)."""
    shipped = read_presets(app_dir / "presets.json")
    config = _space_config(app_dir / "space.json")
    repo, revision = environ.get(ENV_REPO), environ.get(ENV_REVISION)
    if not repo:
        repo, revision = config.get("results_repo"), config.get("revision")
    if repo:
        src = from_hub(repo, revision or None, environ.get("HF_ENDPOINT") or None)
        src.presets = src.presets or shipped
        return src
    path = Path(environ.get(ENV_FIT) or app_dir / "fit.json")
    if not path.is_file():
        raise UserError(f"no fit to show: {path} does not exist; set {ENV_REPO} (a results repo) or {ENV_FIT}, "
                        "or pass --fit / --hub")
    return from_fit_file(path, presets=app_dir / "presets.json" if shipped else None)
