"""No function in the package takes more than six parameters (issue 12).

Settings and paths that travel together are bundled in small frozen dataclasses instead
(e.g. :class:`meshseg.nn.inference.LabelFiles`). ``self`` and ``cls`` are not counted;
``*args`` and ``**kwargs`` are.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "meshseg"
MAX_PARAMETERS = 6


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The names of a function's parameters, ``self``/``cls`` left out."""
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [n for n in names if n not in ("self", "cls")]


def functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method of the package, with its ``path:line`` location."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", node))
    return found


def test_functions_are_found():
    names = {node.name for _, node in functions()}
    assert {"segment_file", "structure_table", "fetch_mindboggle"} <= names


def test_no_function_takes_more_than_six_parameters():
    offenders = [
        f"{where} {node.name}({', '.join(parameters(node))})"
        for where, node in functions()
        if len(parameters(node)) > MAX_PARAMETERS
    ]
    assert not offenders, "more than 6 parameters:\n" + "\n".join(offenders)
