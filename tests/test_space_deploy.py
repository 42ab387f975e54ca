"""`ditlaws space deploy`: what the Space repo holds, that it starts from those files alone without torch, and
bad input as one line with exit 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ditlaws.errors import UserError
from ditlaws.space.deploy import stage
from ditlaws.space.example import example_fit

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"geometry": {"family": "in_context", "sample_size": 32, "in_channels": 4, "patch_size": 2,
                        "mlp_ratio": 4.0, "text_dim": 768, "text_len": 77},
           "presets": [{"depth": 8, "width": 512, "heads": 8, "N": 26_000_000, "N_non_embedding": 25_000_000},
                       {"depth": 27, "width": 1728, "heads": 27, "N": 972_854_800, "N_non_embedding": 967_977_216}]}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "fit.json").write_text(json.dumps(example_fit()))
    (folder / "presets.json").write_text(json.dumps(PRESETS))
    return folder


def test_stage_writes_the_app_its_requirements_the_fit_and_the_library(inputs, tmp_path):
    info = stage(tmp_path, fit=inputs / "fit.json", presets=inputs / "presets.json")
    assert {"app.py", "README.md", "requirements.txt", "fit.json", "presets.json", "ditlaws"} <= set(info["files"])
    assert info["fit"]["studies"] == ["in_context", "cross_attn"] and info["presets"] == 2
    front = yaml.safe_load((tmp_path / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert (tmp_path / "app.py").read_bytes() == (ROOT / "hub_cards" / "space" / "app.py").read_bytes()
    assert (tmp_path / "fit.json").read_bytes() == (inputs / "fit.json").read_bytes()
    assert (tmp_path / "ditlaws" / "laws" / "predict.py").is_file() and not list(tmp_path.rglob("__pycache__"))
    reqs = [line for line in (tmp_path / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert "torch" not in " ".join(reqs) and "matplotlib" in reqs


def test_staged_space_reads_its_fit_with_its_own_library_without_torch(inputs, tmp_path):
    """What the Space runs at start-up, from its folder alone: the shipped ditlaws/ first on the path (not the
    installed one), the configuration from the folder (fit.json, presets.json), no torch. (The browser test serves
    a staged Space and checks the running app the same way.)"""
    stage(tmp_path, fit=inputs / "fit.json", presets=inputs / "presets.json")
    code = ("import sys; from pathlib import Path\n"
            "from ditlaws.space.source import from_environment; from ditlaws.space.whatif import what_if\n"
            "src = from_environment(Path('.').resolve(), {})\n"
            "a = what_if(src.fit, 3e20, src.presets['presets'])\n"
            "import ditlaws\n"
            "print(ditlaws.__file__, 'torch' in sys.modules, ','.join(src.fit.studies), a['preset']['depth'])\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    where, torch_loaded, studies, depth = out.stdout.split()
    assert Path(where).resolve().is_relative_to(tmp_path.resolve())
    assert torch_loaded == "False" and studies == "in_context,cross_attn"
    assert depth == "27"  # the preset nearest N_opt(3e20) in the shipped table


def test_deploy_input_errors_are_one_line_exit_2(inputs, tmp_path, capsys):
    from ditlaws.space import main

    with pytest.raises(UserError, match="give --fit"):
        stage(tmp_path, fit=None)
    (tmp_path / "bad.json").write_text("{not json")
    for args, needle in ((["--repo", "org/space", "--fit", str(tmp_path / "bad.json")], "not valid JSON"),
                         (["--repo", "no-slash", "--fit", str(inputs / "fit.json")], "is not <org>/<space>"),
                         (["--repo", "org/space", "--fit", str(inputs / "fit.json"), "--runs", str(tmp_path)],
                          "not a run store")):
        assert main(["deploy", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    # the console script's subcommand, end to end
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-m", "ditlaws.cli", "space", "deploy", "--repo", "org/space"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "give --fit" in out.stderr, out.stderr


@pytest.mark.parametrize("offline", [True, False])
def test_deploy_without_a_hub_is_one_line(inputs, monkeypatch, offline):
    """Offline (HF_HUB_OFFLINE) or an endpoint nobody answers on: a UserError naming the repo, no traceback."""
    from huggingface_hub import constants

    from ditlaws.space import browser
    from ditlaws.space.deploy import deploy

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    endpoint = f"http://127.0.0.1:{browser.free_port()}"  # free: nothing listens there
    with pytest.raises(UserError) as err:
        deploy("org/space", fit=inputs / "fit.json", presets=inputs / "presets.json", endpoint=endpoint)
    message = str(err.value)
    assert message.startswith("--repo org/space: ") and "\n" not in message
    assert ("HF_HUB_OFFLINE is set" in message) if offline else (f"cannot reach the Hub at {endpoint}" in message)
