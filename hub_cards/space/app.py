"""The ditlaws Space: did the scaling laws predict held-out runs, and what should I train for my budget?

    python hub_cards/space/app.py --fit outputs/demo/fit/fit.json            # a local fit, on 127.0.0.1:7860
    python hub_cards/space/app.py --hub ORG/STUDY-results [--revision SHA]   # a results repo on the Hub
    python app.py                                                           # on a Space: see ditlaws.space.source

Every number on the page comes from ``ditlaws.laws.predict`` (``load_fit(...).predict(C)`` and its accessors);
this file only lays the page out. ``build_demo(fit, runs)`` builds it without launching (for tests).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gradio as gr

from ditlaws.errors import UserError
from ditlaws.laws.predict import FitResult, load_fit
from ditlaws.space import compute, figures, tables
from ditlaws.space.presets import presets_from_records
from ditlaws.space.source import Source, from_environment, from_fit_file, from_hub
from ditlaws.space.whatif import human, readout, sig, what_if

APP_DIR = Path(__file__).resolve().parent
MODES = ("FLOPs", "GPU-hours")
# system fonts only: the page loads nothing from outside the server (Spaces and offline machines alike)
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def default_budget(fit: FitResult) -> float:
    """What the page shows first: one decade beyond the largest fitted budget."""
    return 10 * (fit.largest_budget or 1e18)


def summary_markdown(fit: FitResult, origin: str) -> str:
    row = fit.exponents()[0]
    laws = []
    for approach, name, sym in (("approach2", "N_opt", "N_opt"), ("approach2", "D_opt", "D_opt"),
                                ("approach2", "L_opt", "L"), ("approach2", "FID", "FID")):
        e = row[approach].get(name)
        if e:
            laws.append(f"{sym} ∝ C^{e['exponent']:.4f} [{e['ci90'][0]:.4f}, {e['ci90'][1]:.4f}]")
    a2 = fit.doc.get("approach2") or {}
    head = " · ".join(laws) or (f"no Approach 2 laws ({str(a2.get('reason') or 'not fitted').rstrip('.')}); the "
                                "numbers below are Approach 3's (the parametric L(N, D) fit) where it was fitted")
    c_lo, c_hi = fit.doc.get("C_min"), fit.largest_budget
    span = f"{c_lo:.3g} – {c_hi:.3g} FLOPs" if c_lo and c_hi else "—"
    return (f"# Scaling laws of `{fit.study}`\n"
            f"{fit.doc.get('n_runs', '?')} runs, compute {span}. {head} (90 % intervals).  \n"
            f"<small>Fit: {origin or fit.source}</small>")


def preset_text(answer: dict, presets: dict | None) -> str:
    p = answer["preset"]
    if p is None:
        return ("— (needs the study's run records for its model geometry: pass --runs STORE, "
                "or deploy with ditlaws space deploy)" if presets is None else "—")
    family = presets["geometry"]["family"]
    return (f"depth {p['depth']}, width {p['width']}, heads {p['heads']} ({family}): "
            f"N = {human(p['N'])}, {p['ratio']:.3g}x N_opt")


def answer_json(answer: dict, peak: float, mfu: float, hours: float) -> dict:
    keys = ("C", "study", "largest_fitted_C", "ratio_to_largest", "N_opt", "D_opt", "images", "loss", "FID",
            "tokens_per_sample", "preset", "warnings", "prediction")
    return {**{k: answer[k] for k in keys}, "gpu_hours": hours, "peak_flops": peak, "mfu": mfu}


def build_demo(fit: FitResult | str | Path | dict, runs=(), presets: dict | None = None,
               origin: str = "") -> gr.Blocks:
    """The page for one fit (a FitResult, a fit.json path or a parsed document), without launching it.

    ``runs``: the study's run records (their model_config sizes the presets); ``presets``: a ready
    {"geometry", "presets"} table (presets.json), which avoids computing it from the records."""
    fit = fit if isinstance(fit, FitResult) else load_fit(fit)
    runs = list(runs)
    presets = presets or presets_from_records([r for r in runs if r.get("study") == fit.study])
    rows = presets["presets"] if presets else None
    budget = default_budget(fit)

    def answer_for(mode, flops_text, gpu_hours, peak_tflops, mfu):
        try:
            peak = compute.peak_flops("", peak_tflops)
            C = (compute.gpu_hours_to_flops(gpu_hours, peak, mfu) if mode == "GPU-hours"
                 else compute.parse_flops(flops_text))
            hours = compute.flops_to_gpu_hours(C, peak, mfu)
            return what_if(fit, C, rows), peak, hours
        except UserError as e:
            raise gr.Error(str(e)) from None

    def on_predict(mode, flops_text, gpu_hours, accelerator, peak_tflops, mfu):
        a, peak, hours = answer_for(mode, flops_text, gpu_hours, peak_tflops, mfu)
        warn = "\n".join(f"> ⚠️ {w}" for w in a["warnings"])
        return (answer_json(a, peak, mfu, hours), sig(a["C"], 6), float(f"{hours:.6g}"), readout(a["N_opt"]),
                readout(a["D_opt"]), readout(a["images"]), readout(a["loss"]), readout(a["FID"]),
                preset_text(a, presets), warn, tables.details(a))

    first, _, first_hours = answer_for("FLOPs", budget, 1.0, compute.ACCELERATORS[compute.DEFAULT_ACCELERATOR] / 1e12,
                                       compute.DEFAULT_MFU)
    with gr.Blocks(title=f"ditlaws: {fit.study}", analytics_enabled=False) as demo:
        gr.Markdown(summary_markdown(fit, origin))

        gr.Markdown("## What should I train?")
        with gr.Row():
            with gr.Column(scale=2):
                mode = gr.Radio(list(MODES), value="FLOPs", label="budget given in")
                flops = gr.Textbox(sig(budget, 6), label="compute budget C (FLOPs)", elem_id="budget_flops")
                hours = gr.Number(float(f"{first_hours:.6g}"), label="GPU-hours", elem_id="gpu_hours")
                accel = gr.Dropdown(list(compute.ACCELERATORS), value=compute.DEFAULT_ACCELERATOR,
                                    label="accelerator")
                peak = gr.Number(compute.ACCELERATORS[compute.DEFAULT_ACCELERATOR] / 1e12,
                                 label="peak dense BF16 TFLOP/s (edit for another chip)", elem_id="peak_tflops")
                mfu = gr.Slider(0.05, 0.9, value=compute.DEFAULT_MFU, step=0.01, label="MFU (model FLOPs utilisation)")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
            with gr.Column(scale=3):
                n_opt = gr.Textbox(readout(first["N_opt"]), label="N_opt (parameters)", elem_id="n_opt")
                d_opt = gr.Textbox(readout(first["D_opt"]), label="D_opt (image tokens)", elem_id="d_opt")
                images = gr.Textbox(readout(first["images"]), label="D_opt (images seen)", elem_id="images")
                loss = gr.Textbox(readout(first["loss"]), label="expected loss", elem_id="loss")
                fid = gr.Textbox(readout(first["FID"]), label="expected FID", elem_id="fid")
                preset = gr.Textbox(preset_text(first, presets), label="nearest preset (width = 64·depth)",
                                    elem_id="preset")
                warnings = gr.Markdown("\n".join(f"> ⚠️ {w}" for w in first["warnings"]), elem_id="warnings")
        with gr.Accordion("every quantity at this budget, both approaches", open=False):
            details = gr.Dataframe(tables.details(first), headers=tables.DETAIL_HEADERS, interactive=False)
            numbers = gr.JSON(answer_json(first, compute.ACCELERATORS[compute.DEFAULT_ACCELERATOR],
                                          compute.DEFAULT_MFU, first_hours), label="the numbers (JSON)")

        gr.Markdown("## Predicted vs actual\nEach held-out budget predicted from the smaller ones (90 % intervals "
                    "as error bars), and every run against the parametric L(N, D) fit (Approach 3). The actual "
                    "values are measured from the held-out budget's runs: *as a measurement* is the 90 % interval "
                    "widened by that measurement's own spread, the one a measured value should fall in.")
        gr.Plot(figures.predicted_vs_actual(fit), format="png", elem_id="pva_plot", show_label=False)
        gr.Dataframe(tables.backtest(fit), headers=tables.BACKTEST_HEADERS, interactive=False, elem_id="backtest")
        gr.Plot(figures.runs_vs_approach3(fit), format="png", elem_id="runs_plot", show_label=False)
        with gr.Accordion("every run", open=False):
            gr.Dataframe(tables.runs(fit), headers=tables.RUN_HEADERS, interactive=False)

        gr.Markdown("## IsoFLOP curves")
        gr.Plot(figures.isoflop(fit), format="png", elem_id="isoflop_plot", show_label=False)
        gr.Markdown("## Power laws\nBands: 90 % run noise (dark) and with extrapolation error (light); "
                    "the orange diamond is the budget above.")
        law_plot = gr.Plot(figures.laws(fit, first["C"]), format="png", elem_id="laws_plot", show_label=False)

        if len(fit.studies) > 1:
            gr.Markdown("## Compare studies\nExponents with 90 % intervals (the paper's Table 1).")
            headers, cells = tables.exponents(fit)
            gr.Dataframe(cells, headers=headers, interactive=False, elem_id="compare_table")
            gr.Plot(figures.compare(fit), format="png", elem_id="compare_plot", show_label=False)

        accel.change(lambda name: compute.ACCELERATORS[name] / 1e12, accel, peak, api_visibility="private")
        inputs = [mode, flops, hours, accel, peak, mfu]
        outputs = [numbers, flops, hours, n_opt, d_opt, images, loss, fid, preset, warnings, details]
        redraw = dict(fn=lambda answer: figures.laws(fit, answer["C"]), inputs=numbers, outputs=law_plot,
                      api_visibility="private")  # the numbers first, the (slower) figure after them
        button.click(on_predict, inputs, outputs, api_name="what_if").then(**redraw)
        flops.submit(on_predict, inputs, outputs, api_visibility="private").then(**redraw)
    return demo


def load_source(args) -> Source:
    if args.fit and args.hub:
        raise UserError("give --fit or --hub, not both")
    if args.fit:
        return from_fit_file(args.fit, runs=args.runs, presets=args.presets)
    if args.hub:
        return from_hub(args.hub, args.revision, args.endpoint)
    return from_environment(APP_DIR)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Serve the ditlaws Space for a fit.")
    p.add_argument("--fit", help="a fit.json written by fit_laws.py")
    p.add_argument("--hub", metavar="ORG/STUDY-results", help="a results dataset repo holding fit/fit.json")
    p.add_argument("--revision", help="with --hub: the commit to read (default: the current one, recorded)")
    p.add_argument("--endpoint", help="with --hub: a Hub endpoint URL (default: HF_ENDPOINT or huggingface.co)")
    p.add_argument("--runs", help="with --fit: the run store folder (its records size the presets)")
    p.add_argument("--presets", help="with --fit: a presets.json (as `ditlaws space deploy` ships)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not port_free(args.host, args.port):  # before the (seconds of) loading and drawing
        print(f"error: --port {args.port}: {args.host}:{args.port} is in use (or not allowed); pick a free port with "
              "--port or GRADIO_SERVER_PORT", file=sys.stderr)
        return 2
    try:
        src = load_source(args)
        demo = build_demo(src.fit, src.runs, src.presets, src.origin)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        demo.launch(server_name=args.host, server_port=args.port, theme=THEME, ssr_mode=False, show_error=True)
    except OSError as e:  # taken between the check and the launch, or a host name that does not resolve
        print(f"error: --host {args.host} --port {args.port}: cannot serve there ({str(e).splitlines()[0]})",
              file=sys.stderr)
        return 2
    return 0


def port_free(host: str, port: int) -> bool:
    """Whether a server can listen on host:port now (the app's port check before it starts gradio)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return True  # leave an unresolvable host to launch, which says so
    family, kind, _, _, address = infos[0]
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
