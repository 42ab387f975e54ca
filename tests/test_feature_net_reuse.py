"""`python -m ditlaws.feature_net --reuse`: keep a current network, retrain a missing, outdated or damaged one."""

import json

import torch
from safetensors.torch import save_file

from ditlaws.feature_net import BuiltinFeatureNet
from ditlaws.feature_net.train import main, reusable


def small_net():
    return BuiltinFeatureNet(resolution=16, width=8, feature_dim=16)


def test_a_current_network_is_kept_byte_for_byte(tmp_path, capsys):
    path = tmp_path / "features.safetensors"
    small_net().save(path)
    before = path.read_bytes()
    assert reusable(path)
    assert main(["--out", str(path), "--reuse", "--steps", "1"]) == 0
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
    assert main(["--out", str(path), "--reuse", "--steps", "2", "--batch-size", "4",
                 "--resolution", "16"]) == 0
    assert isinstance(BuiltinFeatureNet.load(path), BuiltinFeatureNet)
