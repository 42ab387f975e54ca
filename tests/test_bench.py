"""`ditlaws bench`: the step section's table and JSON at a tiny size, and its refusal of unknown sections."""

import json

from ditlaws.cli import main


def test_quick_step_section_writes_every_rate_and_the_ratio_to_diffusers_dit(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeats", "1", "--rounds", "2", "--only", "step", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["peaks"]) == {"float32", "bfloat16"}
    rows = {r["model"]: r for r in result["step"]}
    assert set(rows) == {"diffusers DiT", "diffusers PixArt", "ditlaws in_context", "ditlaws cross_attn"}
    assert rows["diffusers DiT"]["vs_diffusers_dit"] == 1.0
    for row in rows.values():
        assert row["flops_per_step"] > 0 and row["median_s"] > 0 and row["repeats"] == 2  # 2 rounds of 1 step
        assert row["flops_per_s"] == row["flops_per_step"] / row["median_s"]
        assert row["samples_per_s"] == row["batch"] / row["median_s"]
    assert "| ditlaws cross_attn |" in capsys.readouterr().out


def test_unknown_section_is_a_user_error(capsys):
    assert main(["bench", "--only", "step,warp"]) == 2
    assert "--only: warp is not a section" in capsys.readouterr().err
    assert main(["bench", "--only", "step", "--models", "diffusers DiT,warp"]) == 2
    assert "--models: warp is not a model; valid: diffusers DiT, " in capsys.readouterr().err
