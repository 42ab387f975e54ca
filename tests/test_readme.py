"""The README runs: every fenced block of README.md, in its documented order, on tiny settings.

How it works (for whoever edits the README):
- `readme_blocks()` parses every fenced block. A bash block is split into commands (one per line, `\\` joins
  lines, `# ...` comments dropped); a python block is one snippet; any other block is one piece of text.
- Every command / snippet / text must match exactly one entry of the tables below (`COMMANDS`, `SNIPPETS`,
  `OTHER`), each saying how it runs: `Run` (the command as written, with the tiny overrides listed in the entry),
  a named handler (`make demo`, the Space in Chromium, ...), or `Skip` with the reason it cannot run here.
  A block may instead carry `<!-- readme-test: skip: <reason> -->` on the line right before its opening fence.
- A block that matches no entry fails `test_every_readme_block_is_known` (a fast test), and so does an entry that
  matches nothing any more: a README edit must come with its entry here.
- `test_the_readme_runs_in_order` (slow) runs them all in one working folder (the repository's scripts and configs
  linked in, outputs written there), in README order, so each command sees what the earlier ones made.

Tiny settings (the documented substitutions; nothing else about a command changes):
- `make demo` runs `scripts/demo.sh` itself on a copy of configs/sweeps/demo.yaml with `TINY_DEMO` merged in
  (3 budgets x 3 sizes of seconds each, evaluation on 32 images, runs in process), DEMO_NEXT_BUDGET=3.2e10,
  DEMO_NEXT_SIZES=3 (the 4th budget's sizes) and DEMO_BOOTSTRAP=100;
  the feature network is pre-trained tiny (`TINY_FEATURES`) into a private $DITLAWS_CACHE.
- `train_dit.py --config configs/train/demo.yaml` gets `TINY_TRAIN` (30 steps instead of the 1.9e12 budget).
- `evaluate_dit.py` gets `TINY_EVAL` (few timesteps, 32 images; the same for every call, so results merge).
- `python -m ditlaws.feature_net` gets `TINY_FEATURES` (so it finds the pre-trained network current and keeps it).
- `prepare --num-samples 20000` becomes `--num-samples 64`; `sweep next --budget 4e12` becomes 6.4e10.
- The Sweeps section's `outputs/my_sweep` is `outputs/demo/sweep` (its config is the demo's, which `make demo`
  already ran: the runner finds every run done, as the README says it will, instead of training them twice).
- `accelerate launch` gets `--main_process_port <free port>` (parallel test runs must not collide).
- `ditlaws lrsweep` trains 2 widths x 3 rates x 25 steps (`TINY_LRSWEEP`); `ditlaws` runs as this interpreter's
  console script.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.+?)\s*-->")

TINY_DEMO = {
    "budgets": [4e9, 8e9, 1.6e10],
    "sizes": [{"depth": 2, "width": w, "heads": 2} for w in (16, 32, 48)],
    "min_steps": 5,
    "base": {"data": {"val_size": 32}, "train": {"warmup_steps": 2, "log_every": 10}},
    "eval": {"max_samples": 32, "loss_timesteps": 2, "batch_size": 32, "fid_samples": 32, "accuracy_samples": 32,
             "grid_samples": 8, "sample_steps": 4},
    "executor": {"kind": "local"},
}
DEMO_NEXT_BUDGET = "3.2e10"
TINY_FEATURES = ["--steps", "20", "--batch-size", "16", "--resolution", "16"]
TINY_TRAIN = ["--train.budget", "null", "--train.steps", "30", "--train.log_every", "10",
              "--train.checkpoint_every", "0"]
TINY_EVAL = ["--batch-size", "16", "--max-samples", "16", "--loss-timesteps", "2", "--vlb-timesteps", "2",
             "--nll-samples", "2", "--nll-steps", "4", "--fid-samples", "32", "--accuracy-samples", "32",
             "--sample-steps", "2", "--grid-samples", "4", "--data.val_size", "32"]


# ---------------------------------------------------------------------------------------------------------------
# The README's blocks


@dataclass
class Piece:
    """One runnable unit of the README: a command of a bash block, a python snippet, or another block's text."""

    kind: str  # "command", "python", "text"
    text: str  # the command's tokens joined by spaces, the snippet, the block
    line: int  # where its block starts in README.md
    skip: str | None = None  # the block's `readme-test: skip:` reason


def readme_blocks(text: str | None = None) -> list[Piece]:
    text = README.read_text(encoding="utf-8") if text is None else text
    lines, pieces, i = text.splitlines(), [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(1)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = "\n".join(lines[start + 1:end])
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = SKIP_MARK.search(before)
        skip = mark.group(1) if mark else None
        if lang == "bash":
            for command in body.replace("\\\n", " ").splitlines():
                tokens = shlex.split(command, comments=True)
                if tokens:
                    pieces.append(Piece("command", " ".join(tokens), start + 1, skip))
        else:
            pieces.append(Piece("python" if lang == "python" else "text", body, start + 1, skip))
        i = end + 1
    return pieces


# ---------------------------------------------------------------------------------------------------------------
# The table: README piece -> how it runs


@dataclass
class Entry:
    pattern: str  # a regex that must match the start of the piece (re.match)
    how: str  # "run", "skip", or the name of a handler method of Session
    why: str = ""  # for "skip": why it cannot run here
    extra: list[str] = field(default_factory=list)  # tiny overrides appended to a command
    replace: dict[str, str] = field(default_factory=dict)  # token substitutions

    def matches(self, piece: Piece) -> bool:
        return re.match(self.pattern, piece.text) is not None


# lrsweep: 2 widths x 3 rates x 25 steps instead of 3 x 8 x 300 (about an hour on 2 cores)
TINY_LRSWEEP = {"16,32,64": "16,32", "1e-3,2e-3,4e-3,8e-3,1.6e-2,3.2e-2,6.4e-2,1.28e-1": "4e-3,1.6e-2,6.4e-2",
                "300": "25"}
MY_SWEEP = {"outputs/my_sweep": "outputs/demo/sweep", "outputs/my_sweep/store": "outputs/demo/sweep/store"}
COMMANDS = [
    Entry(r"make test$", "skip", "the test suite itself (this test runs inside it)"),
    Entry(r"make demo$", "make_demo"),
    Entry(r"python -m ditlaws\.data\.prepare --config configs/data/coco_sd15\.yaml", "skip",
          "downloads COCO, the SD-1.5 VAE and CLIP (offline here); tests/test_data_prepare.py covers prepare"),
    Entry(r"python -m ditlaws\.data\.prepare --config configs/data/builtin32\.yaml", "run",
          replace={"20000": "64"}),
    Entry(r"python train_dit\.py --config configs/train/demo\.yaml$", "run", extra=TINY_TRAIN),
    Entry(r"python train_dit\.py --config configs/train/demo\.yaml --hub\.org ORG", "skip",
          "needs a Hub account (ORG); tests/test_store_push.py pushes a run to tests/hub_server.py"),
    Entry(r"accelerate launch --config_file configs/accelerate/multi_gpu\.yaml", "skip",
          "needs GPUs and the paper's 1e18 budget"),
    Entry(r"ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2", "two_processes",
          extra=TINY_TRAIN),
    Entry(r"python -m ditlaws\.feature_net$", "feature_net", extra=TINY_FEATURES),
    Entry(r"python evaluate_dit\.py --checkpoint outputs/demo_run", "evaluate", extra=TINY_EVAL),
    Entry(r"python evaluate_dit\.py --checkpoint user/repo", "skip", "a Hub repo placeholder (user/repo)"),
    Entry(r"python evaluate_dit\.py --checkpoint outputs/real_run", "skip",
          "a run on real data with CLIP ViT-L/14 weights (a download); tests/test_evaluation_clip.py covers clip"),
    Entry(r"python -m ditlaws\.sweep --config configs/sweeps/paper_in_context\.yaml --dry-run$", "run"),
    Entry(r"python -m ditlaws\.sweep --config configs/sweeps/demo\.yaml --out outputs/my_sweep$", "sweep_again",
          replace=MY_SWEEP),
    Entry(r"python -m ditlaws\.sweep next --from configs/sweeps/demo\.yaml", "run",
          extra=["--store", "outputs/demo/sweep/store"], replace={"4e12": "6.4e10"}),
    Entry(r"python fit_laws\.py --runs outputs/my_sweep/store --out outputs/my_sweep/fit$", "run",
          extra=["--bootstrap", "100", "--no-figures"], replace=MY_SWEEP),
    Entry(r"python -m ditlaws\.sweep --config S\.yaml( --executor subprocess)?$", "sweep_again",
          extra=["--out", "outputs/demo/sweep"], replace={"S.yaml": "configs/sweeps/demo.yaml"}),
    Entry(r"python -m ditlaws\.sweep --config configs/sweeps/demo\.yaml --dry-run$", "trunk_dry_run"),
    Entry(r"ditlaws coordcheck --config configs/train/demo\.yaml", "run"),
    Entry(r"ditlaws lrsweep --config configs/train/demo\.yaml", "run", replace=TINY_LRSWEEP),
    Entry(r"python -m ditlaws\.sweep --config S\.yaml --executor slurm$", "skip", "needs a Slurm cluster"),
    Entry(r"python -m ditlaws\.sweep --config S\.yaml --emit (sbatch|list)$", "run",
          extra=["--out", "outputs/demo/sweep"], replace={"S.yaml": "configs/sweeps/demo.yaml"}),
    Entry(r"python fit_laws\.py --runs <store dir or runs\.csv>", "skip",
          "a synopsis of the flags (placeholders in <> and []); the demo runs fit_laws.py for real"),
    Entry(r"python fit_laws\.py --help$", "run"),
    Entry(r"python fit_laws\.py --hub ORG/", "skip", "needs a Hub results repo (ORG); tests/test_store_hub.py"),
    Entry(r'python -c from ditlaws import InContextDiT; InContextDiT\.from_pretrained\("ORG/', "skip",
          "needs a Hub model repo (ORG); tests/test_pipeline.py loads one from tests/hub_server.py"),
    Entry(r"python hub_cards/space/app\.py --fit outputs/demo/fit/fit\.json$", "space"),
    Entry(r"python hub_cards/space/app\.py --hub ORG/", "skip", "needs a Hub results repo; tests/test_space_hub.py"),
    Entry(r"ditlaws space deploy --repo ORG/", "skip", "needs a Hub account; tests/test_space_deploy.py"),
]
SNIPPETS = [
    Entry(r"from ditlaws\.models import build_model, InContextDiT", "run"),
    Entry(r"import torch\nfrom diffusers import FlowMatchEulerDiscreteScheduler\n"
          r"from ditlaws import BuiltinTextEncoder, CrossAttnDiT, DiTPipeline", "run"),
    Entry(r"from ditlaws import DiTPipeline\n", "fresh_pipeline"),
]
OTHER = [
    Entry(r"executor:\n", "executor_yaml"),
    Entry(r"trunks: true\n", "trunks_yaml"),
]


def entry_for(piece: Piece) -> Entry | None:
    table = {"command": COMMANDS, "python": SNIPPETS, "text": OTHER}[piece.kind]
    found = [e for e in table if e.matches(piece)]
    assert len(found) <= 1, f"README.md:{piece.line}: {piece.text[:80]!r} matches several entries: {found}"
    return found[0] if found else None


def test_every_readme_block_is_known():
    """Every README block is run or skipped with a reason, and every table entry still matches a block."""
    pieces = readme_blocks()
    unknown = [f"README.md:{p.line}: {p.text[:100]!r}" for p in pieces if p.skip is None and entry_for(p) is None]
    assert not unknown, ("README blocks that tests/test_readme.py neither runs nor skips (add an entry to its "
                         "tables, or `<!-- readme-test: skip: why -->` before the block):\n" + "\n".join(unknown))
    stale = [e.pattern for e in COMMANDS + SNIPPETS + OTHER if not any(e.matches(p) for p in pieces)]
    assert not stale, f"tests/test_readme.py entries that match no README block any more: {stale}"


def test_the_parser_reads_commands_snippets_and_skip_marks():
    text = ("<!-- readme-test: skip: needs a GPU -->\n```bash\npython a.py \\\n  --x 1   # note\n\nmake b\n```\n"
            "```python\nprint(1)\n```\n```\ntree\n```\n")
    pieces = readme_blocks(text)
    assert [(p.kind, p.text, p.skip) for p in pieces] == [
        ("command", "python a.py --x 1", "needs a GPU"), ("command", "make b", "needs a GPU"),
        ("python", "print(1)", None), ("text", "tree", None)]


# ---------------------------------------------------------------------------------------------------------------
# Running it


def browser_missing() -> bool:
    """No chromium + playwright here (tests/test_space_browser.py's rule: DITLAWS_REQUIRE_BROWSER=1 makes it fail)."""
    from ditlaws.space import browser

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = True
    else:
        missing = browser.find_chromium() is None
    assert not (missing and os.environ.get("DITLAWS_REQUIRE_BROWSER") == "1"), "DITLAWS_REQUIRE_BROWSER=1: no chromium"
    return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Session:
    """One working folder in which the README's pieces run in order."""

    def __init__(self, work: Path):
        self.work, self.log = work, []
        self.cache = work / ".cache-ditlaws"
        for name in ("scripts", "src", "hub_cards", "train_dit.py", "evaluate_dit.py", "fit_laws.py"):
            (work / name).symlink_to(ROOT / name)
        shutil.copytree(ROOT / "configs", work / "configs")
        demo = yaml.safe_load((ROOT / "configs" / "sweeps" / "demo.yaml").read_text())
        for key, value in TINY_DEMO.items():
            if key == "base":
                for section, keys in value.items():
                    demo["base"].setdefault(section, {}).update(keys)
            elif key == "eval":
                demo["eval"].update(value)
            else:
                demo[key] = value
        (work / "configs" / "sweeps" / "demo.yaml").write_text(yaml.safe_dump(demo, sort_keys=False))
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                    "OMP_NUM_THREADS": "1", "DITLAWS_CACHE": str(self.cache), "MPLBACKEND": "Agg",
                    "TOKENIZERS_PARALLELISM": "false", "PY": sys.executable, "DEMO_NEXT_BUDGET": DEMO_NEXT_BUDGET,
                    "DEMO_NEXT_SIZES": "3", "DEMO_BOOTSTRAP": "100"}

    def argv(self, tokens: list[str]) -> tuple[list[str], dict]:
        env = dict(self.env)
        while tokens and re.match(r"^[A-Z_]+=", tokens[0]):
            key, value = tokens.pop(0).split("=", 1)
            env[key] = value
        if tokens[0] == "python":
            tokens = [sys.executable, *tokens[1:]]
        elif tokens[0] == "ditlaws":  # the console script, from this interpreter
            tokens = [sys.executable, "-c", "import sys; from ditlaws.cli import main; sys.exit(main())", *tokens[1:]]
        elif tokens[:2] == ["accelerate", "launch"]:
            tokens = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", str(free_port()),
                      *tokens[2:]]
        return tokens, env

    def sh(self, tokens: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
        argv, env = self.argv(list(tokens))
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=self.work, env=env, capture_output=True, text=True, timeout=timeout)
        self.log.append((" ".join(tokens), done.returncode))
        print(f"{time.perf_counter() - started:6.1f} s  {' '.join(tokens)[:110]}")
        assert done.returncode == 0, (f"{' '.join(tokens)} -> {done.returncode}\n{done.stdout[-2000:]}\n"
                                      f"{done.stderr[-3000:]}")
        return done

    def tokens(self, piece: Piece, entry: Entry) -> list[str]:
        return [entry.replace.get(t, t) for t in shlex.split(piece.text)] + entry.extra

    def python(self, code: str) -> subprocess.CompletedProcess:
        return self.sh(["python", "-c", code])

    # ---- handlers ---------------------------------------------------------------------------------------------
    def run(self, piece: Piece, entry: Entry):
        if piece.kind == "python":
            return self.python(piece.text)
        return self.sh(self.tokens(piece, entry))

    def make_demo(self, piece: Piece, entry: Entry):
        self.sh(["python", "-m", "ditlaws.feature_net", *TINY_FEATURES])  # the one-time network, tiny
        done = self.sh(["bash", "scripts/demo.sh", "outputs/demo"], timeout=600)
        assert "Demo done" in done.stdout
        assert (self.work / "outputs/demo/fit/report.md").is_file()
        json.loads((self.work / "outputs/demo/fit/fit.json").read_text())

    def sweep_again(self, piece: Piece, entry: Entry):
        runs = sorted(p.name for p in (self.work / "outputs/demo/sweep/store/runs/demo").glob("*.json"))
        self.sh(self.tokens(piece, entry))
        assert sorted(p.name for p in (self.work / "outputs/demo/sweep/store/runs/demo").glob("*.json")) == runs

    def feature_net(self, piece: Piece, entry: Entry):
        weights = self.cache / "features" / "builtin_cnn.safetensors"
        before = weights.read_bytes()  # made by `make demo`: "once" means this call keeps it
        assert "kept" in self.sh(self.tokens(piece, entry)).stdout and weights.read_bytes() == before

    def two_processes(self, piece: Piece, entry: Entry):
        done = self.sh(self.tokens(piece, entry))
        summary = json.loads((self.work / "outputs/demo_run_2proc/summary.json").read_text())
        assert summary["processes"] == 2 and "done: trained" in done.stdout

    def evaluate(self, piece: Piece, entry: Entry):
        done = self.sh(self.tokens(piece, entry))
        assert "estimated cost" in done.stdout
        self.evaluations = getattr(self, "evaluations", 0) + 1
        report = json.loads((self.work / "outputs/demo_run/eval.json").read_text())
        if self.evaluations == 2:  # the second command added its metrics to the first's
            assert {"val_loss", "vlb_bpd", "nll_bpd", "ood_val_loss", "fid", "accuracy"} <= set(report["summary"])
            assert "merged into" in done.stdout
            assert (self.work / report["results"]["ood"]["samples"]["grid"]).is_file()

    def fresh_pipeline(self, piece: Piece, entry: Entry):
        self.python(piece.text + "\nassert type(pipe).__module__ == 'ditlaws.pipeline'")
        self.python("import diffusers\npipe = diffusers.DiffusionPipeline.from_pretrained('my_pipe', "
                    "trust_remote_code=True)\nassert type(pipe).__name__ == 'DiTPipeline'\n"
                    "pipe(['a red circle'], num_inference_steps=2)")

    def trunk_dry_run(self, piece: Piece, entry: Entry):
        last = self.sh(self.tokens(piece, entry)).stdout.strip().splitlines()[-1]
        assert "FLOPs" in last and "independent" in last, last

    def trunks_yaml(self, piece: Piece, entry: Entry):
        """The README's trunk keys on the (tiny) demo sweep: its plan is made and trunk jobs are listed."""
        sweep = yaml.safe_load((self.work / "configs/sweeps/demo.yaml").read_text())
        snippet = yaml.safe_load(piece.text)
        sweep["trunks"] = snippet["trunks"]
        sweep["base"].setdefault("train", {}).update(snippet["base"]["train"], warmup_steps=2)
        path = self.work / "configs/sweeps/readme_trunks.yaml"
        path.write_text(yaml.safe_dump(sweep, sort_keys=False))
        self.sh(["python", "-m", "ditlaws.sweep", "--config", str(path), "--dry-run"])

    def executor_yaml(self, piece: Piece, entry: Entry):
        from ditlaws.config import ExecutorConfig
        from ditlaws.options import section_from_dict

        section_from_dict(ExecutorConfig, yaml.safe_load(piece.text)["executor"], "executor")

    def space(self, piece: Piece, entry: Entry):
        from ditlaws.laws.predict import load_fit
        from ditlaws.space import browser

        if browser_missing():
            self.log.append((piece.text, "skipped: no chromium"))
            return
        tokens, env = self.argv(self.tokens(piece, entry))
        fit = load_fit(self.work / "outputs/demo/fit/fit.json")
        with browser.served_app(tokens[2:], app=self.work / tokens[1], cwd=self.work, env=env) as app:
            with browser.chromium_page(1280, 900) as page:
                browser.open_app(page, app.url)
                browser.ask_budget(page, "1e13")
                shown = browser.read_box(page, "n_opt")
        p = fit.predict(1e13)
        approach = "approach2" if "N_opt" in p["approach2"] else "approach3"
        value = float(re.search(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?", shown.replace(",", "")).group())
        assert value == pytest.approx(p[approach]["N_opt"]["value"], rel=1e-3)
        self.log.append((piece.text, "served, asked 1e13 in Chromium"))


@pytest.mark.slow  # the whole README on tiny settings: 8.9 min on the 2 shared cores under load average ~15
# (2026-12-07; the tiny demo 4 min of it, each Python start 8-20 s of imports); well under that on a quiet machine
def test_the_readme_runs_in_order(tmp_path):
    session = Session(tmp_path)
    for piece in readme_blocks():
        if piece.skip:
            continue
        entry = entry_for(piece)
        assert entry is not None, f"README.md:{piece.line}: unknown block (see test_every_readme_block_is_known)"
        if entry.how == "skip":
            continue
        getattr(session, entry.how)(piece, entry)
    ran = [command for command, _ in session.log]
    assert any("scripts/demo.sh" in c for c in ran) and any("accelerate launch --multi_gpu" in c for c in ran)
    assert any(status == "served, asked 1e13 in Chromium" for _, status in session.log) or \
        browser_missing()  # the Space ran on the demo's fit.json, unless this machine has no chromium
