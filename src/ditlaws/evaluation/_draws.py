"""Per-sample seeded draws of (t, noise), streamed in fixed-size forward chunks.

Every sample gets its own generator, seeded from (seed, sample id), so the numbers drawn for a sample do not
depend on the batch size, the order of batches, or how many processes share the work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator

import torch
from tqdm.auto import tqdm

from ditlaws.errors import UserError
from ditlaws.flow import interpolate, velocity_target

BATCH_KEYS = ("latent", "text_states", "text_mask", "pooled")


def sample_generator(seed: int, sample_id: str, stream: str = "") -> torch.Generator:
    """A CPU generator seeded by a stable hash of (seed, stream, sample id)."""
    digest = hashlib.sha256(f"{seed}/{stream}/{sample_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def model_device(model, device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    params = getattr(model, "parameters", None)
    if params is not None:
        for p in params():
            return p.device
    return torch.device("cpu")


def sample_ids(batch: dict, offset: int) -> list[str]:
    """The batch's sample ids, or running indices when the batch has none."""
    if "latent" not in batch:
        raise UserError(f"evaluation batches must be dicts with keys {BATCH_KEYS}; got keys {sorted(batch)}")
    n = batch["latent"].shape[0]
    ids = batch.get("id")
    return [str(i) for i in ids] if ids is not None else [str(offset + i) for i in range(n)]


def _row(batch: dict, key: str, i: int, k: int) -> torch.Tensor | None:
    value = batch.get(key)
    if value is None:
        return None
    return value[i : i + 1].expand(k, *value.shape[1:])


def _cat(parts: list) -> torch.Tensor | None:
    parts = [p for p in parts if p is not None]
    return torch.cat(parts) if parts else None


def stream_draws(
    batches: Iterable[dict],
    *,
    draws_per_sample: int,
    draw_t: Callable[[int, torch.Generator], torch.Tensor],
    seed: int,
    stream: str,
    chunk_rows: int,
    max_samples: int | None = None,
    progress: bool = False,
    desc: str = "",
) -> Iterator[dict]:
    """Yield chunks of <= chunk_rows rows: each sample repeated ``draws_per_sample`` times with its own (t, noise).

    A chunk is a dict with ``sample`` (long [R], running sample index), ``t`` [R], ``noise``, and the batch keys
    ``latent``, ``text_states``, ``text_mask``, ``pooled`` repeated per row.
    """
    keys = ("sample", "t", "noise", *BATCH_KEYS)
    pending: dict[str, list] = {k: [] for k in keys}
    n_rows = n_done = 0
    bar = tqdm(total=max_samples, desc=desc, unit="sample", disable=not progress, leave=False)

    def flush(rows: int) -> dict:
        nonlocal n_rows
        out = {}
        for key, parts in pending.items():
            merged = _cat(parts)
            out[key] = None if merged is None else merged[:rows]
            pending[key] = [] if merged is None else [merged[rows:]]
        n_rows -= rows
        return out

    for batch in batches:
        for i, sid in enumerate(sample_ids(batch, n_done)):
            if max_samples is not None and n_done >= max_samples:
                break
            gen = sample_generator(seed, sid, stream)
            latent = batch["latent"]
            t = draw_t(draws_per_sample, gen)
            noise = torch.randn((draws_per_sample, *latent.shape[1:]), generator=gen, dtype=torch.float32)
            pending["sample"].append(torch.full((draws_per_sample,), n_done, dtype=torch.long))
            pending["t"].append(t.float())
            pending["noise"].append(noise)
            for key in BATCH_KEYS:
                pending[key].append(_row(batch, key, i, draws_per_sample))
            n_rows += draws_per_sample
            n_done += 1
            bar.update(1)
            while n_rows >= chunk_rows:
                yield flush(chunk_rows)
        if max_samples is not None and n_done >= max_samples:
            break
    bar.close()
    if n_rows:
        yield flush(n_rows)


@torch.no_grad()
def squared_errors(model, chunks: Iterable[dict], device=None) -> dict:
    """Run the model on every chunk; per row return the sample index, t, and the sums over dims of (v_hat - v)^2,
    x0^2 and noise^2 (float64)."""
    device = model_device(model, device)
    samples, ts, errs, x0_sq, noise_sq = [], [], [], [], []
    dim = None
    for chunk in chunks:
        x0 = chunk["latent"].to(device, torch.float32)
        noise = chunk["noise"].to(device)
        t = chunk["t"].to(device)
        x_t = interpolate(x0, noise, t)
        cond = {k: None if chunk[k] is None else chunk[k].to(device) for k in ("text_states", "text_mask", "pooled")}
        v_hat = model(x_t, t, cond["text_states"], text_mask=cond["text_mask"], pooled=cond["pooled"])
        err = (v_hat.double() - velocity_target(x0, noise).double()).pow(2).flatten(1).sum(1)
        dim = x0[0].numel()
        samples.append(chunk["sample"])
        ts.append(chunk["t"].double())
        errs.append(err.cpu())
        x0_sq.append(x0.double().pow(2).flatten(1).sum(1).cpu())
        noise_sq.append(noise.double().pow(2).flatten(1).sum(1).cpu())
    if dim is None:
        raise UserError("evaluation got no samples: the validation data is empty (check the data config / split)")
    return {"sample": torch.cat(samples), "t": torch.cat(ts), "sq_err": torch.cat(errs), "x0_sq": torch.cat(x0_sq),
            "noise_sq": torch.cat(noise_sq), "dim": dim}


class eval_mode:
    """Context manager: model.eval() inside, the previous train/eval state restored after."""

    def __init__(self, model):
        self.model = model
        self.was_training = bool(getattr(model, "training", False))

    def __enter__(self):
        if hasattr(self.model, "eval"):
            self.model.eval()
        return self.model

    def __exit__(self, *exc):
        if self.was_training:
            self.model.train()
        return False
