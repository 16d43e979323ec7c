"""Read a notebook cell with ``ast`` and decide what the worker needs from it.

A cell is written for a notebook: it imports things, defines helpers, loads a model, and usually
ends with a test call (``handler({"input": ...})``) or a ``print``. A worker needs only what the
handler reaches. Peers that ship only the function body lose module-level imports and globals;
this module keeps exactly what the handler uses, transitively:

* a top-level statement is **kept** when it binds a name the kept code uses (imports, ``def``,
  ``class``, assignments, ``try: import x / except ImportError``), when it changes an object the
  kept code uses (``model.eval()``, ``cfg["k"] = v``, a call to a kept function that rebinds
  globals), when it configures the process (``os.environ[...] = ...``, ``sys.path``, ``warnings``,
  ``logging.basicConfig``), or when it carries the comment ``# runpod: keep``;
* everything else is **dropped, and reported** with a reason: test calls of the handler,
  ``print``/``display``, bare expressions, unused imports/helpers/constants, the
  ``if __name__ == "__main__":`` block, ``runpod.serverless.start(...)`` (the generated file starts
  the worker itself), and ``# runpod: skip`` lines.

Scoping is Python's own: :mod:`symtable` says which names a function, class or comprehension reads
from module globals, so locals never leak into the analysis.

IPython magics, shell escapes and help (``%pip install x``, ``!nvidia-smi``, ``files = !ls``,
``np.sum?``) at the top level of the cell are stripped with a note (they cannot run in a worker);
inside a function they are an error, because removing them would change what the function does.
Only lines that Python itself rejects are treated as magics, so a ``%`` inside a string is never
touched.
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from ..errors import CellSyntaxError, HandlerNotFoundError, HandlerSignatureError, PackagingError
from ..findings import Finding
from .astutil import (
    body_nodes,
    dotted_name,
    immediate_nodes,
    import_aliases,
    is_main_guard,
    resolve_dotted,
    root_name,
    start_calls,
    statement_span,
)
from .imports import ImportRef, collect_imports

HandlerKind = Literal["plain", "async", "generator", "async_generator"]

KEEP_MARK = "# runpod: keep"
SKIP_MARK = "# runpod: skip"

#: Names that exist in IPython (injected into builtins or the namespace) but not in a plain
#: Python worker; they must never be treated as builtins.
IPYTHON_ONLY = frozenset({"display", "get_ipython", "__IPYTHON__", "In", "Out"})
BUILTIN_NAMES = frozenset(
    n for n in dir(builtins) if n not in IPYTHON_ONLY and n not in ("execfile", "runfile", "dreload")
) | {"__file__", "__name__", "__doc__", "__spec__", "__loader__", "__package__", "__builtins__",
     "__annotations__", "__cached__", "__dict__"}

#: Process-wide configuration kept even when the handler never names it.
_CONFIG_CALLS = frozenset({"os.putenv", "os.unsetenv", "warnings.filterwarnings",
                           "warnings.simplefilter", "logging.basicConfig"})
_CONFIG_OBJECTS = frozenset({"os.environ", "sys.path"})
_MUTATORS = frozenset({"update", "setdefault", "pop", "clear", "append", "insert", "extend", "remove"})
_OUTPUT_CALLS = frozenset({"print", "display", "pprint", "help", "pprint.pprint",
                           "IPython.display.display", "matplotlib.pyplot.show"})
_MAGIC = re.compile(r"^\s*(%|!|\?)|^\s*[A-Za-z_][\w\s,()\[\]]*=\s*[%!]|^[\w.]+\?\??\s*$")


@dataclass(frozen=True)
class Dropped:
    """A top-level statement of the cell that is not shipped, and why."""

    line: int
    code: str
    reason: str
    kind: str  # magic | skip-mark | main-block | serverless-start | test-call | output | unused

    def __str__(self) -> str:
        return f"line {self.line}: {self.code}  ({self.reason})"


@dataclass
class _Stmt:
    index: int
    node: ast.stmt
    start: int
    end: int
    binds: frozenset[str]
    uses: frozenset[str]
    global_binds: frozenset[str]
    mutates: frozenset[str]
    calls: frozenset[str]
    loads_now: frozenset[str]
    configures: bool
    tests_handler: bool
    keep_mark: bool
    skip_mark: bool


@dataclass(frozen=True)
class CellAnalysis:
    """The result of reading a cell: what is kept, what is dropped, what is still missing."""

    source: str  # normalised text, magic lines blanked (same line numbers as the input)
    tree: ast.Module = field(repr=False)
    origin: str
    first_line: int
    handler: str
    handler_kind: HandlerKind
    handler_line: int
    kept: tuple[int, ...]  # indexes into tree.body, in source order
    dropped: tuple[Dropped, ...]
    free_names: tuple[str, ...]  # used by kept code, bound nowhere in it, not builtins
    defined: frozenset[str]  # names bound by kept statements
    imports: tuple[ImportRef, ...]
    loads_now: tuple[frozenset[str], ...]  # per kept statement: names read when it runs
    notes: tuple[Finding, ...]
    rewritten: dict[int, str] = field(default_factory=dict)  # kept imports trimmed to used names

    def display_line(self, lineno: int) -> int:
        return lineno + self.first_line - 1

    def kept_nodes(self) -> list[ast.stmt]:
        return [self.tree.body[i] for i in self.kept]


# --------------------------------------------------------------------------- parsing


def normalize(source: str) -> str:
    """One newline convention, so the same cell hashes the same on every OS."""
    return source.replace("\r\n", "\n").replace("\r", "\n")


def _syntax_error(exc: SyntaxError, lines: list[str], origin: str, first_line: int) -> CellSyntaxError:
    lineno = exc.lineno or 0
    shown = lineno + first_line - 1 if lineno else None
    text = lines[lineno - 1] if 1 <= lineno <= len(lines) else (exc.text or "").rstrip("\n")
    where = f"line {shown} of {origin}" if shown else origin
    hint = None
    if text:
        gutter = f"{shown:>5} | " if shown else "      | "
        caret = ""
        if exc.offset and exc.offset > 0:
            width = max(1, (exc.end_offset or exc.offset + 1) - exc.offset) if exc.end_lineno == exc.lineno else 1
            caret = "\n" + " " * (len(gutter) - 2) + "| " + " " * (exc.offset - 1) + "^" * width
        hint = f"{gutter}{text}{caret}"
    return CellSyntaxError(f"Syntax error on {where}: {exc.msg}", line=shown, hint=hint)


def parse_cell(source: str, *, origin: str = "the cell", first_line: int = 1) -> tuple[str, ast.Module, list[Dropped]]:
    """Parse, blanking top-level magic/shell lines that Python rejects; returns (text, tree, dropped)."""
    lines = normalize(source).split("\n")
    dropped: list[Dropped] = []
    for _ in range(len(lines) + 1):
        text = "\n".join(lines)
        try:
            return text, ast.parse(text, filename=origin), dropped
        except SyntaxError as exc:
            lineno = exc.lineno or 0
            line = lines[lineno - 1] if 1 <= lineno <= len(lines) else ""
            if not line or not _MAGIC.match(line):
                raise _syntax_error(exc, lines, origin, first_line) from None
            shown = lineno + first_line - 1
            if line[:1].isspace():
                raise CellSyntaxError(
                    f"Line {shown} of {origin} is an IPython magic or shell command inside a block: "
                    f"{line.strip()}",
                    line=shown,
                    hint="Magics and `!` commands only run in the notebook, not on a worker. Use "
                    "subprocess.run([...]) in the function, or move the line out to its own cell.",
                ) from None
            dropped.append(Dropped(shown, _short(line.strip()), _magic_reason(line), "magic"))
            lines[lineno - 1] = ""
    raise CellSyntaxError(f"Could not parse {origin}.", line=None)  # pragma: no cover - loop bound


def _magic_reason(line: str) -> str:
    if re.match(r"^%{1,2}\s*pip\b|^!\s*pip\b", line.strip()):
        return ("IPython magic, not run on the worker; requirements come from the imports "
                "(or pass requirements=[...] / --requirement)")
    return "IPython magic, shell command or help: it only runs in the notebook"


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- per-statement facts


def _scope_facts(node: ast.stmt) -> tuple[set[str], set[str], set[str]]:
    """(binds, uses, global_binds) of one top-level statement, from Python's own symbol tables."""
    table = symtable.symtable(ast.unparse(node), "<cell>", "exec")
    binds: set[str] = set()
    uses: set[str] = set()
    global_binds: set[str] = set()
    for sym in table.get_symbols():
        if sym.is_assigned() or sym.is_imported():
            binds.add(sym.get_name())
        if sym.is_referenced():
            uses.add(sym.get_name())
    pending = list(table.get_children())
    while pending:
        child = pending.pop()
        pending.extend(child.get_children())
        for sym in child.get_symbols():
            name = sym.get_name()
            if name.startswith("."):
                continue
            if sym.is_global() and sym.is_referenced():
                uses.add(name)
            if sym.is_declared_global() and (sym.is_assigned() or sym.is_imported()):
                global_binds.add(name)
    return binds | global_binds, uses, global_binds


def _mutated_roots(node: ast.stmt) -> set[str]:
    roots: set[str] = set()
    for n in immediate_nodes(node):
        targets: list[ast.AST] = []
        if isinstance(n, (ast.Assign, ast.Delete)):
            targets = list(n.targets)
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)):
            targets = [n.target]
        elif isinstance(n, ast.Expr):
            call = n.value.value if isinstance(n.value, ast.Await) else n.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                root = root_name(call.func.value)
                if root:
                    roots.add(root)
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, (ast.Attribute, ast.Subscript)) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    root = root_name(sub)
                    if root:
                        roots.add(root)
    return roots


def _configures(node: ast.stmt, aliases: dict[str, str]) -> bool:
    """Whether the statement configures the process (environment, import path, warnings, logging)."""
    if isinstance(node, ast.ImportFrom) and node.module == "__future__":
        return True
    for n in immediate_nodes(node):
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call):
            func = n.value.func
            if resolve_dotted(func, aliases) in _CONFIG_CALLS:
                return True
            if isinstance(func, ast.Attribute) and func.attr in _MUTATORS \
                    and resolve_dotted(func.value, aliases) in _CONFIG_OBJECTS:
                return True
        elif isinstance(n, (ast.Subscript, ast.Attribute)) and isinstance(n.ctx, (ast.Store, ast.Del)) \
                and resolve_dotted(n.value, aliases) in _CONFIG_OBJECTS:
            return True
    return False


def _marked(lines: list[str], start: int, end: int, mark: str) -> bool:
    first = start
    while first > 1 and lines[first - 2].strip().startswith("#"):
        first -= 1
    return any(mark in lines[i - 1] for i in range(first, end + 1))


def _facts(index: int, node: ast.stmt, lines: list[str], aliases: dict[str, str], handler: str) -> _Stmt:
    start, end = statement_span(node)
    binds, uses, global_binds = _scope_facts(node)
    calls = frozenset(
        n.func.id for n in immediate_nodes(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    )
    loads_now = frozenset(
        n.id for n in immediate_nodes(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    )
    return _Stmt(
        index=index, node=node, start=start, end=end, binds=frozenset(binds), uses=frozenset(uses),
        global_binds=frozenset(global_binds), mutates=frozenset(_mutated_roots(node)), calls=calls,
        loads_now=loads_now, configures=_configures(node, aliases),
        tests_handler=handler in loads_now and handler not in binds,
        keep_mark=_marked(lines, start, end, KEEP_MARK), skip_mark=_marked(lines, start, end, SKIP_MARK),
    )


# --------------------------------------------------------------------------- the handler


def handler_kind(func: ast.FunctionDef | ast.AsyncFunctionDef) -> HandlerKind:
    """plain / async / generator / async_generator, from the def and its own ``yield``s."""
    yields = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in body_nodes(func))
    if isinstance(func, ast.AsyncFunctionDef):
        return "async_generator" if yields else "async"
    return "generator" if yields else "plain"


def check_signature(func: ast.FunctionDef | ast.AsyncFunctionDef, origin: str, line: int) -> None:
    """The worker calls ``handler(job)``: exactly one positional argument must be accepted."""
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    required_kw = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    takes_one = required <= 1 and (len(positional) >= 1 or args.vararg is not None)
    if takes_one and not required_kw:
        return
    shown = f"{'async ' if isinstance(func, ast.AsyncFunctionDef) else ''}def {func.name}({ast.unparse(args)})"
    if required_kw:
        problem = f"has required keyword-only argument(s) {', '.join(required_kw)}"
    elif required > 1:
        problem = f"needs {required} arguments ({', '.join(a.arg for a in positional[:required])})"
    else:
        problem = "takes no argument"
    raise HandlerSignatureError(
        f"`{func.name}` at line {line} of {origin} {problem}; the worker calls it with one "
        f"argument, the job dict: {shown}",
        hint=f"Write it as `def {func.name}(job):` and read the request from job[\"input\"].",
    )


def _binds_quietly(node: ast.stmt) -> set[str]:
    try:
        return _scope_facts(node)[0]
    except SyntaxError:
        return set()


def _find_handler(tree: ast.Module, name: str, origin: str,
                  first_line: int) -> tuple[int, ast.FunctionDef | ast.AsyncFunctionDef]:
    found = [(i, n) for i, n in enumerate(tree.body)
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    if found:
        return found[-1]
    functions = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    other = next((n for n in tree.body if name in _binds_quietly(n)), None)
    if other is not None:
        line = statement_span(other)[0] + first_line - 1
        raise HandlerNotFoundError(
            f"`{name}` is bound at line {line} of {origin}, but not by a `def`; the worker needs a "
            "function it can inspect (plain, async or generator).",
            functions=functions,
            hint=f"Define it with `def {name}(job):` in {origin} (it may call what you have now).",
        )
    if functions:
        listed = ", ".join(functions)
        hint = (f"Pass the handler's name (--handler {functions[0]} / handler=\"{functions[0]}\"), "
                f"or rename the function to `{name}`.")
        message = f"No function named `{name}` in {origin}. Functions defined there: {listed}."
    else:
        hint = f"A handler is a function of the job: `def {name}(job): return {{\"echo\": job[\"input\"]}}`."
        message = f"No function named `{name}` in {origin}: it defines no functions at all."
    raise HandlerNotFoundError(message, functions=functions, hint=hint)


# --------------------------------------------------------------------------- the analysis


def analyze(source: str, *, handler: str = "handler", origin: str = "the cell", first_line: int = 1,
            also_keep: Collection[str] = ()) -> CellAnalysis:
    """Parse the cell, find the handler, keep what it needs and explain what was left out.

    ``also_keep`` names more roots than the handler (classes a captured value needs)."""
    if not handler.isidentifier():
        raise PackagingError(f"{handler!r} is not a valid Python function name.",
                             hint="Pass the name of the handler function, e.g. handler=\"handler\".")
    text, tree, dropped = parse_cell(source, origin=origin, first_line=first_line)
    lines = text.split("\n")
    shown = lambda lineno: lineno + first_line - 1  # noqa: E731 - tiny local helper

    handler_index, handler_node = _find_handler(tree, handler, origin, first_line)
    handler_line = shown(statement_span(handler_node)[0])
    check_signature(handler_node, origin, handler_line)
    kind = handler_kind(handler_node)

    aliases = import_aliases([n for n in tree.body])
    try:
        stmts = [_facts(i, node, lines, aliases, handler) for i, node in enumerate(tree.body)]
    except SyntaxError as exc:  # e.g. `return` outside a function: ast accepts it, symtable may not
        raise _syntax_error(exc, lines, origin, first_line) from None

    def forced_drop(s: _Stmt) -> str | None:
        if s.index == handler_index:
            return None
        if s.skip_mark:
            return "skip-mark"
        if is_main_guard(s.node):
            return "main-block"
        if start_calls(s.node, aliases):
            return "serverless-start"
        return None

    forced = {s.index: kind_ for s in stmts if (kind_ := forced_drop(s))}
    needed: set[str] = {handler, *also_keep}
    kept: set[int] = {handler_index}
    needed |= stmts[handler_index].uses
    changed = True
    while changed:
        changed = False
        rebinding_funcs = {stmts[i].node.name for i in kept  # type: ignore[attr-defined]
                           if isinstance(stmts[i].node, (ast.FunctionDef, ast.AsyncFunctionDef))
                           and stmts[i].global_binds & needed}
        for s in stmts:
            if s.index in kept or s.index in forced:
                continue
            if s.tests_handler:  # a local test: kept only for a name the handler needs
                keep = s.keep_mark or bool(s.binds & needed)
            else:
                keep = bool(s.keep_mark or s.configures or s.binds & needed or s.mutates & needed
                            or s.calls & rebinding_funcs)
            if keep:
                kept.add(s.index)
                needed |= s.uses
                changed = True

    kept_binds = frozenset().union(*(stmts[i].binds for i in kept))
    for index, why in sorted(forced.items()):
        s = stmts[index]
        lost = sorted((s.binds & needed) - kept_binds)
        if lost and why != "skip-mark":
            where = ("inside `if __name__ == \"__main__\":`" if why == "main-block"
                     else "in a statement that calls runpod.serverless.start")
            raise PackagingError(
                f"Line {shown(s.start)} of {origin} binds {', '.join(f'`{n}`' for n in lost)}, which "
                f"the handler uses, {where}; that statement is not shipped.",
                hint="Move the assignment out of that block, to the top level of the cell.",
            )

    kept_order = sorted(kept)
    for i in kept_order:
        for n in immediate_nodes(stmts[i].node):
            if isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
                raise PackagingError(
                    f"Line {shown(n.lineno)} of {origin} uses `await` at the top level, which only "
                    "works in a notebook; handler.py runs as a script.",
                    hint="Wrap it: `value = asyncio.run(make_value())`, or do it inside the handler.",
                )

    notes: list[Finding] = []
    for index, st in enumerate(stmts):
        if index in kept:
            continue
        reason, kind_ = _drop_reason(st, forced.get(index), handler, aliases)
        segment = ast.get_source_segment(text, st.node) or ast.unparse(st.node)
        dropped.append(Dropped(shown(st.start), _short(segment.split("\n")[0]), reason, kind_))
        if kind_ == "main-block":
            extra = [b for b in st.node.body  # type: ignore[attr-defined]
                     if not start_calls(b, aliases) and not _uses_handler(b, handler)
                     and not isinstance(b, (ast.Import, ast.ImportFrom, ast.Pass))
                     and _drop_reason(_facts(0, b, lines, aliases, handler), None, handler, aliases)[1] != "output"]
            if extra:
                notes.append(Finding(
                    "warning", "main-block-dropped",
                    f"The `if __name__ == \"__main__\":` block at line {shown(st.start)} is not shipped, "
                    f"so {_short(ast.unparse(extra[0]), 60)} will not run on the worker.",
                    "If the worker needs it, move it to the top level of the cell, or call it from "
                    "the handler on the first job.",
                    line=shown(st.start),
                ))
    dropped.sort(key=lambda d: d.line)

    used = frozenset().union(*(stmts[i].uses for i in kept_order))
    rewritten: dict[int, ast.stmt] = {}
    for i in kept_order:
        s = stmts[i]
        if isinstance(s.node, (ast.Import, ast.ImportFrom)) and not (s.keep_mark or s.configures):
            slim = _slim_import(s.node, used)
            if slim is not None:
                rewritten[i] = slim
                dropped.append(Dropped(shown(s.start), _short(ast.unparse(s.node)),
                                       f"kept as `{ast.unparse(slim)}`: the other names are not used "
                                       "by the handler", "unused"))
    dropped.sort(key=lambda d: d.line)
    kept_nodes = [rewritten.get(i, stmts[i].node) for i in kept_order]
    defined = frozenset().union(*(_binds_quietly(n) for n in kept_nodes))
    free = sorted(n for n in used - defined if n not in BUILTIN_NAMES)
    return CellAnalysis(
        source=text, tree=tree, origin=origin, first_line=first_line, handler=handler,
        handler_kind=kind, handler_line=handler_line, kept=tuple(kept_order),
        dropped=tuple(dropped), free_names=tuple(free), defined=defined,
        imports=tuple(collect_imports(kept_nodes, first_line=first_line, origin=origin)),
        loads_now=tuple(stmts[i].loads_now for i in kept_order), notes=tuple(notes),
        rewritten={i: ast.unparse(n) for i, n in rewritten.items()},
    )


def _slim_import(node: ast.Import | ast.ImportFrom, used: frozenset[str]) -> ast.stmt | None:
    """The import with only the names the kept code uses, or None when nothing would change."""
    def bound(alias: ast.alias) -> str:
        if alias.asname:
            return alias.asname
        return alias.name if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]

    keep = [a for a in node.names if a.name == "*" or bound(a) in used]
    if not keep or len(keep) == len(node.names):
        return None
    if isinstance(node, ast.Import):
        slim: ast.stmt = ast.Import(names=keep)
    else:
        slim = ast.ImportFrom(module=node.module, names=keep, level=node.level)
    return ast.copy_location(slim, node)


def _uses_handler(node: ast.AST, handler: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == handler and isinstance(n.ctx, ast.Load)
               for n in immediate_nodes(node))


def _drop_reason(s: _Stmt, forced: str | None, handler: str, aliases: dict[str, str]) -> tuple[str, str]:
    node = s.node
    if forced == "skip-mark":
        return "marked `# runpod: skip`", "skip-mark"
    if forced == "main-block":
        return "the generated handler.py has its own `if __name__ == \"__main__\":` block", "main-block"
    if forced == "serverless-start":
        return "calls runpod.serverless.start: the generated handler.py starts the worker itself", "serverless-start"
    value = node.value.value if isinstance(node, ast.Expr) and isinstance(node.value, ast.Await) \
        else getattr(node, "value", None)
    if isinstance(node, ast.Expr) and not isinstance(value, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom)):
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return "a string expression (docstring or note)", "output"
        return "a bare expression: the notebook displays it, the worker does not need it", "output"
    if s.tests_handler:
        return "uses the handler: a local test", "test-call"
    if isinstance(node, ast.Expr) and isinstance(value, ast.Call):
        if resolve_dotted(value.func, aliases) in _OUTPUT_CALLS or dotted_name(value.func) in _OUTPUT_CALLS:
            return "prints or displays output only", "output"
        return ("its result is not used by the handler; add `# runpod: keep` if the worker "
                "needs its side effect"), "unused"
    names = sorted(s.binds)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return f"import not used by the handler ({', '.join(names)})", "unused"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return f"`{node.name}` is not used by the handler", "unused"
    if names:
        return f"{', '.join(f'`{n}`' for n in names)} not used by the handler", "unused"
    return "not needed by the handler; add `# runpod: keep` to ship it anyway", "unused"
