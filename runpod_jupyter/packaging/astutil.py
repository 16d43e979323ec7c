"""Small facts about Python syntax trees, shared by the cell analysis and the preflight checks."""

from __future__ import annotations

import ast
from collections.abc import Iterator

START = "runpod.serverless.start"


def statement_span(node: ast.stmt) -> tuple[int, int]:
    """First and last line of a statement, decorators included."""
    start = node.lineno
    for deco in getattr(node, "decorator_list", ()):
        start = min(start, deco.lineno)
    return start, node.end_lineno or node.lineno


def immediate_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node evaluated when ``node`` runs: function and lambda bodies are skipped (they run
    later), their decorators, defaults and annotations are not; class bodies run now."""
    stack: list[ast.AST] = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = current.args
            children: list[ast.AST | None] = [*current.decorator_list, *args.defaults,
                                              *args.kw_defaults, current.returns]
            children += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                                args.vararg, args.kwarg) if a is not None]
        elif isinstance(current, ast.Lambda):
            children = [*current.args.defaults, *current.args.kw_defaults]
        else:
            children = list(ast.iter_child_nodes(current))
        stack.extend(c for c in reversed(children) if c is not None)


def body_nodes(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """Nodes of a function's own body (nested functions' bodies excluded)."""
    for stmt in func.body:
        yield from immediate_nodes(stmt)


def dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def root_name(node: ast.AST) -> str | None:
    """The variable an Attribute/Subscript chain starts from: ``model`` in ``model.layers[0].w``."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def import_aliases(nodes: list[ast.stmt]) -> dict[str, str]:
    """Local name → full dotted name for the imports among ``nodes`` (searched recursively)."""
    aliases: dict[str, str] = {}
    for stmt in nodes:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def resolve_dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted name of ``node`` with its first part expanded through the imports."""
    name = dotted_name(node)
    if name is None:
        return None
    head, _, rest = name.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either operand order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main


def start_calls(node: ast.AST, aliases: dict[str, str], *, nested: bool = False) -> list[ast.Call]:
    """Calls of ``runpod.serverless.start`` in ``node`` (``nested``: look inside function bodies too)."""
    nodes = ast.walk(node) if nested else immediate_nodes(node)
    return [n for n in nodes if isinstance(n, ast.Call) and resolve_dotted(n.func, aliases) == START]
