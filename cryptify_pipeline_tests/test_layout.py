"""The layout's rules, read from the package itself.

The layers: no module imports a higher layer, the folders that must not know each other do not,
no import loop exists, and no private name is imported from another module. The graph is read
with ``ast``, so an import inside a function (the way a loop is usually hidden) counts as much
as one at the top. ``docs/design.md`` explains the layers.

The packages: ``market/`` knows neither Dagster nor Postgres, ``ml/`` and ``api/`` no Dagster,
checked in a fresh interpreter (what importing them really loads).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import cryptify_pipeline

PACKAGE = Path(cryptify_pipeline.__file__).parent
DAGSTER = ("dagster", "dagster_postgres", "dagster_graphql")
POSTGRES = ("adbc_driver_postgresql", "psycopg2", "sqlalchemy", "cryptify_pipeline.storage")


def modules_of(folder: str) -> list[str]:
    return sorted(
        f"cryptify_pipeline.{folder}.{path.stem}"
        for path in (PACKAGE / folder).glob("*.py")
        if path.stem != "__init__"
    )


def loaded_after_import(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden modules in a fresh interpreter's ``sys.modules`` after importing
    ``modules``."""
    script = "\n".join(
        [
            "import json, sys",
            *(f"import {module}" for module in modules),
            f"print(json.dumps(sorted(n for n in sys.modules"
            f" if any(n == f or n.startswith(f + '.') for f in {forbidden!r}))))",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("folder", "forbidden"), [("market", DAGSTER + POSTGRES), ("ml", DAGSTER), ("api", DAGSTER)]
)
def test_folder_imports_none_of_the_forbidden_packages(folder, forbidden):
    modules = modules_of(folder)
    assert modules, folder
    assert loaded_after_import(modules, forbidden) == []


def test_the_check_sees_a_forbidden_import():
    # the same check on a module that does import Dagster must report it
    assert "dagster" in loaded_after_import(["cryptify_pipeline.partitions"], DAGSTER)


ROOT = "cryptify_pipeline"

# top to bottom; a module imports only from its own layer or a lower one
LAYERS: tuple[tuple[str, ...], ...] = (
    ("definitions", "bootstrap"),
    ("assets", "automation"),
    ("resources",),
    ("api", "cli"),
    ("storage",),
    ("settings", "partitions", "run_tags", "run_config"),
    ("ml", "market"),
    ("hours", "redaction", "postgres_url"),
)
# groups of one layer that must not import each other, in the direction given
APART = {("assets", "automation"), ("automation", "assets"), ("api", "cli")}
APART |= {("ml", "market"), ("market", "ml")}


def group_of(module: str) -> str:
    """``cryptify_pipeline.storage.pg_tables`` -> ``storage``; the package itself -> ``""``."""
    return module.removeprefix(ROOT).lstrip(".").split(".")[0]


def layer_of(module: str) -> int:
    """The layer's index, 0 the top; the package's ``__init__`` is below everything."""
    group = group_of(module)
    if not group:
        return len(LAYERS)
    for index, layer in enumerate(LAYERS):
        if group in layer:
            return index
    raise LookupError(f"{module} is in no layer: add {group!r} to LAYERS and docs/design.md")


def module_names() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its source; ``from pkg import
    name`` counts as an import of ``pkg.name`` when that is a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    known = set(modules)
    return {module: imports_of(module, path, known) for module, path in modules.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a higher layer, or across groups kept apart, as ``a -> b``."""
    problems = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            if layer_of(target) < layer_of(module):
                problems.append(f"{module} -> {target} (a higher layer)")
            elif (group_of(module), group_of(target)) in APART:
                problems.append(f"{module} -> {target} ({group_of(target)}/ is kept apart)")
    return problems


def import_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return loops


def test_every_module_has_a_layer():
    assert [layer_of(module) for module in import_graph()]


def test_no_module_imports_a_higher_layer():
    assert upward_imports(import_graph()) == []


def test_no_import_loop():
    assert import_loops(import_graph()) == []


# Each direction the layout once had: the checks must name it if it comes back.
OLD_DIRECTIONS = [
    ("automation.sensors", "assets.context", "assets/ is kept apart"),
    ("assets.models", "automation.jobs", "automation/ is kept apart"),
    ("assets.candle_checks", "automation.failures", "automation/ is kept apart"),
    ("resources", "automation.alerts", "a higher layer"),
    ("resources", "automation.failures", "a higher layer"),
    ("settings", "storage.server", "a higher layer"),
    ("cli.client", "automation.jobs", "a higher layer"),
    ("postgres_url", "settings", "a higher layer"),
]


@pytest.mark.parametrize(("importer", "imported", "named"), OLD_DIRECTIONS)
def test_an_old_direction_is_named(importer, imported, named):
    graph = import_graph()
    importer, imported = f"{ROOT}.{importer}", f"{ROOT}.{imported}"
    assert imported in graph, imported
    graph[importer] = graph[importer] | {imported}
    assert upward_imports(graph) == [f"{importer} -> {imported} ({named})"]


@pytest.mark.parametrize(
    "loop",
    [
        ("market.sources", "market.exchange"),  # sources built the exchange, which took its errors
        ("storage.server", "settings"),  # settings parsed URLs in storage/, which read settings
    ],
)
def test_an_old_loop_is_found(loop):
    graph = import_graph()
    first, second = (f"{ROOT}.{name}" for name in loop)
    graph[first] = graph[first] | {second}
    graph[second] = graph[second] | {first}
    assert any({first, second} <= set(component) for component in import_loops(graph))


def test_an_import_inside_a_function_counts(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from cryptify_pipeline.market import exchange\n")
    known = set(import_graph())
    assert imports_of(f"{ROOT}.market.sources", source, known) == {f"{ROOT}.market.exchange"}


def test_a_module_in_no_layer_is_refused():
    with pytest.raises(LookupError, match="'newfolder'"):
        layer_of(f"{ROOT}.newfolder.thing")


def private_imports() -> list[str]:
    """Each ``from cryptify_pipeline.x import _name``: a private name used outside its module."""
    found = []
    for module, path in sorted(module_names().items()):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(ROOT):
                found += [
                    f"{module} imports {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    return found


def test_no_private_name_is_imported_across_modules():
    assert private_imports() == []
