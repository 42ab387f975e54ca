"""Checkpoint folders: `<output>/checkpoints/step_<k>`, written by every process, pruned by the main one.

A folder holds what `accelerator.save_state` writes (accelerate 1.15/1.16 names, one model and one optimizer):
`model.safetensors` (the weights; `pytorch_model.bin` with safe_serialization off, `pytorch_model_fsdp_0/` or
`pytorch_model_fsdp.bin` under FSDP), `optimizer.bin` (`optimizer_0/` under FSDP sharded state), one
`random_states_<process>.pkl` per process, and `scheduler.bin` / `sampler.bin` / `scaler.pt` when those exist,
plus our `training_state.json` (step, loss EMA, tail sums, the run's fingerprint). The JSON is written last, after
all processes have saved, so a folder without it is an interrupted save and is never resumed from.
Accelerate 1.15 reads optimizer.bin and the RNG files through `accelerate.utils.load`, i.e. `torch.load` with
`weights_only=True`; we do not use `register_for_checkpointing`, whose loader passes `weights_only=False`.

`verify(folder)` says what is wrong with a folder that claims to be complete (a truncated safetensors file, a
training_state.json cut short, garbage in optimizer.bin, a missing file) without loading it: the safetensors header
against the file size, each torch file's zip directory and pickle (memory-mapped, `weights_only=True`, so the
tensor bytes are not read), the JSON parsed. `resolve_resume` uses it: `latest` falls back to the newest folder
that passes (with a warning naming what was wrong with the newer ones), an explicitly named folder that fails is a
one-line `UserError` naming the file.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
import zipfile
from collections.abc import Callable
from math import prod
from pathlib import Path

from ditlaws.errors import UserError
from ditlaws.jsonio import write_json_atomic

logger = logging.getLogger(__name__)
STATE_FILE = "training_state.json"
KEEP_FILE = "keep_checkpoints.json"  # in the run folder: {"steps": [...]} never pruned (a trunk's branch points)
STEP_DIR = re.compile(r"^step_(\d+)$")
STATE_KEYS = {"step": int, "losses": dict, "wall_time_s": (int, float), "fingerprint": dict}
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MODEL_FILES = ("model.safetensors", "pytorch_model.bin", "pytorch_model_fsdp.bin", "pytorch_model_fsdp_0")
OPTIMIZER_FILES = ("optimizer.bin", "optimizer_0")
TORCH_FILES = ("optimizer*.bin", "scheduler*.bin", "sampler*.bin", "dl_state_dict*.bin", "scaler.pt",
               "random_states_*.pkl", "pytorch_model*.bin")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step_{step}"


def complete_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of finished checkpoints (training_state.json present), oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = []
    if root.is_dir():
        for path in root.iterdir():
            match = STEP_DIR.match(path.name)
            if match and (path / STATE_FILE).is_file():
                found.append((int(match.group(1)), path))
    return sorted(found)


# ---------------------------------------------------------------------------------------------------------------
# Verification: cheap checks that catch torn, truncated and overwritten files


def safetensors_problem(path: Path) -> str | None:
    """The header (8-byte length + JSON) must parse and its tensors must end exactly where the file does."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path}: truncated ({size} bytes, not even a safetensors header)"
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            return f"{path}: truncated ({size} bytes; its header alone claims {8 + header_len})"
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return f"{path}: not a safetensors file (its header is not JSON)"
    if not isinstance(header, dict):
        return f"{path}: not a safetensors file (its header is not a mapping)"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
            expected = prod(info["shape"]) * DTYPE_BYTES[info["dtype"]]
        except (KeyError, TypeError, ValueError):
            return f"{path}: not a safetensors file (bad entry for tensor {name!r})"
        if stop - begin != expected:
            return f"{path}: tensor {name!r} has {stop - begin} bytes for {expected} expected"
        end = max(end, stop)
    if 8 + header_len + end != size:
        return f"{path}: truncated ({size} bytes, {8 + header_len + end} expected)" if size < 8 + header_len + end \
            else f"{path}: {size - 8 - header_len - end} bytes after the last tensor"
    return None


def torch_file_problem(path: Path) -> str | None:
    """A `torch.save` zip: its directory must parse and fit the file, and its pickle must load with
    `weights_only=True` (memory-mapped: the tensor bytes are not read)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return f"{path}: not a complete torch file ({size} bytes; truncated or overwritten)"
    if not any(m.filename.endswith("/data.pkl") or m.filename == "data.pkl" for m in members):
        return f"{path}: not a torch file (no data.pkl inside)"
    if any(m.header_offset + m.compress_size > size for m in members):
        return f"{path}: truncated ({size} bytes)"
    from accelerate.utils import load  # accelerate's own loader: weights_only=True plus its numpy allow-list

    try:
        obj = load(str(path), map_location="cpu", mmap=True)
    except Exception as err:  # unpickling garbage raises many types; any of them means "unusable"
        return f"{path}: cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''})"
    if path.name.startswith("optimizer") and not (isinstance(obj, dict) and {"state", "param_groups"} <= set(obj)):
        return f"{path}: does not hold an optimizer state"
    return None


def sharded_problem(folder: Path) -> str | None:
    """A torch.distributed.checkpoint folder (FSDP sharded state): its metadata and shard files must be there."""
    if not (folder / ".metadata").is_file() or (folder / ".metadata").stat().st_size == 0:
        return f"{folder}: no .metadata (the sharded save did not finish)"
    shards = list(folder.glob("*.distcp"))
    if not shards or any(p.stat().st_size == 0 for p in shards):
        return f"{folder}: missing or empty .distcp shard files"
    return None


def state_problem(folder: Path) -> str | None:
    path = folder / STATE_FILE
    if not path.is_file():
        return f"{path}: missing (the save did not finish)"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{path}: not valid JSON ({getattr(err, 'msg', err)}; truncated?)"
    if not isinstance(state, dict):
        return f"{path}: not a JSON object"
    wrong = [key for key, kind in STATE_KEYS.items() if not isinstance(state.get(key), kind)]
    return f"{path}: missing or wrong {', '.join(wrong)}" if wrong else None


def verify(folder: str | Path) -> str | None:
    """What makes a checkpoint folder unusable, as one line naming the file; None when it looks complete."""
    folder = Path(folder)
    problem = state_problem(folder)
    if problem:
        return problem
    for group, what in ((MODEL_FILES, "model weights"), (OPTIMIZER_FILES, "optimizer state"),
                        (("random_states_0.pkl",), "random states")):
        if not any((folder / name).exists() for name in group):
            return f"{folder}: no {what} ({' / '.join(group)})"
    for path in sorted(folder.glob("model*.safetensors")):
        problem = safetensors_problem(path)
        if problem:
            return problem
    for pattern in TORCH_FILES:
        for path in sorted(folder.glob(pattern)):
            problem = torch_file_problem(path) if path.is_file() else None
            if problem:
                return problem
    for path in sorted(folder.glob("pytorch_model_fsdp_*")) + sorted(folder.glob("optimizer_*")):
        problem = sharded_problem(path) if path.is_dir() else None
        if problem:
            return problem
    return None


# ---------------------------------------------------------------------------------------------------------------
# Resuming, saving, pruning


def resolve_resume(resume: str | None, output_dir: str | Path,
                   warn: Callable[[str], None] | None = None) -> Path | None:
    """`train.resume`: None, "latest" or a folder -> the checkpoint folder to load (None: start fresh).

    "latest" is the newest finished checkpoint that passes `verify`; each newer one that fails is reported through
    `warn` (default: a logging warning) with what is wrong, and with none usable the run starts fresh (warned too).
    An explicit folder that is unfinished or fails `verify` is a `UserError` naming the file."""
    if resume is None:
        return None
    warn = warn or logger.warning
    if resume == "latest":
        found = complete_checkpoints(output_dir)
        for _, path in reversed(found):
            problem = verify(path)
            if problem is None:
                return path
            older = "an older checkpoint" if path != found[0][1] else "no checkpoint (starting from step 0)"
            warn(f"warning: checkpoint {path.name} is unusable, falling back to {older}: {problem}")
        if not found:
            root = Path(output_dir) / "checkpoints"
            leftovers = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
            what = (f"only unfinished or foreign entries ({', '.join(leftovers[:3])}"
                    f"{', ...' if len(leftovers) > 3 else ''})" if leftovers else "none")
            warn(f"warning: train.resume latest: no finished checkpoint in {root} ({what}); starting from step 0")
        return None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise UserError(f"train.resume: {path} is not a finished checkpoint folder (no {STATE_FILE}); "
                        "use 'latest' or a checkpoints/step_<k> folder")
    problem = verify(path)
    if problem:
        raise UserError(f"train.resume: {problem}; use another checkpoint or 'latest'")
    return path


def begin_save(folder: Path) -> None:
    """Before saving into `folder` (main process): drop an old training_state.json, so that a folder being
    overwritten (e.g. a corrupt checkpoint of the same step, skipped on resume) reads as unfinished until the new
    save has written its state."""
    (Path(folder) / STATE_FILE).unlink(missing_ok=True)


def write_state(folder: Path, state: dict) -> None:
    write_json_atomic(folder / STATE_FILE, state, indent=1)


def read_state(folder: Path) -> dict:
    return json.loads((folder / STATE_FILE).read_text())


def kept_steps(output_dir: str | Path) -> set[int]:
    """Steps whose checkpoints `prune` keeps whatever `keep` says: a trunk's branch points (`KEEP_FILE`)."""
    path = Path(output_dir) / KEEP_FILE
    try:
        return {int(s) for s in json.loads(path.read_text()).get("steps", [])}
    except (FileNotFoundError, ValueError, AttributeError, TypeError):
        return set()


def keep_steps(output_dir: str | Path, steps) -> None:
    """Add `steps` to the checkpoints `prune` never deletes (a trunk's branch points)."""
    write_json_atomic(Path(output_dir) / KEEP_FILE, {"steps": sorted(kept_steps(output_dir) | set(steps))})


def prune(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` finished checkpoints (and stale unfinished ones) apart from the steps in
    `KEEP_FILE` (a trunk's branch points); return what went."""
    finished = complete_checkpoints(output_dir)
    newest = finished[-1][0] if finished else -1
    kept = kept_steps(output_dir)
    removed = [path for _, path in finished[:-keep]] if keep > 0 else [path for _, path in finished]
    removed = [path for path in removed if int(STEP_DIR.match(path.name).group(1)) not in kept]
    root = Path(output_dir) / "checkpoints"
    if root.is_dir():  # unfinished folders older than the newest finished one are leftovers of a crash
        for path in root.iterdir():
            match = STEP_DIR.match(path.name)
            if match and not (path / STATE_FILE).is_file() and int(match.group(1)) < newest:
                removed.append(path)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
