"""The package's layering (meshseg/__init__.py): no module imports from a higher layer.

Every module's imports are read from its source (module level and inside functions alike), so
a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "meshseg"

# Module or package prefix -> layer; the longest matching prefix wins.
LAYERS = {
    "meshseg": 0,  # the package itself (__version__)
    "meshseg.labels": 0,
    "meshseg.metrics": 0,
    "meshseg.logs": 0,
    "meshseg.image": 1,
    "meshseg.data": 2,
    "meshseg.nn": 3,
    "meshseg.report": 4,
    "meshseg.pipeline": 5,
    "meshseg.workflow": 5,
    "meshseg.cli": 6,
}
LAYER_NAMES = ["base", "image", "data", "nn", "report", "pipeline", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    if prefixes == ["meshseg"] and module != "meshseg":
        raise KeyError(f"{module} is in no layer: add it to LAYERS (and meshseg/__init__.py)")
    return LAYERS[max(prefixes, key=len)]


def imported_modules(module: str, path: Path) -> set[str]:
    """The meshseg modules that ``module`` imports; ``from X import name`` counts as
    ``X.name`` where that is a module, else as ``X``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                name = f"{source}.{alias.name}"
                found.add(name if name in MODULES else source)
    return {name for name in found if name == "meshseg" or name.startswith("meshseg.")}


def test_every_module_has_a_layer():
    assert len(MODULES) > 30
    for module in MODULES:
        layer(module)


def test_imports_resolve_to_modules():
    for module, path in MODULES.items():
        for name in imported_modules(module, path):
            assert name in MODULES, f"{module} imports {name}, which is not a module of src/meshseg"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    own = layer(module)
    upward = sorted(
        f"{name} ({LAYER_NAMES[layer(name)]})"
        for name in imported_modules(module, MODULES[module])
        if layer(name) > own
    )
    assert not upward, f"{module} ({LAYER_NAMES[own]}) imports a higher layer: {', '.join(upward)}"


def test_the_check_sees_an_upward_import(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(
        "def f():\n    from meshseg.report.tables import dice_table\n"
        "from meshseg.nn import runtime\n"
    )
    names = imported_modules("meshseg.image.probe", path)
    assert names == {"meshseg.report.tables", "meshseg.nn.runtime"}
    assert {layer(name) for name in names} == {LAYERS["meshseg.report"], LAYERS["meshseg.nn"]}
