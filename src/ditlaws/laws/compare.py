"""Compare studies (e.g. in-context vs cross-attention): exponents side by side and their differences.

Studies are independent experiments, each bootstrapped with its own random stream, so the distribution of a
difference is the distribution of (draw from study i) - (draw from study j). A difference is significant at 95 %
when the 95 % interval of that distribution excludes zero.
"""

from __future__ import annotations

import itertools

import numpy as np

from ditlaws.laws.bootstrap import summarize
from ditlaws.laws.study import StudyFit


def compare(studies: list[StudyFit]) -> dict:
    table = []
    for sf in studies:
        row = {"study": sf.study}
        for name, law in sf.laws.items():
            row[name] = {"exponent": law.exponent, "coef": law.coef, **summarize(sf.law_draws[name][1])}
        table.append(row)
    differences = []
    for a, b in itertools.combinations(studies, 2):
        for name in a.laws.keys() & b.laws.keys():
            da, db = a.law_draws[name][1], b.law_draws[name][1]
            n = min(len(da), len(db))
            diff = summarize(da[:n] - db[:n])
            lo, hi = diff["ci95"]
            differences.append({
                "a": a.study, "b": b.study, "law": name,
                "difference": a.laws[name].exponent - b.laws[name].exponent, **diff,
                "significant_95": bool(lo is not None and (lo > 0 or hi < 0)),
            })
    order = {q: i for i, q in enumerate(("N_opt", "D_opt", "L_opt", "FID"))}
    differences.sort(key=lambda d: (d["a"], d["b"], order.get(d["law"], 9)))
    return {"table": table, "differences": differences}


def seeds_for(seed: int, n: int) -> list[np.random.Generator]:
    """Independent random streams, one per study."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
