"""Which names a cell reads from the notebook, and which it binds at the top level.

A remote cell runs in a fresh namespace built from what is shipped, so the reads decide what
travels and the binds decide what comes back. Python's own rules, read off the ``ast``:

* a name is **read** when the module scope loads it before the cell has surely bound it
  (``x = 1; print(x)`` needs nothing; ``x += 1`` needs ``x``; a binding inside ``if``/``for``/
  ``while``/``match`` may not happen, so a later read still needs the notebook's value);
* code that runs later (function and lambda bodies, methods) reads the globals it does not bind
  itself; those are needed unless the cell binds them somewhere at the top level;
* a name is **bound** by any assignment form at module scope: ``=``, augmented, annotated with a
  value, walrus (also inside a comprehension), ``for``/``with``/``except``/``match`` targets,
  ``import``, ``def``, ``class``, and ``global`` declarations in functions that assign.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


@dataclass(frozen=True)
class CellNames:
    """``reads``: names the cell needs from outside (sorted); ``binds``: names it binds at the top
    level (sorted)."""

    reads: tuple[str, ...]
    binds: tuple[str, ...]


def cell_names(tree: ast.Module) -> CellNames:
    """The names a parsed cell reads and binds (see the module docstring for the rules)."""
    walker = _ModuleWalker()
    walker.block(tree.body, definite=True)
    later = walker.deferred - walker.all_binds
    reads = (walker.immediate | later) - {"__builtins__"}
    return CellNames(tuple(sorted(reads)), tuple(sorted(walker.all_binds)))


def _target_names(node: ast.AST) -> list[str]:
    """Names a target binds (``a``, ``a, (b, *c)``; not ``a.x`` or ``a[0]``)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [n for elt in node.elts for n in _target_names(elt)]
    if isinstance(node, ast.Starred):
        return _target_names(node.value)
    return []


def _import_binds(node: ast.Import | ast.ImportFrom) -> list[str]:
    names = []
    for alias in node.names:
        if alias.name == "*":
            continue
        if alias.asname:
            names.append(alias.asname)
        elif isinstance(node, ast.ImportFrom):
            names.append(alias.name)
        else:
            names.append(alias.name.split(".")[0])
    return names


def _pattern_binds(pattern: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(pattern):
        if isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            names.append(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.append(node.rest)
    return names


class _ModuleWalker:
    """Walks module-scope statements in order, tracking what is surely bound so far."""

    def __init__(self) -> None:
        self.bound: set[str] = set()  # surely bound at this point
        self.all_binds: set[str] = set()  # bound anywhere at module scope
        self.immediate: set[str] = set()  # read before surely bound
        self.deferred: set[str] = set()  # read by code that runs later

    # -- bookkeeping -----------------------------------------------------------------------
    def read(self, name: str) -> None:
        if name not in self.bound:
            self.immediate.add(name)

    def bind(self, names: list[str] | str, definite: bool) -> None:
        for name in [names] if isinstance(names, str) else names:
            self.all_binds.add(name)
            if definite:
                self.bound.add(name)

    # -- statements ------------------------------------------------------------------------
    def block(self, body: list[ast.stmt], definite: bool) -> None:
        for stmt in body:
            self.stmt(stmt, definite)

    def stmt(self, node: ast.stmt, definite: bool) -> None:
        if isinstance(node, _FUNCTIONS):
            for expr in [*node.decorator_list, *_arg_defaults(node.args)]:
                self.expr(expr, definite)
            if node.returns is not None:
                self.expr(node.returns, definite)
            for arg in _all_args(node.args):
                if arg.annotation is not None:
                    self.expr(arg.annotation, definite)
            self.bind(node.name, definite)
            self._function_body(node, definite)
        elif isinstance(node, ast.ClassDef):
            for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self.expr(expr, definite)
            self._class_body(node.body, definite)
            self.bind(node.name, definite)
        elif isinstance(node, ast.Assign):
            self.expr(node.value, definite)
            for target in node.targets:
                self.target(target, definite)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value, definite)
            if isinstance(node.target, ast.Name):
                self.read(node.target.id)
            self.target(node.target, definite)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.expr(node.value, definite)
                self.target(node.target, definite)
            elif not isinstance(node.target, ast.Name):
                self.target(node.target, definite)
            self.expr(node.annotation, definite)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter, definite)
            self.target(node.target, False)
            self.block(node.body, False)
            self.block(node.orelse, False)
        elif isinstance(node, (ast.While, ast.If)):
            self.expr(node.test, definite)
            self.block(node.body, False)
            self.block(node.orelse, False)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expr(item.context_expr, definite)
                if item.optional_vars is not None:
                    self.target(item.optional_vars, definite)
            self.block(node.body, definite)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.block(node.body, definite)  # type: ignore[attr-defined]
            for handler in node.handlers:  # type: ignore[attr-defined]
                if handler.type is not None:
                    self.expr(handler.type, False)
                if handler.name:
                    self.bind(handler.name, False)
                self.block(handler.body, False)
            self.block(node.orelse, False)  # type: ignore[attr-defined]
            self.block(node.finalbody, definite)  # type: ignore[attr-defined]
        elif isinstance(node, ast.Match):
            self.expr(node.subject, definite)
            for case in node.cases:
                self._pattern(case.pattern)
                self.bind(_pattern_binds(case.pattern), False)
                if case.guard is not None:
                    self.expr(case.guard, False)
                self.block(case.body, False)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.bind(_import_binds(node), definite)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.read(target.id)
                else:
                    self.expr(target, definite)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            pass  # at module scope these change nothing
        else:  # Expr, Return, Raise, Assert, Pass, Break, Continue, TypeAlias ...
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, definite)

    def target(self, node: ast.expr, definite: bool) -> None:
        """A store target: names are bound; subscripts and attributes read their objects."""
        if isinstance(node, ast.Name):
            self.bind(node.id, definite)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                self.target(elt, definite)
        elif isinstance(node, ast.Starred):
            self.target(node.value, definite)
        else:  # a.x = ..., a[i] = ...: `a` (and `i`) are read
            self.expr(node, definite)

    def _pattern(self, pattern: ast.AST) -> None:
        for node in ast.walk(pattern):
            if isinstance(node, ast.MatchValue):
                self.expr(node.value, False)
            elif isinstance(node, ast.MatchClass):
                self.expr(node.cls, False)

    # -- expressions -----------------------------------------------------------------------
    def expr(self, node: ast.expr, definite: bool) -> None:
        """Reads in an expression run now; walrus binds at module scope; lambdas run later."""
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.read(node.id)
            else:
                self.bind(node.id, definite)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value, definite)
            self.bind(_target_names(node.target), definite)
        elif isinstance(node, ast.Lambda):
            for default in _arg_defaults(node.args):
                self.expr(default, definite)
            self.deferred |= _scope_reads(node)
        elif isinstance(node, _COMPREHENSIONS):
            self._comprehension(node, definite)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, definite)
                elif isinstance(child, ast.keyword | ast.comprehension | ast.arg):
                    for sub in ast.iter_child_nodes(child):
                        if isinstance(sub, ast.expr):
                            self.expr(sub, definite)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
                       definite: bool) -> None:
        """The first iterable is read in module scope; the rest in the comprehension's own scope,
        where the loop targets are local (a walrus still binds at module scope)."""
        local: set[str] = set()
        for index, gen in enumerate(node.generators):
            if index == 0:
                self.expr(gen.iter, definite)
            else:
                self._inner(gen.iter, local, definite)
            local |= set(_target_names(gen.target))
            for cond in gen.ifs:
                self._inner(cond, local, definite)
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            self._inner(part, local, definite)

    def _inner(self, node: ast.expr, local: set[str], definite: bool) -> None:
        saved = self.bound
        self.bound = saved | local
        try:
            self.expr(node, definite)
        finally:
            self.bound = saved | (self.bound - saved - local)

    # -- bodies that run later, or in their own scope ----------------------------------------
    def _function_body(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, definite: bool) -> None:
        self.deferred |= _scope_reads(node)
        for name in _global_assignments(node):
            self.bind(name, False)

    def _class_body(self, body: list[ast.stmt], definite: bool) -> None:
        """A class body runs now in its own namespace: what it binds stays in the class."""
        saved_bound, saved_all = set(self.bound), set(self.all_binds)
        for stmt in body:
            self.stmt(stmt, definite)
        self.bound, self.all_binds = saved_bound, saved_all


def _all_args(args: ast.arguments) -> list[ast.arg]:
    found = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    found += [a for a in (args.vararg, args.kwarg) if a is not None]
    return found


def _arg_defaults(args: ast.arguments) -> list[ast.expr]:
    return [*args.defaults, *(d for d in args.kw_defaults if d is not None)]


def _scope_reads(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Global names a function (and what it nests) reads: loads that are not its own locals."""
    local = {a.arg for a in _all_args(node.args)}
    declared_global: set[str] = set()
    loads: set[str] = set()
    body: list[ast.AST] = list(node.body) if isinstance(node.body, list) else [node.body]
    stack: list[ast.AST] = list(body)
    nested: list[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda] = []
    while stack:
        item = stack.pop()
        if isinstance(item, (*_FUNCTIONS, ast.Lambda)):
            if isinstance(item, _FUNCTIONS):
                local.add(item.name)
                stack.extend(item.decorator_list)
            stack.extend(_arg_defaults(item.args))
            nested.append(item)
            continue
        if isinstance(item, ast.ClassDef):
            local.add(item.name)
        if isinstance(item, ast.Global):
            declared_global.update(item.names)
        elif isinstance(item, ast.Nonlocal):
            local.update(item.names)
        elif isinstance(item, ast.Name):
            (loads if isinstance(item.ctx, ast.Load) else local).add(item.id)
        elif isinstance(item, (ast.Import, ast.ImportFrom)):
            local.update(_import_binds(item))
        elif isinstance(item, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and item.name:
            local.add(item.name)
        stack.extend(ast.iter_child_nodes(item))
    local -= declared_global
    reads = loads - local
    for inner in nested:
        reads |= _scope_reads(inner) - local
    return reads


def _global_assignments(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names a function declares ``global`` and assigns: calling it binds them at module scope."""
    declared: set[str] = set()
    stored: set[str] = set()
    for item in ast.walk(node):
        if isinstance(item, ast.Global):
            declared.update(item.names)
        elif isinstance(item, ast.Name) and isinstance(item.ctx, ast.Store):
            stored.add(item.id)
        elif isinstance(item, (*_FUNCTIONS, ast.ClassDef)) and item is not node:
            stored.add(item.name)
        elif isinstance(item, (ast.Import, ast.ImportFrom)):
            stored.update(_import_binds(item))
    return declared & stored
