"""The package's import graph: no circles, and the record store and the laws import neither torch nor diffusers.

Every `import` / `from ... import` in src/ditlaws, at module level and inside functions alike (only the
`if TYPE_CHECKING:` blocks, which never run, are left out), becomes an arrow between modules of the package.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ditlaws"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package (evaluation/metrics/<name>/<name>.py are `evaluate` modules, loaded by path)."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.parent.parent.name != "metrics"}


def type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports (a `from pkg import mod` names the submodule when there is one)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                     else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import ditlaws.a.b` -> the longest known prefix
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_walk_sees_function_level_imports():
    edges = graph()
    assert "ditlaws.store.layout" in edges["ditlaws.config"]  # SweepConfig.check imports it inside a method
    assert "ditlaws.training.branch" in edges["ditlaws.training.loop"]  # a branch's start, imported where used
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    found = cycles(graph())
    assert not found, "import circles: " + " | ".join(" <-> ".join(c) for c in found)


def test_no_package_level_circles():
    """Packages too: no package reaches one that reaches it back (e.g. executors -> sweep -> executors)."""
    edges: dict[str, set[str]] = {}
    for name, targets in graph().items():
        edges.setdefault(package_of(name), set()).update(package_of(t) for t in targets if package_of(t) !=
                                                         package_of(name))
    edges.pop("ditlaws", None)  # the top-level package's lazy exports (`ditlaws.InContextDiT`) are no layer
    for targets in edges.values():
        targets.discard("ditlaws")
    found = cycles(edges)
    assert not found, "package circles: " + " | ".join(" <-> ".join(c) for c in found)


def test_the_store_sits_below_everything_that_needs_torch():
    edges = graph()
    store = {n for n in edges if n.startswith("ditlaws.store")}
    below = set(store)
    todo = list(store)
    while todo:
        for target in edges[todo.pop()]:
            if target not in below:
                below.add(target)
                todo.append(target)
    heavy = {"ditlaws.models", "ditlaws.pipeline", "ditlaws.data", "ditlaws.training", "ditlaws.publish",
             "ditlaws.config"}
    assert not {package_of(n) for n in below} & heavy, sorted(below - store)


def reachable(edges: dict[str, set[str]], start: set[str]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_publishing_sits_above_training():
    """Training never reaches ditlaws.publish (the hooks are passed in: `train(cfg, **run_hooks(cfg))`), while the
    callers that publish (train_dit.py's hooks, the sweep's jobs) import it."""
    edges = graph()
    training = {n for n in edges if n.startswith("ditlaws.training")}
    assert not {n for n in reachable(edges, training) if n.startswith("ditlaws.publish")}
    assert "ditlaws.publish" in edges["ditlaws.sweep.job"] and "ditlaws.training" in edges["ditlaws.sweep.job"]


@pytest.mark.parametrize("module", ["ditlaws.store", "ditlaws.laws", "ditlaws.store.hub", "ditlaws.laws.cli",
                                    "ditlaws.laws.table"])
def test_store_and_laws_import_neither_torch_nor_diffusers(module):
    assert loaded_by_importing(module, ("torch", "diffusers")) == "[]"


def loaded_by_importing(module: str, names: tuple[str, ...]) -> str:
    """Which of ``names`` a fresh interpreter has in sys.modules after importing ``module`` (printed as a list)."""
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            f"print(sorted(m for m in {names!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize("module, absent", [
    ("ditlaws.training", ("torch", "diffusers", "accelerate")),  # the package's names load on first access
    ("ditlaws.data", ("torch", "diffusers", "datasets")),
    # a run on the built-in data needs no VAE: diffusers' autoencoders (and the UNets they pull in) stay unloaded
    ("ditlaws.training.loop", ("diffusers.models.autoencoders",)),
    ("ditlaws.evaluation.runner", ("diffusers.models.autoencoders",)),
])
def test_what_a_process_does_not_import_until_it_needs_it(module, absent):
    """Every training, evaluation and sweep process starts with these imports: what is not needed costs seconds."""
    assert loaded_by_importing(module, absent) == "[]"
