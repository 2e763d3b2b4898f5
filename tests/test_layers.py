"""The package's layering, read from the source (every import: module level, inside functions, and under
``TYPE_CHECKING``): engine/ in named layers with no import running up, no import circle in engine/ or
store/, only engine/ importing MLX at module level, and only server/ reaching the wire-format providers.

A new engine module must be given its layer here (ARCHITECTURE.md says which is which)."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlxcli"

# engine/, bottom to top. A pattern names modules relative to mlxcli.engine; "*.model" is a kind
# package's own module of that name.
ENGINE_LAYERS = {
    "ground": ["settings", "platform", "queue", "group", "disk_cache", "speculation.stats"],
    "text": ["harmony", "formats", "output", "prompt", "grammars", "constraints", "prompt_cache", "details"],
    "models": ["loading", "served", "registry", "tokens", "*.model", "embeddings.bert", "speech.whisper", "speech.mel",
               "speech.tokenizer", "vision.media", "vision.encoder", "vision.language", "speculation.setup"],
    "requests": ["job", "sampling", "decoding", "overflow", "schedule", "speech.decoding", "speech.timing",
                 "speculation.lookup", "speculation.depth"],
    "runners": ["runner", "batch", "solo", "worker", "kind", "*.runner", "*.work", "*.kind", "decode", "speculation.*"],
    "top": ["kinds", "peers", "engine"],
}
MLX = ("mlx", "mlx_lm", "mlx_vlm")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> list[tuple[str, bool]]:
    """(imported module, at module level) for every import in module ``name``; a ``from X import Y``
    names X.Y when that is a module of ours, else X."""
    tree = ast.parse(MODULES[name].read_text())
    top_level = {id(node) for node in tree.body}
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((target if target in MODULES else base, id(node) in top_level))
    return found


def _ours(target: str) -> str | None:
    """The module of ours an import reaches (its package when it names something inside one)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph(prefix: str) -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        if name == prefix or name.startswith(prefix + "."):
            graph[name] = {m for t, _ in _imports(name) if (m := _ours(t)) and m != name and m.startswith(prefix + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _engine_layer(name: str) -> int | None:
    short = name.removeprefix("mlxcli.engine.")
    for rank, patterns in enumerate(ENGINE_LAYERS.values()):
        if any(fnmatch.fnmatchcase(short, p) for p in patterns):
            return rank
    return None


@pytest.mark.parametrize("package", ["mlxcli.engine", "mlxcli.store"])
def test_no_import_circle(package):
    assert _cycles(_graph(package)) == []


def test_every_engine_module_has_a_layer_and_no_import_runs_up():
    layers = list(ENGINE_LAYERS)
    problems = []
    for name, imports in _graph("mlxcli.engine").items():
        if MODULES[name].name == "__init__.py" and not imports:
            continue  # a package's docstring
        layer = _engine_layer(name)
        if layer is None:
            problems.append(f"{name} has no layer in ENGINE_LAYERS")
            continue
        for target in sorted(imports):
            other = _engine_layer(target)
            if other is not None and other > layer:
                problems.append(f"{name} ({layers[layer]}) imports {target} ({layers[other]})")
    assert problems == []


def test_only_the_engine_imports_mlx_at_module_level():
    offenders = [
        f"{name} imports {target}"
        for name in MODULES
        if not name.startswith("mlxcli.engine")
        for target, top in _imports(name)
        if top and target.split(".")[0] in MLX
    ]
    assert offenders == []


def test_only_the_server_reaches_the_wire_format_providers():
    offenders = [
        f"{name} imports {target}"
        for name in MODULES
        if not name.startswith("mlxcli.server")
        for target, _ in _imports(name)
        if target.startswith("mlxcli.server.providers")
    ]
    assert offenders == []


def test_the_scan_sees_circles_type_only_imports_and_layers():
    """The checks above can fail: a circle is found, an import under TYPE_CHECKING is seen (runner.py
    names Job only for types), and the façade sits above the requests it queues."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert ("mlxcli.engine.job", False) in _imports("mlxcli.engine.runner")
    assert _engine_layer("mlxcli.engine.engine") > _engine_layer("mlxcli.engine.job") > _engine_layer("mlxcli.engine.served")
