"""The `ditlaws` console script: one entry point, one subcommand per tool; each lives in its own module.

    ditlaws <command> [args ...]     e.g. `ditlaws push outputs/my_sweep/store --hub.org ORG`

A subcommand is a `main(argv) -> int` function named in COMMANDS (module path, function); it is imported only
when called, so `ditlaws --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, function, one-line description)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "bench": ("ditlaws.bench", "main", "benchmark the training step against diffusers' DiT and the matmul peak"),
    "prepare": ("ditlaws.data.prepare", "main", "encode a dataset once into parquet shards (latents + text)"),
    "sweep": ("ditlaws.sweep", "main", "plan and run an isoFLOP sweep"),
    "push": ("ditlaws.publish.push", "main", "push a run folder or a run store to the Hub (what did not land)"),
    "features": ("ditlaws.feature_net.train", "main", "train the built-in feature network once (FID, accuracy)"),
    "space": ("ditlaws.space", "main", "deploy the Gradio Space (the fit's predictions) to a Space repo"),
    "coordcheck": ("ditlaws.mup.coordcheck", "main", "μP coordinate check: activation scale vs width, sp and mup"),
    "lrsweep": ("ditlaws.mup.lrsweep", "main", "loss vs learning rate per width, sp and mup; the best lr per width"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ditlaws <command> [args ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, _, desc) in sorted(COMMANDS.items())]
    lines += ["", "`ditlaws <command> --help` describes a command's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; valid: {', '.join(sorted(COMMANDS))}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[name]
    try:
        return int(getattr(importlib.import_module(module), function)(rest) or 0)
    except OSError as err:  # a full disk, a quota or a file-size limit: one line, exit 4 (writes are atomic)
        from ditlaws.errors import report_no_space

        return report_no_space(err, "the output",
                               "files written before are intact: free space and run the command again")


if __name__ == "__main__":
    sys.exit(main())
