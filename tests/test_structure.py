"""Package structure: the modules of cryopick import each other without a cycle.

The graph is read from the source (every ``import cryopick.X`` and ``from cryopick.X import``,
function-level imports included, since a lazy import is still a dependency), not from what
Python happens to have imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cryopick

PACKAGE = Path(cryopick.__file__).resolve().parent
REPO = PACKAGE.parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The cryopick modules ``path`` imports anywhere in its body (``from cryopick import x``
    counts as importing ``cryopick.x`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    targets = set()
    for name in found:
        # the longest known module that the imported name lies in
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != "cryopick":
            targets.add(name)
    return targets


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, known) - {module_name(p)} for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first = last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_reader_sees_lazy_imports_and_cycles(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import os\nfrom cryopick.a import f\n\ndef g():\n"
        "    from cryopick import b\n    import cryopick.c.d\n"
    )
    known = {"cryopick", "cryopick.a", "cryopick.b", "cryopick.c", "cryopick.c.d"}
    assert imported_modules(source, known) == {"cryopick.a", "cryopick.b", "cryopick.c.d"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_cryopick_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert "cryopick.training" in graph and "cryopick.inference" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_inference_does_not_depend_on_training():
    """What inference needs from training time (the network input, the checkpoint format)
    lives in modules both use; inference never reaches training, directly or not."""
    graph = import_graph()
    reached, todo = set(), ["cryopick.inference"]
    while todo:
        for target in graph[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert "cryopick.training" not in reached


def test_the_dag_build_imports_no_scoring_or_network_code():
    """Every cluster job parses the workflow before its own work (issue 15: ~7,800 jobs at
    100,000 micrographs), so what the rule files import at parse time is paid per job: the
    modules they import never reach SciPy (the metrics' optimisers, the generator's FFTs),
    torch or the network."""
    import subprocess
    import sys

    modules = {
        "cryopick.settings",
        "cryopick.workflow",
        "cryopick.workflow.paths",
        "cryopick.workflow.plan",
        "cryopick.workflow.failures",
        "cryopick.workflow.snakemake_compat",
        "cryopick.workflow.stages",
        "cryopick.batching",
        "cryopick.sam",
        "cryopick.synthetic_settings",
    }
    for rules in (REPO / "rules").glob("*.smk"):  # the list above is what they import
        for line in rules.read_text().splitlines():
            if line.startswith("from cryopick"):
                assert line.split()[1] in modules, (rules.name, line)
    code = (
        "import sys; "
        + "; ".join(f"import {m}" for m in sorted(modules))
        + "; print(' '.join(m for m in ('scipy', 'torch', 'cryopick.metrics',"
        " 'cryopick.unet', 'cryopick.synthetic') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
