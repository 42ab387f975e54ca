"""Exact likelihood of a flow model through its probability-flow ODE (instantaneous change of variables).

The ODE dx/dt = v(x, t) carries data (t = 0) to noise (t = 1). Along a trajectory the log-density changes as
d log p_t(x_t) / dt = -div v(x_t, t), so integrating from data to noise

    log p0(x0) = log p1(x1) + integral_0^1 div v(x_t, t) dt,     p1 = N(0, I),

and NLL = -log p0(x0). The augmented state (x, integral of div v) is integrated with ``torchdiffeq.odeint`` on the
model's device: ``euler`` with ``steps`` fixed steps (paper default 500; v evaluated at the left end of each step),
or ``rk45``, torchdiffeq's adaptive ``dopri5`` (the Dormand-Prince 5(4) pair, as scipy's RK45) with ``rtol`` /
``atol``. The state is float64 (the model sees it in its own dtype), as the increments of the divergence integral
are small next to log p1.
Divergence: ``exact`` (one backward pass per dimension; for small inputs) or ``hutchinson``:
E_z[z^T (dv/dx) z] with Rademacher z, the probes drawn once per sample (seeded by its id) and held fixed along the
trajectory; with several probes each one's integral is kept, which gives the estimator's own standard error.
The model is conditioned on the sample's caption (the likelihood is log p(x0 | caption)), with no guidance.

Units (``ditlaws.evaluation.statistics``): nats/dim = NLL / D, bits/dim = nats/dim / log 2, and for pixels from
8-bit images the dequantised bits/dim on the 0..255 scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torchdiffeq import odeint
from tqdm.auto import tqdm

from ditlaws.errors import UserError
from ditlaws.evaluation._draws import eval_mode, model_device, sample_generator, sample_ids
from ditlaws.evaluation.statistics import bits, bits_per_dim_8bit, mean_and_sem

METHODS = {"euler": "euler", "rk45": "dopri5"}  # our name -> torchdiffeq's
DIVERGENCES = ("exact", "hutchinson")


def rademacher(shape, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1


def velocity_and_divergence(velocity, x: torch.Tensor, t: torch.Tensor, probes: torch.Tensor | None):
    """v(x, t) [B, ...] and div v: [B, 1] exact, or [B, P] one Hutchinson estimate per probe (probes [P, B, ...])."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        if probes is None:
            flat_v = v.flatten(1)
            div = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
            for i in range(flat_v.shape[1]):
                (grad,) = torch.autograd.grad(flat_v[:, i].sum(), x, retain_graph=True)
                div += grad.flatten(1)[:, i].double()
            return v.detach(), div[:, None]
        estimates = []
        for z in probes:
            (grad,) = torch.autograd.grad((v * z).sum(), x, retain_graph=True)
            estimates.append((grad * z).flatten(1).sum(1).double())
        return v.detach(), torch.stack(estimates, dim=1)


def ode_log_likelihood(
    velocity, x0: torch.Tensor, *, method: str = "euler", steps: int = 500, rtol: float = 1e-5, atol: float = 1e-5,
    probes: torch.Tensor | None = None,
) -> dict:
    """log p0(x0) [B, P] (P = 1 for the exact divergence) for ``velocity(x, t) -> v`` (t a 0-d tensor, x in the
    dtype of x0); also x1 and the number of velocity evaluations (nfe)."""
    if method not in METHODS:
        raise UserError(f"likelihood ODE method {method!r} is not known; valid: {', '.join(METHODS)}")
    n_div = 1 if probes is None else probes.shape[0]
    state = (x0.detach().double(), torch.zeros(x0.shape[0], n_div, dtype=torch.float64, device=x0.device))
    calls = 0

    def rhs(t, state):
        nonlocal calls
        calls += 1
        v, div = velocity_and_divergence(velocity, state[0].to(x0.dtype), t, probes)
        return v.double(), div

    times = torch.tensor([0.0, 1.0], dtype=torch.float64, device=x0.device)
    if method == "euler":
        grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64, device=x0.device)
        options = {"grid_constructor": lambda func, y0, t: grid}
        x1, div_integral = odeint(rhs, state, times, method="euler", options=options)
    else:
        x1, div_integral = odeint(rhs, state, times, method=METHODS[method], rtol=rtol, atol=atol)
    x, div_integral = x1[-1], div_integral[-1]
    dim = x[0].numel()
    log_p1 = -0.5 * x.flatten(1).pow(2).sum(1) - 0.5 * dim * math.log(2 * math.pi)
    return {"log_p0": (log_p1[:, None] + div_integral).cpu(), "x1": x.to(x0.dtype), "nfe": calls}


def ode_nll(
    model,
    batches: Iterable[dict],
    *,
    method: str = "euler",
    steps: int = 500,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    divergence: str = "hutchinson",
    n_probes: int = 1,
    seed: int = 0,
    max_samples: int | None = None,
    pixel_8bit: bool = False,
    device=None,
    progress: bool = False,
) -> dict:
    """Exact NLL (probability-flow ODE) of the validation samples: nats/dim and bits/dim with standard errors."""
    if divergence not in DIVERGENCES:
        raise UserError(f"divergence estimator {divergence!r} is not known; valid: {', '.join(DIVERGENCES)}")
    device = model_device(model, device)
    nll, probe_sem, nfe, done, dim = [], [], 0, 0, None
    bar = tqdm(total=max_samples, desc="nll", unit="sample", disable=not progress, leave=False)
    with eval_mode(model):
        for batch in batches:
            ids = sample_ids(batch, done)
            take = len(ids) if max_samples is None else min(len(ids), max_samples - done)
            if take <= 0:
                break
            x0 = batch["latent"][:take].to(device, torch.float32)
            cond = {k: None if batch.get(k) is None else batch[k][:take].to(device)
                    for k in ("text_states", "text_mask", "pooled")}

            def velocity(x, t, cond=cond):
                t_vec = t.to(torch.float32).expand(x.shape[0])
                return model(x, t_vec, cond["text_states"], text_mask=cond["text_mask"], pooled=cond["pooled"])

            probes = None
            if divergence == "hutchinson":
                shape = (n_probes, *x0.shape[1:])
                probes = torch.stack([rademacher(shape, sample_generator(seed, i, "nll")) for i in ids[:take]], dim=1)
                probes = probes.to(device)  # [P, B, ...]
            out = ode_log_likelihood(velocity, x0, method=method, steps=steps, rtol=rtol, atol=atol, probes=probes)
            per_probe = -out["log_p0"]  # [B, P]
            nll.append(per_probe.mean(1))
            if per_probe.shape[1] > 1:
                probe_sem.append(per_probe.std(1) / math.sqrt(per_probe.shape[1]))
            nfe += out["nfe"]
            dim = x0[0].numel()
            done += take
            bar.update(take)
    bar.close()
    if dim is None:
        raise UserError("NLL evaluation got no samples: the validation data is empty (check the data config / split)")
    nll = torch.cat(nll) / dim
    mean, sem = mean_and_sem(nll)
    result = {
        "nats_per_dim": mean,
        "sem_nats_per_dim": sem,
        "bits_per_dim": bits(mean),
        "per_sample_nats_per_dim": nll.tolist(),
        "n_samples": nll.numel(),
        "dim": dim,
        "method": method,
        "steps": steps if method == "euler" else None,
        "rtol": rtol if method == "rk45" else None,
        "divergence": divergence,
        "n_probes": n_probes if divergence == "hutchinson" else None,
        "function_evaluations": nfe,
        "seed": seed,
    }
    if probe_sem:
        result["hutchinson_sem_per_sample_nats_per_dim"] = (torch.cat(probe_sem) / dim).tolist()
    if pixel_8bit:
        result["bits_per_dim_8bit"] = bits_per_dim_8bit(mean)
    return result
