"""Regenerate the README figure: fit_laws.py on a synthetic isoFLOP grid whose optimum follows the paper's laws.

    .venv/bin/python docs/img/make_fig1.py   # writes outputs/readme_fit/ and copies fig1_isoflop.png here
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ditlaws.laws.synthetic import PAPER_LAWS, isoflop_table, paper_truth

out = Path("outputs/readme_fit")
out.mkdir(parents=True, exist_ok=True)
table = isoflop_table(paper_truth(), np.random.default_rng(0), noise_rel=3e-4, fid_law=PAPER_LAWS["FID"],
                      study="paper-truth")
rows = ["budget,N,D,loss,fid,study"] + [
    f"{float(b)!r},{float(n)!r},{float(d)!r},{float(loss)!r},{float(fid)!r},{s}"
    for b, n, d, loss, fid, s in zip(table.nominal.tolist(), table.N.tolist(), table.D.tolist(), table.loss.tolist(),
                                     table.fid.tolist(), table.study)
]
(out / "runs.csv").write_text("\n".join(rows) + "\n")
subprocess.run([sys.executable, "fit_laws.py", "--runs", str(out / "runs.csv"), "--out", str(out),
                "--predict", "1.5e21"], check=True)
shutil.copy(out / "fig1_isoflop.png", Path(__file__).parent / "fig1_isoflop.png")
