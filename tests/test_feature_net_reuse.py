"""`python -m ditlaws.feature_net`: keep a current network, retrain a missing, outdated, damaged or differently trained
one; `--retrain` always trains."""

import json

import torch
from safetensors.torch import load_file, save_file

from ditlaws.feature_net import BuiltinFeatureNet
from ditlaws.feature_net.train import main, reusable


def small_net():
    return BuiltinFeatureNet(resolution=16, width=8, feature_dim=16)


def test_a_current_network_is_kept_byte_for_byte(tmp_path, capsys):
    path = tmp_path / "features.safetensors"
    small_net().save(path)
    before = path.read_bytes()
    assert reusable(path)
    assert main(["--out", str(path), "--steps", "1"]) == 0
    assert path.read_bytes() == before
    assert "kept" in capsys.readouterr().out


def test_missing_outdated_and_damaged_files_are_not_reused(tmp_path, capsys):
    assert not reusable(tmp_path / "missing.safetensors")
    outdated = tmp_path / "outdated.safetensors"  # an older ditlaws wrote no format tag
    net = small_net()
    save_file(net.state_dict(), str(outdated), metadata={"config": json.dumps(net.config)})
    assert not reusable(outdated)
    assert "older ditlaws" in capsys.readouterr().err
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x00" * 64)
    assert not reusable(damaged)


def test_reuse_retrains_an_outdated_file(tmp_path):
    path = tmp_path / "features.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    assert main(["--out", str(path), "--steps", "2", "--batch-size", "4", "--resolution", "16"]) == 0
    assert isinstance(BuiltinFeatureNet.load(path), BuiltinFeatureNet)


def test_train_once_then_keep_then_retrain_on_other_settings_or_when_asked(tmp_path, capsys):
    path = tmp_path / "features.safetensors"
    tiny = ["--out", str(path), "--steps", "2", "--batch-size", "4", "--resolution", "16"]
    assert main(tiny) == 0 and "wrote" in capsys.readouterr().out
    first = path.read_bytes()
    assert main(tiny) == 0 and "kept" in capsys.readouterr().out  # the second call keeps the trained weights
    assert path.read_bytes() == first
    assert main([*tiny, "--seed", "1"]) == 0  # other settings: retrained, and it says why
    assert "seed 0 -> 1" in capsys.readouterr().err and path.read_bytes() != first
    again = load_file(path)
    assert main([*tiny, "--seed", "1", "--retrain"]) == 0 and "wrote" in capsys.readouterr().out
    retrained = load_file(path)  # seeded: the same weights (the header's key order is not fixed)
    assert BuiltinFeatureNet.training_of(path)["seed"] == 1
    assert again.keys() == retrained.keys() and all(torch.equal(again[k], retrained[k]) for k in again)


def test_short_trainings_run(tmp_path):
    # torch's OneCycleLR divided by zero at 20 steps (a 5 % warm-up of exactly one step)
    for steps in (1, 2, 20, 21):
        assert main(["--out", str(tmp_path / f"{steps}.safetensors"), "--steps", str(steps), "--batch-size", "2",
                     "--resolution", "16"]) == 0
