"""The Space: the Gradio app in hub_cards/space/ and what it is built from (every number through
``ditlaws.laws.predict``): ``whatif`` (the answer at one budget), ``compute`` (FLOPs <-> GPU-hours), ``presets``
(the nearest preset size), ``figures`` and ``tables`` (the page's plots and tables), ``source`` (a local fit.json,
a results repo, or a deployed Space's environment), ``deploy`` (``ditlaws space deploy``), ``example`` (a small
two-study fit for tests and the screenshot), ``browser`` (headless Chromium for tests and the screenshot).

    ditlaws space deploy --repo ORG/SPACE --fit outputs/demo/fit/fit.json [--runs STORE] [--endpoint URL]
"""

from __future__ import annotations

import json
import sys

from ditlaws.errors import UserError, report


def _parser():
    from ditlaws.options import ArgumentParser  # one-line usage errors; imported here: the app needs none of it

    p = ArgumentParser(prog="ditlaws space", description="The ditlaws Gradio Space.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deploy", help="create or update a Space repo with the app, its requirements and a fit")
    d.add_argument("--repo", required=True, metavar="ORG/SPACE", help="the Space repo (created if missing)")
    d.add_argument("--fit", help="the fit.json the Space shows (shipped with it)")
    d.add_argument("--runs", help="the run store the fit was made from (its records size the presets; default: "
                                  "the local store fit.json names, when it exists)")
    d.add_argument("--presets", help="a ready presets.json instead of --runs")
    d.add_argument("--results-repo", metavar="ORG/STUDY-results",
                   help="the Space reads fit/fit.json from this results repo at start-up (instead of or over --fit)")
    d.add_argument("--revision", help="with --results-repo: the commit the Space pins")
    d.add_argument("--endpoint", help="Hub endpoint URL (default: HF_ENDPOINT or https://huggingface.co)")
    d.add_argument("--private", action="store_true", help="create the Space private")
    d.add_argument("--app-dir", help="the app's folder (default: hub_cards/space/ of this checkout)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ditlaws.space.deploy import deploy

    try:
        out = deploy(args.repo, fit=args.fit, runs=args.runs, presets=args.presets, results_repo=args.results_repo,
                     revision=args.revision, endpoint=args.endpoint, private=args.private or None, app=args.app_dir)
    except UserError as e:
        return report(e)
    print(json.dumps({k: out[k] for k in ("url", "commit", "files", "fit", "presets")}, indent=1))
    return 0
