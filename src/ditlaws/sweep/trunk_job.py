"""A trunk job in one process: trunk to a branch point -> the branch's cooldown -> evaluate -> back to the trunk.

`run_trunk_job(trunk_dir)` runs the job file the sweep wrote into a trunk's folder (`ditlaws.sweep.trunks`): for
each branch, in the order of its branch point p, it skips a branch whose record is in the store, makes sure the
trunk has its checkpoint at p (training the trunk there from its latest checkpoint, `train(..., stop_at=p)`), and
runs the branch's sweep job starting from that checkpoint (`train(..., start_from=...)`): the cooldown to S, the
validation loss, the record. The snapshot is the checkpoint at p (kept: `checkpoint.keep_steps`), the restore is
the trunk's next resume from it, so a trunk killed anywhere resumes from its latest checkpoint and a branch killed
mid-cooldown from its own checkpoint (or again from p); everything happens in this one Python process.

A branch point the trunk has already passed without a checkpoint there (a budget added later below the trunk's
end) is trained as the independent WSD run from step 0, which gives the same numbers.
"""

from __future__ import annotations

from pathlib import Path

from ditlaws.errors import UserError
from ditlaws.training import checkpoint as ckpt

TRUNK_KIND = "trunk"


def trunk_checkpoint(cfg, step: int, lock, log=print) -> Path | None:
    """The trunk's checkpoint at `step`, training the trunk up to it when needed; None when the trunk has passed
    `step` without a usable checkpoint there (or step is 0): the branch then trains from scratch."""
    from ditlaws.publish import run_hooks
    from ditlaws.training.loop import train

    output = Path(cfg.train.output_dir)
    folder = ckpt.checkpoint_dir(output, step)
    if step <= 0:
        return None
    if (folder / ckpt.STATE_FILE).is_file() and ckpt.verify(folder) is None:
        return folder
    usable = [s for s, path in ckpt.complete_checkpoints(output) if ckpt.verify(path) is None]
    if usable and usable[-1] > step:
        log(f"{cfg.train.run_id}: no checkpoint at step {step} and the trunk is past it (step {usable[-1]}); "
            "this branch trains from step 0 (the same numbers, more compute)")
        return None
    ckpt.keep_steps(output, [step])
    train(cfg, lock=lock, stop_at=step, publisher=run_hooks(cfg)["publisher"])
    if ckpt.verify(folder) is not None:
        raise RuntimeError(f"{folder}: the trunk stopped at step {step} without a usable checkpoint there")
    return folder


def run_trunk_job(trunk_dir: str | Path, log=print, lock=None, wait: bool = True) -> dict[str, dict]:
    """Every branch of a trunk job file (trunk segments in between); returns {run_id: record} of its branches.
    `wait` as in `ditlaws.sweep.job.run_job`: how long each branch waits on its Hub pushes."""
    from ditlaws.config import config_from_dict
    from ditlaws.store import LocalStore
    from ditlaws.sweep.job import read_job_file, run_job, stored_record
    from ditlaws.training import run_dir

    trunk_dir = Path(trunk_dir)
    spec = read_job_file(trunk_dir)
    if spec.get("kind") != TRUNK_KIND:
        raise UserError(f"{trunk_dir}: not a trunk job")
    cfg = config_from_dict(spec["config"], source=str(trunk_dir / "sweep_job.json"))
    store = LocalStore(spec["store"])
    records: dict[str, dict] = {}
    with run_dir.locked(trunk_dir, lock) as held:
        ckpt.keep_steps(trunk_dir, [b["branch_step"] for b in spec["branches"] if b["branch_step"] > 0])
        for branch in spec["branches"]:
            branch_dir = Path(branch["run_dir"])
            fingerprint = read_job_file(branch_dir)["fingerprint"]
            record = stored_record(store, spec["study"], branch["run_id"], fingerprint)
            if record is None:
                start = trunk_checkpoint(cfg, branch["branch_step"], held, log)
                trunk = {"run_id": cfg.train.run_id, "branch_step": branch["branch_step"]} if start else None
                record = run_job(branch_dir, log=log, wait=wait, start_from=start, trunk=trunk)
                log(f"{branch['run_id']}: branch at step {branch['branch_step']:,} of {cfg.train.run_id} trained + "
                    f"evaluated")
            records[branch["run_id"]] = record
    return records
