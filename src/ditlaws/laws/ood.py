"""In-domain vs out-of-domain loss (the paper's Fig. 4): a straight line through all runs that have both."""

from __future__ import annotations

import numpy as np

from ditlaws.laws.table import RunTable


def ood_fit(table: RunTable) -> dict | None:
    ok = np.isfinite(table.ood_loss)
    if ok.sum() < 3:
        return None
    x, y = table.loss[ok], table.ood_loss[ok]
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1 - np.sum((y - intercept - slope * x) ** 2) / np.sum((y - y.mean()) ** 2)
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2), "n_runs": int(ok.sum()),
            "points": {"loss": x.tolist(), "ood_loss": y.tolist(), "budget": table.budget[ok].tolist()}}
