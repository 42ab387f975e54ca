"""The laws' formulas, for one parameter set or a batch of bootstrap draws, and the compact codec of those draws.

Every number that fit_laws.py prints and that the prediction API (`ditlaws.laws.predict`) returns is computed by
these functions, so a prediction read back from fit.json equals the fit's own.

* ``power``:  y = k·C^e, parameters (ln k, e)
* ``floor``:  y = E + A·C^(-alpha), parameters (E, ln A, alpha)   (a compute-optimal loss with a floor E)
* ``parametric``: L(N, D) = E + A/N^alpha + B/D^beta (Approach 3), parameters ``THETA`` = (ln A, ln B, ln E,
  alpha, beta); under C = 6·N·D its optimum is N_opt = G·(C/6)^(beta/(alpha+beta)),
  D_opt = (C/6)^(alpha/(alpha+beta)) / G with G = (alpha·A / (beta·B))^(1/(alpha+beta)).
"""

from __future__ import annotations

import base64

import numpy as np

POWER_PARAMS = ("ln_coef", "exponent")
FLOOR_PARAMS = ("E", "ln_A", "alpha")
THETA = ("ln_A", "ln_B", "ln_E", "alpha", "beta")


def _lnC(C) -> np.ndarray:
    return np.log(np.atleast_1d(np.asarray(C, dtype=float)))


def power(params, C) -> np.ndarray:
    """params [..., 2] = (ln k, e) -> y [..., len(C)]."""
    p = np.asarray(params, dtype=float)
    return np.exp(p[..., 0:1] + p[..., 1:2] * _lnC(C))


def floor(params, C) -> np.ndarray:
    """params [..., 3] = (E, ln A, alpha) -> y [..., len(C)]."""
    p = np.asarray(params, dtype=float)
    return p[..., 0:1] + np.exp(p[..., 1:2] - p[..., 2:3] * _lnC(C))


def parametric_loss(theta, N, D) -> np.ndarray:
    """theta [..., 5] -> L(N, D) broadcast over the trailing axis of N and D."""
    t = np.asarray(theta, dtype=float)
    lnN, lnD = np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))
    ln_a, ln_b, ln_e, alpha, beta = (t[..., i:i + 1] for i in range(5))
    return np.exp(ln_a - alpha * lnN) + np.exp(ln_b - beta * lnD) + np.exp(ln_e)


def parametric_optimum(theta, C) -> dict[str, np.ndarray]:
    """theta [..., 5] -> {"N_opt", "D_opt", "L_opt"} each [..., len(C)]: the closed-form allocation under C = 6ND."""
    t = np.asarray(theta, dtype=float)
    ln_a, ln_b, _, alpha, beta = (t[..., i:i + 1] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = alpha + beta
        ln_g = (np.log(alpha) + ln_a - np.log(beta) - ln_b) / s
        ln_c6 = _lnC(C) - np.log(6.0)
        ln_n = ln_g + beta / s * ln_c6
        ln_d = alpha / s * ln_c6 - ln_g
    N, D = np.exp(ln_n), np.exp(ln_d)
    return {"N_opt": N, "D_opt": D, "L_opt": parametric_loss(t, N, D)}


def parametric_exponents(theta) -> dict[str, np.ndarray]:
    """Exponents of N_opt and D_opt in C: beta/(alpha+beta) and alpha/(alpha+beta)."""
    t = np.asarray(theta, dtype=float)
    alpha, beta = t[..., 3], t[..., 4]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"N_opt": beta / (alpha + beta), "D_opt": alpha / (alpha + beta)}


def evaluate(form: str, params, C) -> np.ndarray:
    """A law's value(s) at C for the forms that depend on C alone ("power", "floor")."""
    if form == "power":
        return power(params, C)
    if form == "floor":
        return floor(params, C)
    raise ValueError(f"unknown law form {form!r}")


def quantize(draws: np.ndarray) -> np.ndarray:
    """Round draws to float32 (what fit.json stores), back as float64: the fit uses exactly what it writes."""
    return np.asarray(draws, dtype=np.float32).astype(np.float64)


def encode_draws(draws: np.ndarray, names: tuple[str, ...]) -> dict:
    """[R, p] float draws -> {"names", "dtype": "float32", "shape", "base64"} (little-endian, row-major)."""
    arr = np.ascontiguousarray(np.asarray(draws, dtype="<f4"))
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ValueError(f"draws of shape {arr.shape} do not match parameters {names}")
    return {"names": list(names), "dtype": "float32", "shape": list(arr.shape),
            "base64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_draws(blob: dict) -> np.ndarray:
    """The inverse of ``encode_draws``: [R, p] float64 (NaN rows are resamples that gave no fit)."""
    if blob.get("dtype") != "float32":
        raise ValueError(f"draws: unsupported dtype {blob.get('dtype')!r}")
    raw = base64.b64decode(blob["base64"])
    return np.frombuffer(raw, dtype="<f4").reshape(blob["shape"]).astype(np.float64)


def a2_bias_at(bias: dict | None, C) -> np.ndarray | None:
    """ln(law through Approach 2's simulated vertices / law through the surface's true minima) at C: how far the
    law's prediction sits from what its budgets' true optima would give (``ditlaws.laws.a2bias``). None when the
    bias was not measured or the optima were corrected for it before fitting."""
    if not bias or bias.get("corrected"):
        return None
    form = bias["form"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(evaluate(form, np.asarray(bias["params_simulated"]), C)) - \
            np.log(evaluate(form, np.asarray(bias["params_true"]), C))
