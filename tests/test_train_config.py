"""Bad run configs: each is one line that names the key, before any training happens (exit code 2 in the script)."""

import importlib.util

import pytest

from ditlaws.config import load_config, parse_overrides
from ditlaws.errors import UserError
from ditlaws.training import train

BASE = ["--model.depth", "2", "--model.width", "32", "--model.heads", "2", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8", "--train.global_batch", "8"]


@pytest.mark.parametrize("overrides, key", [
    (["--train.steps", "5", "--train.budget", "1e12"], "train.budget"),  # both
    ([], "train.budget"),  # neither
    (["--train.budget", "-1e12"], "train.budget"),
    (["--train.steps", "0"], "train.steps"),
    (["--train.steps", "5", "--train.caption_drop", "1.5"], "train.caption_drop"),
    (["--train.steps", "5", "--train.schedule", "linear"], "train.schedule"),
    (["--train.steps", "5", "--train.betas", "[0.9]"], "train.betas"),
    (["--train.steps", "5", "--train.betas", "[0.9, 1.5]"], "train.betas"),
    (["--train.steps", "5", "--model.width", "30", "--model.heads", "4"], "model.width"),
    (["--train.steps", "5", "--optim.lr", "1"], "optim"),
    (["--train.steps", "5", "--train.warmup_steps", "5"], "train.warmup_steps"),
    (["--train.steps", "5", "--train.trackers", "[mlflow]"], "train.trackers"),
    (["--train.steps", "5", "--train.fused_adamw", "maybe"], "train.fused_adamw"),
    (["--train.steps", "5", "--train.mixed_precision", "fp8"], "train.mixed_precision"),
    (["--train.steps", "5", "--train.micro_batch", "3"], "train.micro_batch"),
    (["--train.steps", "2.5"], "train.steps"),
    (["--train.steps", "5", "--model.family", "unet"], "model.family"),
])
def test_static_config_errors_name_the_key(overrides, key):
    with pytest.raises(UserError) as err:
        load_config(None, overrides)
    message = str(err.value)
    assert key in message and "\n" not in message


def test_cli_words_yes_no_stay_words():
    assert parse_overrides(["--train.mixed_precision", "no"]) == {"train.mixed_precision": "no"}
    assert load_config(None, ["--train.steps", "1", "--train.mixed_precision", "no"]).train.mixed_precision == "no"


def test_yaml_no_means_mixed_precision_no(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  steps: 3\n  mixed_precision: no\n")
    assert load_config(path).train.mixed_precision == "no"


@pytest.mark.parametrize("overrides, key", [
    (["--train.steps", "3", "--train.mixed_precision", "fp16", "--train.cpu", "true"], "train.mixed_precision"),
    (["--train.steps", "3", "--train.resume", "/nonexistent/step_3"], "train.resume"),
    (["--train.budget", "1e6", "--train.warmup_steps", "2"], "train.warmup_steps"),  # the budget buys 1 step
    (["--train.steps", "3", "--train.global_batch", "6", "--train.micro_batch", "4"], "train.micro_batch"),
])
def test_run_time_config_errors_name_the_key(tmp_path, overrides, key):
    cfg_args = [*BASE, "--train.output_dir", str(tmp_path), *overrides]
    with pytest.raises(UserError) as err:
        train(load_config(None, cfg_args))
    message = str(err.value)
    assert key in message and "\n" not in message
    assert not (tmp_path / "summary.json").exists()


def test_missing_tracker_package_is_a_user_error(tmp_path):
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        pytest.skip("tensorboard is installed here")
    with pytest.raises(UserError, match="train.trackers: tensorboard is not installed"):
        train(load_config(None, [*BASE, "--train.output_dir", str(tmp_path), "--train.steps", "2",
                                 "--train.trackers", "[tensorboard]"]))
