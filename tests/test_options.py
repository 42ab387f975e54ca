"""The one configuration mechanism: YAML sections and CLIs from dataclass fields, checked in one place."""

import argparse
import dataclasses
import math

import pytest

from ditlaws.config import (
    RUN_SECTIONS,
    EvalConfig,
    ModelConfig,
    SweepConfig,
    TrainConfig,
    config_from_dict,
    load_config,
)
from ditlaws.errors import UserError
from ditlaws.options import ArgumentParser, add_arguments, from_arguments, option, section_from_dict


@dataclasses.dataclass
class Example:
    count: int = option(3, help="how many", ge=1)
    rate: float = option(0.5, help="a rate", gt=0, lt=1)
    ratio: float | None = option(None, help="optional", gt=0)
    budgets: tuple[float, ...] = option((), help="budgets", gt=0, cli="nargs", metavar="C")
    metrics: tuple[str, ...] = option(("a",), help="metrics", choices=("a", "b", "c"), cli="comma")
    allow_edge: bool = option(False, help="keep edge minima")
    parametric: bool = option(True, help="fit Approach 3", flag="--no-parametric")
    n_boot: int = option(100, help="resamples", ge=20, flag="--bootstrap")
    horizon: float = option(math.inf, help="may be infinite", ge=0, allow_inf=True)

    def check(self):
        if self.count > 10 and self.rate > 0.9:
            raise UserError("example: count > 10 needs rate <= 0.9")


def parse(*argv, base=None):
    parser = ArgumentParser(prog="x")
    add_arguments(parser, Example)
    return from_arguments(Example, parser.parse_args(list(argv)), section="example", base=base)


def test_kebab_cli_from_fields_with_flags_lists_and_booleans():
    got = parse("--count", "4", "--budgets", "1e12", "2e12", "--metrics", "a,c", "--allow-edge", "--no-parametric",
                "--bootstrap", "50")
    assert got == Example(count=4, budgets=(1e12, 2e12), metrics=("a", "c"), allow_edge=True, parametric=False,
                          n_boot=50)
    assert parse() == Example()  # flags not given keep the defaults
    assert parse("--rate", "0.25", base={"rate": 0.75, "count": 7}) == Example(count=7, rate=0.25)


@pytest.mark.parametrize("argv, key", [
    (["--count", "0"], "example.count must be >= 1"),
    (["--count", "2.5"], "example.count: expected an integer"),
    (["--rate", "nan"], "example.rate must be a finite number"),
    (["--rate", ".inf"], "example.rate must be a finite number"),
    (["--ratio", "-1"], "example.ratio must be > 0"),
    (["--budgets", "1e12", "-3"], r"example.budgets\[1\] must be > 0"),
    (["--metrics", "a,z"], "example.metrics"),
    (["--bootstrap", "5"], "example.n_boot must be >= 20"),
    (["--count", "11", "--rate", "0.95"], "count > 10 needs"),
])
def test_bad_values_are_one_line_errors_naming_the_field(argv, key):
    with pytest.raises(UserError, match=key) as err:
        parse(*argv)
    assert "\n" not in str(err.value)


def test_infinity_only_where_the_field_allows_it():
    assert parse("--horizon", ".inf").horizon == math.inf
    with pytest.raises(UserError, match="horizon must be a finite number"):
        parse("--horizon", "nan")


def test_usage_errors_are_one_line_and_exit_2(capsys):
    parser = ArgumentParser(prog="x")
    add_arguments(parser, Example)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--count"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--count" in err[0]


def test_unknown_key_suggests_the_closest_and_missing_required_names_the_field():
    with pytest.raises(UserError, match=r"example.cuont: unknown key \(did you mean 'count'\?\)"):
        section_from_dict(Example, {"cuont": 2}, "example")
    with pytest.raises(UserError, match="sweep.study is required"):
        section_from_dict(SweepConfig, {"budgets": [1e12], "depths": [2]}, "sweep")


def test_dotted_style_builds_section_flags():
    parser = argparse.ArgumentParser()
    add_arguments(parser, ModelConfig, style="dotted", section="model")
    args = parser.parse_args(["--model.depth", "6", "--model.family", "cross_attn"])
    assert from_arguments(ModelConfig, args, section="model") == ModelConfig(depth=6, family="cross_attn")


# Issue 12 item 6: NaN and inf passed validation (`value <= 0` is false for NaN) and failed after work started.
@pytest.mark.parametrize("key", [f"{section}.{f.name}" for section, cls in RUN_SECTIONS.items()
                                 for f in dataclasses.fields(cls) if f.type in ("float", "float | None")])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_every_float_field_rejects_nan_and_inf_before_any_work(key, value):
    with pytest.raises(UserError, match=key.replace(".", r"\.")) as err:
        load_config(None, ["--train.steps", "3", f"--{key}", value])
    assert "finite" in str(err.value) or "must be" in str(err.value)


def test_grad_clip_nan_no_longer_turns_clipping_off():
    with pytest.raises(UserError, match="train.grad_clip must be a finite number"):
        load_config(None, ["--train.steps", "3", "--train.grad_clip", ".nan"])


def test_direct_construction_is_checked_by_validate():
    cfg = config_from_dict({"train": {"steps": 3}})
    cfg.train.lr = float("nan")
    with pytest.raises(UserError, match="train.lr"):
        cfg.validate()


def test_eval_and_sweep_eval_share_one_definition():
    from ditlaws.config import SweepEvalConfig

    shared = {f.name for f in dataclasses.fields(EvalConfig)}
    assert shared <= {f.name for f in dataclasses.fields(SweepEvalConfig)}
    assert "loss_timesteps" in shared and "timesteps_per_sample" not in shared
    assert TrainConfig().betas == (0.9, 0.95)


def test_help_lists_the_valid_values_of_every_enumerated_key():
    import subprocess
    import sys
    from pathlib import Path

    from ditlaws.config import RUN_SECTIONS
    from ditlaws.options import section_help

    text = section_help(RUN_SECTIONS)
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  --")}
    assert "one of: in_context, cross_attn" in lines["--model.family"]
    assert "one of: constant, step, wsd, cosine" in lines["--train.schedule"]
    assert "one of: logit_normal, uniform" in lines["--train.t_sampler"]
    assert "one of: no, bf16, fp16" in lines["--train.mixed_precision"]
    assert "any of: tensorboard, trackio, wandb" in lines["--train.trackers"]
    assert "one of" not in lines["--train.lr"]  # an open key lists nothing
    root = Path(__file__).resolve().parents[1]
    shown = subprocess.run([sys.executable, str(root / "evaluate_dit.py"), "--help"], capture_output=True, text=True,
                           timeout=120).stdout
    assert "one of: euler, rk45" in " ".join(shown.split())  # argparse wraps lines
