"""Compare studies (e.g. in-context vs cross-attention): exponents side by side and their differences.

Studies are independent experiments, each bootstrapped with its own random stream, so the distribution of a
difference is the distribution of (draw from study i) - (draw from study j). A difference is significant at 95 %
when the 95 % interval of that distribution excludes zero. Compared: the power laws of Approach 2 (their
exponents) and Approach 3's exponents of N_opt and D_opt.
"""

from __future__ import annotations

import itertools

import numpy as np

from ditlaws.laws import forms
from ditlaws.laws.bootstrap import summarize
from ditlaws.laws.study import StudyFit

ORDER = ("N_opt", "D_opt", "L_opt", "FID")


def exponent_draws(sf: StudyFit) -> dict[str, tuple[float, np.ndarray]]:
    """Law name -> (point exponent, draws) for every power law, and "approach3.N_opt" / "approach3.D_opt"."""
    out = {name: (float(law.params[1]), law.draws[:, 1]) for name, law in sf.laws.items() if law.form == "power"}
    if sf.a3.status == "fitted":
        point = {"N_opt": sf.a3.model.N_exponent, "D_opt": sf.a3.model.D_exponent}
        for q, d in forms.parametric_exponents(sf.a3.draws).items():
            out[f"approach3.{q}"] = (point[q], d)
    return out


def compare(studies: list[StudyFit]) -> dict:
    per = [exponent_draws(sf) for sf in studies]
    table = []
    for sf, ex in zip(studies, per):
        row = {"study": sf.study}
        for name, (point, draws) in ex.items():
            row[name] = {"exponent": point, **summarize(draws)}
        table.append(row)
    differences = []
    for (a, ea), (b, eb) in itertools.combinations(zip(studies, per), 2):
        for name in sorted(ea.keys() & eb.keys(), key=lambda n: (n.startswith("approach3"), ORDER.index(n)
                                                               if n in ORDER else 9, n)):
            da, db = ea[name][1], eb[name][1]
            n = min(len(da), len(db))
            diff = summarize(da[:n] - db[:n])
            lo, hi = diff["ci95"]
            differences.append({"a": a.study, "b": b.study, "law": name, "difference": ea[name][0] - eb[name][0],
                                **diff, "significant_95": bool(lo is not None and (lo > 0 or hi < 0))})
    return {"table": table, "differences": differences}


def seeds_for(seed: int, n: int) -> list[np.random.Generator]:
    """Independent random streams, one per study."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
