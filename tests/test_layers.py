"""The import graph is a ladder (DESIGN.md, Layers): no circles, no import from a lower layer
to a higher one. Imports inside functions count: a deferred import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shortrec_jax"

# DESIGN.md's ladder, bottom first: a module may import its own layer and the ones below.
LADDER = (
    "ground",  # io, cli + overrides + platform, config-file loading, batch schema, vocabulary
    "data",  # data/ and the Method contract (interface.py), which is about Datasets
    "metrics",
    "models",  # models/ and baselines/ share a floor
    "training",
    "features",
    "pipeline",
    "evaluation",
    "entry",  # programs (recommend.py, the HTTP service) and the experiments (configs/)
)
GROUND = {
    "io",
    "cli",
    "overrides",
    "platform",
    "config_files",
    "schema",
    "vocabulary",
    "__init__",
}
# Models see only the ground floor (the schema and the vocabulary), never data/.
MODELS_MAY_IMPORT = {"ground", "models"}


def layer(module: str) -> str:
    """The layer of a module named like "shortrec_jax.data.splits"."""
    parts = module.split(".")[1:]
    top = parts[0] if parts else "__init__"
    # The experiments describe runs of the programs (data side files included); the library
    # loads them by path (config_files), never imports them.
    if module == "shortrec_jax.pipeline.service" or top in ("recommend", "configs"):
        return "entry"
    if top in GROUND:
        return "ground"
    if top == "interface":
        return "data"
    if top == "baselines":
        return "models"
    if top in LADDER:
        return top
    raise AssertionError(f"{module} is in no layer: add it to LADDER in {__file__}")


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, known) - {name} for name, path in mods.items()}


def test_every_module_is_in_a_layer():
    for name in modules():
        layer(name)


def test_no_import_points_up_the_ladder():
    wrong = []
    for name, targets in graph().items():
        here = layer(name)
        for target in targets:
            there = layer(target)
            if LADDER.index(there) > LADDER.index(here):
                wrong.append(f"{name} ({here}) imports {target} ({there})")
            elif name.startswith("shortrec_jax.models") and there not in MODELS_MAY_IMPORT:
                wrong.append(f"{name} (a model) imports {target} ({there})")
    assert not wrong, "\n".join(sorted(wrong))


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `edges` (depth-first search), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_circle():
    circle = _cycle(graph())
    assert circle is None, " -> ".join(circle)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [({"a": {"b"}, "b": {"c"}, "c": set()}, None), ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"])],
)
def test_the_circle_finder_finds_circles(edges, expected):
    assert _cycle(edges) == expected


def test_a_model_importing_data_is_caught():
    assert layer("shortrec_jax.data.splits") == "data"
    assert layer("shortrec_jax.models.layers") == "models"
    assert "data" not in MODELS_MAY_IMPORT
