"""Fit compute-optimal scaling laws to finished runs.

    python fit_laws.py --runs <store dir or csv> --out <dir> [--predict C ...] [--compare other ...]
                       [--bootstrap 1000] [--seed 0] [--flops 6nd|closed_form]

Writes <out>/fit.json, <out>/report.md and figures. Bad input exits with code 2 and a one-line message.
"""

import sys

from ditlaws.laws.cli import main

if __name__ == "__main__":
    sys.exit(main())
