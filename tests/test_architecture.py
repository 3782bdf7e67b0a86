"""The shape of the code: imports only point down the layers of `cams`, the apps never import each
other, nothing inside the library goes through the front door `cams`, and no module imports
itself back through a circle (imports inside functions included: they hide circles, not remove them)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bengali_xai", "cams", "deepfake_xai")
#: the layers of cams, bottom first: a module may import its own layer and those below it
LAYERS = (
    ("core",),
    ("targets",),
    ("methods",),
    ("metrics",),
    ("viz",),
    ("training", "export", "callbacks", "report", "sanity"),
    ("distributed",),
    ("studies",),
    ("cli",),
    ("__main__",),
)
RANK = {part: i for i, layer in enumerate(LAYERS) for part in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path):
    """Every module `path` imports (module level and inside functions), as absolute dotted names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from cams import viz` imports the module cams.viz; `from cams.core.files import save_npz` the module
            modules = [f"{base}.{alias.name}" for alias in node.names if _exists(f"{base}.{alias.name}")]
            yield from modules if len(modules) == len(node.names) else [base, *modules]


def _exists(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def project_graph() -> dict:
    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = module_name(path)
            graph[name] = {m for m in imported_modules(path) if m.split(".")[0] in PACKAGES and _exists(m) and m != name}
    return graph


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<front door>"


def upward_arrows(graph: dict) -> list:
    found = []
    for source, targets in graph.items():
        if not source.startswith("cams.") or source == "cams":
            continue
        for target in targets:
            if not target.startswith("cams"):
                found.append(f"{source} imports the app module {target}")
            elif target == "cams":
                found.append(f"{source} imports the front door `cams`: import the module that defines the name")
            elif RANK[layer_of(target)] > RANK[layer_of(source)] or (
                    layer_of(target) != layer_of(source) and RANK[layer_of(target)] == RANK[layer_of(source)]):
                found.append(f"{source} ({layer_of(source)}) imports {target} ({layer_of(target)}), a layer not below it")
    return found


def test_every_part_of_cams_has_a_layer():
    parts = {layer_of(m) for m in project_graph() if m.startswith("cams.")}
    assert parts <= set(RANK), f"give these a layer in LAYERS: {sorted(parts - set(RANK))}"


def test_imports_only_point_down_the_layers_of_cams():
    assert upward_arrows(project_graph()) == []


def test_the_apps_do_not_import_each_other():
    graph = project_graph()
    crossing = [f"{s} -> {t}" for s, ts in graph.items() for t in ts
                if s.split(".")[0] != "cams" and t.split(".")[0] not in (s.split(".")[0], "cams")]
    assert crossing == []


def _cycle_from(start: str, graph: dict):
    """One import circle through `start` (a list of modules), or None; a package importing its own
    submodules (re-exports in __init__) is not a circle unless the submodule imports the package back."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_no_module_imports_itself_back_through_a_circle():
    graph = project_graph()
    # a package's __init__ that re-exports its submodules is the package's table of contents, not a
    # dependency of those submodules: drop the edges package -> own submodule
    graph = {s: {t for t in ts if not t.startswith(s + ".")} for s, ts in graph.items()}
    circles = [c for m in graph if (c := _cycle_from(m, graph))]
    assert circles == [], " -> ".join(circles[0]) if circles else ""


def test_the_walker_sees_an_arrow_that_points_up():
    """The checks above can fail: a made-up core module importing the CLI is reported."""
    graph = {"cams.core.fake": {"cams.cli.common"}, "cams.methods.fake": {"cams"},
             "cams.metrics.fake": {"cams.viz"}, "cams.training.fake": {"cams.export"}}
    found = upward_arrows(graph)
    assert len(found) == 4 and "cams.core.fake (core) imports cams.cli.common (cli)" in found[0]
    assert _cycle_from("a", {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]

