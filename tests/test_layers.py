"""The house, redrawn from the code's imports: every import points one way down the layers, and no
modules import each other in a circle. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "swimlatent_wrap"

# Lowest first. A module may import from its own package or from a lower layer only; packages of one
# layer are independent of each other.
LAYERS = [
    {"swimlatent_wrap", "errors", "values", "secrets", "host", "workdir", "prompts", "images", "hub_access"},
    {"atomic", "selection_file", "locks"},
    {"runner", "sdscripts", "danbooru", "tagger", "modelspec"},
    {"recipe"},
    {"release"},
    {"stages"},
    {"commands"},
    {"cli"},
    {"__main__"},
]
LAYER = {package: number for number, packages in enumerate(LAYERS) for package in packages}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if "cpu_env" not in p.parts}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import module` depends on that module, `from module import name` on the module
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def test_every_package_has_a_layer():
    packages = {package_of(m) for m in import_graph()}
    assert packages <= set(LAYER), sorted(packages - set(LAYER))


def test_imports_point_down():
    wrong = []
    for module, targets in import_graph().items():
        own = package_of(module)
        for target in targets:
            theirs = package_of(target)
            if theirs != own and LAYER[theirs] >= LAYER[own] and theirs != "swimlatent_wrap":
                wrong.append(f"{module} → {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, cycles


# sd-scripts' own options are an argparse Namespace because sd-scripts' functions take one: the parser
# rebuilt from the manifest, the effective options a plan gives the script, and the hook that runs
# inside sd-scripts' process. The wrapper's own command line never goes below cli and commands.
SDSCRIPTS_NAMESPACES = {"swimlatent_wrap.sdscripts.parser", "swimlatent_wrap.stages.effective",
                        "swimlatent_wrap.stages.continued_schedule"}


def test_nothing_below_the_command_line_uses_argparse():
    users = set()
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if package_of(name) in ("cli", "commands") or name in SDSCRIPTS_NAMESPACES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
                users.add(name)
            if isinstance(node, ast.ImportFrom) and node.module == "argparse":
                users.add(name)
    assert not users, sorted(users)
