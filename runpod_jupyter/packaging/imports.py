"""Which modules a piece of code imports, including lazy imports inside functions and optional
ones (inside ``try: … except ImportError``), with the line for messages."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass

from ..errors import PackagingError
from .astutil import dotted_name

#: ``try:`` statements (``try: … except* …`` too, on Python 3.11+).
if sys.version_info >= (3, 11):
    _TRY_NODES: tuple[type[ast.Try] | type[ast.TryStar], ...] = (ast.Try, ast.TryStar)
else:
    _TRY_NODES = (ast.Try,)


@dataclass(frozen=True)
class ImportRef:
    """A module the shipped code imports; ``optional`` when a failed import is caught."""

    module: str
    line: int | None = None
    optional: bool = False
    origin: str = "the cell"


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
    return any(dotted_name(n) in ("ImportError", "ModuleNotFoundError", "Exception", "BaseException")
               for n in names)


def collect_imports(nodes: list[ast.stmt], *, first_line: int = 1, origin: str = "the cell",
                    allow_relative: bool = False) -> list[ImportRef]:
    """Every absolute import in ``nodes``, function bodies included (lazy imports count).
    Relative imports are an error in a cell; in a copied local package they are its own business."""
    refs: list[ImportRef] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                refs.append(ImportRef(alias.name, node.lineno + first_line - 1, optional, origin))
            return
        if isinstance(node, ast.ImportFrom):
            if node.level and allow_relative:
                return
            if node.level:
                raise PackagingError(
                    f"Line {node.lineno + first_line - 1} of {origin} is a relative import "
                    f"(from {'.' * node.level}{node.module or ''} import …); a worker runs "
                    "handler.py as a script, so there is no package to be relative to.",
                    hint="Use an absolute import (from mypackage import x).",
                )
            if node.module:
                for alias in node.names:
                    # `from google import protobuf` may name a submodule: record the longer path too.
                    dotted = node.module if alias.name == "*" else f"{node.module}.{alias.name}"
                    refs.append(ImportRef(dotted, node.lineno + first_line - 1, optional, origin))
            return
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and dotted_name(node.func) in ("importlib.import_module", "import_module", "__import__"):
            refs.append(ImportRef(node.args[0].value, node.lineno + first_line - 1, optional, origin))
        if isinstance(node, _TRY_NODES):
            body_optional = optional or any(_catches_import_error(h) for h in node.handlers)
            for stmt in node.body:
                visit(stmt, body_optional)
            for part in (*node.handlers, *node.orelse, *node.finalbody):
                visit(part, optional)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    for stmt in nodes:
        visit(stmt, False)
    return refs
