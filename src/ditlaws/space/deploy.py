"""`ditlaws space deploy`: create or update a Gradio Space repo holding the app, its requirements and the fit.

What the Space repo holds after a deploy (one commit; files of earlier deploys that are gone are deleted):

    README.md requirements.txt app.py   from hub_cards/space/ (README front matter: sdk: gradio)
    fit.json                            the fit it shows (--fit), checked with load_fit first
    presets.json                        the preset table in the study's geometry (from its run records), so the
                                        Space needs no torch to name the nearest preset
    space.json                          {"results_repo", "revision"} with --results-repo: read the fit from there
    ditlaws/                            the library's source (pure Python); the app imports its torch-free part

The token is huggingface_hub's (HF_TOKEN or `hf auth login`); it is never written or printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import ditlaws
from ditlaws.errors import UserError
from ditlaws.laws.predict import load_fit
from ditlaws.space.presets import presets_from_records
from ditlaws.space.source import read_presets, read_records
from ditlaws.store.layout import is_store, require_store

APP_FILES = ("app.py", "README.md", "requirements.txt")


def app_dir() -> Path:
    """hub_cards/space/: inside the package (ditlaws/store/cards is hub_cards/), else next to src/ in a checkout."""
    package = Path(ditlaws.__file__).resolve().parent
    candidates = [package / "store" / "cards" / "space", package.parents[1] / "hub_cards" / "space"]
    for here in candidates:
        if all((here / f).is_file() for f in APP_FILES):
            return here
    raise UserError(f"{candidates[-1]}: the Space's files ({', '.join(APP_FILES)}) are not there; run `ditlaws "
                    "space deploy` from a source checkout of ditlaws (pip install -e .), or pass --app-dir")


def _copy_package(dst: Path) -> int:
    """The ditlaws package's Python sources into dst/ditlaws (no caches); returns the number of files."""
    src = Path(ditlaws.__file__).resolve().parent
    n = 0
    for folder, dirs, names in os.walk(src):  # not into symlinked folders (store/cards -> hub_cards)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not (Path(folder) / d).is_symlink())
        for name in sorted(names):
            if name.endswith(".py"):
                target = dst / "ditlaws" / Path(folder).relative_to(src) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(folder) / name, target)
                n += 1
    return n


def stage(folder: Path, *, fit: str | Path | None, runs: str | Path | None = None, presets: str | Path | None = None,
          results_repo: str | None = None, revision: str | None = None, app: Path | None = None) -> dict:
    """Write every file of the Space into ``folder``; returns what was written (for the report and tests)."""
    if fit is None and results_repo is None:
        raise UserError("ditlaws space deploy: give --fit fit.json (shipped with the app) or --results-repo "
                        "ORG/STUDY-results (read by the Space at start-up)")
    app = Path(app) if app else app_dir()
    for name in APP_FILES:
        if not (app / name).is_file():
            raise UserError(f"--app-dir: {app} has no {name}")
    for path in sorted(app.glob("*.py")) + [app / n for n in APP_FILES if not n.endswith(".py")]:
        shutil.copyfile(path, folder / path.name)
    info = {"files": sorted(p.name for p in folder.iterdir()), "fit": None, "presets": None}
    table = read_presets(Path(presets)) if presets else None
    if fit is not None:
        result = load_fit(fit)  # a bad fit.json is refused here, not on the Space
        shutil.copyfile(fit, folder / "fit.json")
        info["fit"] = {"study": result.study, "studies": result.studies,
                       "sha256": hashlib.sha256(Path(fit).read_bytes()).hexdigest()}
        if table is None:
            root = Path(runs) if runs else Path((result.root.get("provenance") or {}).get("root") or "")
            if runs:
                require_store(root, "--runs")
            if is_store(root):
                table = presets_from_records(read_records(root, [result.study]))
    if table is not None:
        (folder / "presets.json").write_text(json.dumps(table, indent=1) + "\n")
        info["presets"] = len(table["presets"])
    if results_repo:
        (folder / "space.json").write_text(json.dumps({"results_repo": results_repo, "revision": revision}) + "\n")
    info["package_files"] = _copy_package(folder)
    info["files"] = sorted(p.name for p in folder.iterdir())
    return info


def deploy(repo: str, *, fit=None, runs=None, presets=None, results_repo=None, revision=None, endpoint=None,
           private: bool | None = None, app: Path | None = None) -> dict:
    """Create (or reuse) the Space ``repo`` and commit the staged files; returns the stage info + commit."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from ditlaws.store.retry import describe

    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UserError(f"--repo: {repo!r} is not <org>/<space>")
    api = HfApi(endpoint=endpoint)
    with tempfile.TemporaryDirectory(prefix="ditlaws-space-") as tmp:
        info = stage(Path(tmp), fit=fit, runs=runs, presets=presets, results_repo=results_repo, revision=revision,
                     app=app)
        study = info["fit"]["study"] if info["fit"] else results_repo
        try:
            url = api.create_repo(repo, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
            commit = api.upload_folder(repo_id=repo, repo_type="space", folder_path=tmp, delete_patterns="*",
                                       commit_message=f"ditlaws space deploy: {study}")
        except HfHubHTTPError as e:
            raise UserError(f"--repo {repo}: the Hub refused the deploy: {str(e).splitlines()[0]}") from None
        except OfflineModeIsEnabled:
            raise UserError(f"--repo {repo}: HF_HUB_OFFLINE is set, so nothing can be deployed; unset it (the "
                            "staged Space is not kept)") from None
        except (httpx2.TransportError, OSError) as e:  # no network, refused, timed out, a bad --endpoint
            raise UserError(f"--repo {repo}: cannot reach the Hub at {api.endpoint}: {describe(e)}") from None
    return {**info, "url": str(url), "commit": commit.oid if commit else None}
