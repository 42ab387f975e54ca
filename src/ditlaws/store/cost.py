"""What a study's training cost, from its run records alone (torch-free: the fit reads it)."""

from __future__ import annotations


def trained_flops(records: list[dict]) -> dict:
    """A study's training FLOPs (6ND) from its run records alone: a branch costs its cooldown, each trunk its
    longest stretch to a branch point; a record without `trunk` costs its whole C. Beside: independent runs' cost."""
    trunk_end: dict[str, float] = {}
    trained = 0.0
    for r in records:
        per_step = r["C"] / r["steps"]
        branch = r.get("trunk") or {}
        if branch.get("run_id"):
            trained += per_step * (r["steps"] - branch["branch_step"])
            trunk_end[branch["run_id"]] = max(trunk_end.get(branch["run_id"], 0.0), per_step * branch["branch_step"])
        else:
            trained += r["C"]
    trained += sum(trunk_end.values())
    independent = sum(r["C"] for r in records)
    return {"trained_flops": trained, "independent_flops": independent, "trunks": len(trunk_end),
            "isoflop_points": len(records), "budgets": len({r.get("budget") for r in records})}
