"""Regenerate docs/img/space.png, the README's picture of the Space: the example two-study fit
(ditlaws.space.example) served by hub_cards/space/app.py, opened in headless Chromium, asked about 1.5e21 FLOPs.

    PYTHONPATH=src python docs/img/space_screenshot.py [--out docs/img/space.png] [--budget 1.5e21]

Needs Debian's chromium (apt-get install -y chromium) and Playwright's Python package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ditlaws.space import browser
from ditlaws.space.example import example_fit, example_records
from ditlaws.space.presets import presets_from_records

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"  # this checkout's library, also for the app started in a temporary folder


def capture(out: Path, budget: str, width: int = 1280, full: Path | None = None) -> Path:
    with tempfile.TemporaryDirectory(prefix="ditlaws-shot-") as tmp:
        folder = Path(tmp)
        doc = example_fit()
        (folder / "fit.json").write_text(json.dumps(doc))
        (folder / "presets.json").write_text(json.dumps(presets_from_records(example_records(doc))))
        args = ["--fit", "fit.json", "--presets", "presets.json"]  # relative: the page names "fit.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
        with browser.served_app(args, cwd=folder, env=env) as app, browser.chromium_page(width, 900) as page:
            browser.open_app(page, app.url)
            browser.ask_budget(page, budget)
            for plot in ("pva_plot", "runs_plot", "laws_plot"):
                browser.wait_for_plot(page, plot)
            page.wait_for_function("() => !document.querySelector('.progress-text, .eta-bar')", timeout=60_000)
            box = page.locator("#pva_plot").first.bounding_box()
            page.screenshot(path=str(out), full_page=True,
                            clip={"x": 0, "y": 0, "width": width, "height": box["y"] + box["height"] + 16})
            if full:
                page.screenshot(path=str(full), full_page=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "space.png")
    p.add_argument("--budget", default="1.5e21", help="the budget typed into the page (FLOPs)")
    p.add_argument("--full", type=Path, help="also write the whole page here")
    args = p.parse_args(argv)
    print(capture(args.out.resolve(), args.budget, full=args.full.resolve() if args.full else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
