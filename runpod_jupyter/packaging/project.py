"""Cell (or file, or function) → a worker project directory anyone can read, build and run.

::

    <output_root>/<name>-<hash12>/
        handler.py            the kept cell code + runpod.serverless.start(...)
        requirements.txt      pinned to the kernel's installed versions, sorted
        Dockerfile            runpod/base + python3.X + pip install + CMD handler.py
        runpod-jupyter.json   manifest: handler kind, source hash, Python, options, file digests
        captured.pkl          only with --capture
        mylib.py, mypkg/      local modules the cell imports, copied

The directory is named by the hash of everything in it, so the same cell with the same options
and the same installed versions gives the same path and byte-identical files (no timestamps,
everything sorted), and any change gives a new directory. Files are written atomically; a file
someone edited by hand in an existing directory is put back.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import linecache
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import CaptureError, PackagingError
from ..findings import Finding
from ..names import check_endpoint_name
from .astutil import statement_span
from .dockerfile import choose_base, render_dockerfile
from .handler_file import CAPTURED_FILE, render_handler
from .namespace import CapturedValue, resolve_names
from .requirements import resolve_requirements
from .source import Dropped, HandlerKind, analyze, normalize

MANIFEST = "runpod-jupyter.json"


@dataclass(frozen=True)
class WorkerProject:
    """A generated worker project on disk, and what went into it."""

    path: Path
    name: str
    handler_name: str
    handler_kind: HandlerKind
    requirements: tuple[str, ...]
    source_hash: str  # sha256 of the (newline-normalised) cell source
    content_hash: str  # sha256 over every generated file; names the directory
    python_version: str  # major.minor the image runs
    base_image: str
    python_executable: str
    concurrency: int
    refresh_worker: bool
    dropped: tuple[Dropped, ...]
    notes: tuple[Finding, ...]
    captured: tuple[CapturedValue, ...]
    local_modules: tuple[str, ...]
    files: tuple[str, ...]
    origin: str = "the cell"
    import_lines: tuple[str, ...] = ()
    #: The analysed source (magic lines blanked, cell line numbers) and the kept statements'
    #: (first, last) lines in it: what preflight reads.
    source: str = field(default="", repr=False)
    kept_spans: tuple[tuple[int, int], ...] = field(default=(), repr=False)
    first_line: int = 1

    @property
    def handler_path(self) -> Path:
        return self.path / "handler.py"

    @property
    def dockerfile_path(self) -> Path:
        return self.path / "Dockerfile"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def streams(self) -> bool:
        """Whether the handler yields (its chunks are streamed, and aggregated into the result)."""
        return self.handler_kind in ("generator", "async_generator")

    def summary(self) -> str:
        """A few plain lines: where it is, what it runs, what was left behind and why."""
        out = [f"{self.name}: {self.handler_kind} handler `{self.handler_name}` -> {self.path}",
               f"  image: {self.base_image} ({self.python_executable}); requirements: "
               + ", ".join(self.requirements)]
        if self.captured:
            out.append("  captured: " + ", ".join(f"{c.name} ({c.type_name})" for c in self.captured))
        if self.local_modules:
            out.append("  local modules: " + ", ".join(self.local_modules))
        if self.dropped:
            out.append(f"  not shipped from {self.origin}:")
            out.extend(f"    {d}" for d in self.dropped)
        return "\n".join(out)


def default_output_root() -> Path:
    """Where projects go when no root is given: the package's data dir."""
    from ..config import data_dir

    return data_dir() / "workers"


def package_cell(
    source: str,
    *,
    name: str,
    output_root: Path | str | None = None,
    handler: str = "handler",
    user_ns: Mapping[str, Any] | None = None,
    capture: Sequence[str] = (),
    requirements: Sequence[str] = (),
    local_dir: Path | str | None = None,
    base_image: str | None = None,
    concurrency: int | None = None,
    refresh_worker: bool = False,
    aggregate_stream: bool = True,
    first_line: int = 1,
    origin: str = "the cell",
) -> WorkerProject:
    """Turn a notebook cell into a worker project directory and describe it.

    ``user_ns`` is the notebook namespace, used for names the cell does not define (modules
    become imports; ``capture`` names are pickled). ``local_dir`` is where local modules live
    (default: the current directory, a kernel's notebook directory). ``first_line`` is the line
    number of the source's first line as the user sees it (2 when the cell starts with a magic).
    ``aggregate_stream=False``: a generator handler's final result does not repeat its chunks.
    Raises a :class:`~.errors.PackagingError` subclass, with a hint, when it cannot.
    """
    check_endpoint_name(name, error=PackagingError)
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise PackagingError(f"concurrency must be a whole number ≥ 1, not {concurrency!r}.",
                             hint="Use e.g. --concurrency 4 (only async handlers benefit).")
    if not isinstance(source, str):
        raise PackagingError("The source must be text (the cell's code).",
                             hint="To package a function object use package_function(fn, ...).")
    conc = concurrency or 1
    text = normalize(source)
    analysis = analyze(text, handler=handler, origin=origin, first_line=first_line)
    resolution = resolve_names(analysis.free_names, user_ns, capture, origin=origin,
                               defined=analysis.defined)
    needs = {n for c in resolution.captured for n in c.needs_defined}
    if needs - analysis.defined:  # a captured value is an instance of a class of this cell
        analysis = analyze(text, handler=handler, origin=origin, first_line=first_line, also_keep=needs)
        resolution = resolve_names(analysis.free_names, user_ns, capture, origin=origin,
                                   defined=analysis.defined)
        missing = sorted(needs - analysis.defined)
        if missing:
            names = ", ".join(f"`{n}`" for n in missing)
            raise CaptureError(
                f"--capture: the captured value(s) refer to {names}, defined in another notebook "
                "cell; the worker could not unpickle them.",
                hint=f"Move the definition of {', '.join(missing)} into this cell.",
            )
    root_dir = Path(local_dir) if local_dir is not None else Path.cwd()
    reqs = resolve_requirements([*analysis.imports, *resolution.imports], local_dir=root_dir, extra=requirements)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = choose_base(python, base_image)

    handler_py = render_handler(
        analysis, endpoint=name, import_lines=resolution.import_lines, captured=resolution.captured,
        concurrency=conc, refresh_worker=refresh_worker, aggregate_stream=aggregate_stream,
    )
    try:
        compile(handler_py, "handler.py", "exec")
    except SyntaxError as exc:  # kept code that only a notebook accepts (e.g. `return` at top level)
        raise PackagingError(
            f"The generated handler.py does not compile: {exc.msg} (its line {exc.lineno}).",
            hint=f"Check the code of {origin} around: {(exc.text or '').strip()}",
        ) from None

    files: dict[str, bytes] = {"handler.py": handler_py.encode()}
    files["requirements.txt"] = ("\n".join(reqs.lines) + "\n").encode()
    copies: list[str] = []
    for module in reqs.local_modules:
        for rel, data in module.files:
            files[rel] = data
        copies.append(module.name if module.is_package else f"{module.name}.py")
    if resolution.captured_blob is not None:
        files[CAPTURED_FILE] = resolution.captured_blob
        copies.append(CAPTURED_FILE)
    copies += [MANIFEST, "handler.py"]
    files["Dockerfile"] = render_dockerfile(name=name, base=base, requirements=reqs.lines, copies=copies).encode()

    source_hash = hashlib.sha256(text.encode()).hexdigest()
    manifest = {
        "generator": f"runpod-jupyter {__version__}",
        "name": name,
        "handler": {"name": handler, "kind": analysis.handler_kind},
        "source_sha256": source_hash,
        "python": base.python,
        "python_executable": base.executable,
        "base_image": base.image,
        "base_provides": sorted(base.provides),
        "options": {
            "capture": sorted(c.name for c in resolution.captured),
            "concurrency": conc,
            "refresh_worker": refresh_worker,
            "return_aggregate_stream": aggregate_stream and analysis.handler_kind in ("generator", "async_generator"),
            "requirements": sorted(requirements),
        },
        "requirements": list(reqs.lines),
        "local_modules": [m.name for m in reqs.local_modules],
        "captured": [{"name": c.name, "type": c.type_name, "bytes": c.size} for c in resolution.captured],
        "files": {k: "sha256:" + hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
        "dropped": [{"line": d.line, "code": d.code, "reason": d.reason} for d in analysis.dropped],
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(key.encode() + b"\0" + hashlib.sha256(files[key]).digest())
    content_hash = digest.hexdigest()
    root = Path(output_root) if output_root is not None else default_output_root()
    path = root / f"{_dir_name(name)}-{content_hash[:12]}"
    _write(path, files)

    body = analysis.tree.body
    return WorkerProject(
        path=path, name=name, handler_name=handler, handler_kind=analysis.handler_kind,
        requirements=reqs.lines, source_hash=source_hash, content_hash=content_hash,
        python_version=base.python, base_image=base.image, python_executable=base.executable,
        concurrency=conc, refresh_worker=refresh_worker, dropped=analysis.dropped,
        notes=(*analysis.notes, *resolution.notes, *reqs.notes, *base.notes),
        captured=resolution.captured, local_modules=tuple(m.name for m in reqs.local_modules),
        files=tuple(sorted(files)), origin=origin, import_lines=resolution.import_lines,
        source=analysis.source, kept_spans=tuple(statement_span(body[i]) for i in analysis.kept),
        first_line=first_line,
    )


def package_file(path: Path | str, *, name: str | None = None, **options: Any) -> WorkerProject:
    """The CLI path (``runpod-jupyter deploy handler.py --name X``): a .py file instead of a cell.

    The file must be self-contained (no notebook namespace); its directory is where local
    modules are looked for. ``name`` defaults to the file's stem.
    """
    file = Path(path)
    try:
        source = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackagingError(f"Cannot read {file}: {exc.strerror or exc}.",
                             hint="Check the path of the handler file.") from None
    options.setdefault("local_dir", file.parent)
    options.setdefault("origin", file.name)
    return package_cell(source, name=name or _dir_name(file.stem), **options)


def package_function(func: Callable[..., Any], *, name: str, **options: Any) -> WorkerProject:
    """Package a handler function object with the whole cell (or file) that defined it.

    Peers ship only the function body and lose the imports and globals around it; here the
    source of the cell the function came from (IPython keeps it in :mod:`linecache`) is
    analysed as a whole, with the function's globals as the notebook namespace.
    """
    code = getattr(func, "__code__", None)
    if code is None or not inspect.isfunction(func):
        raise PackagingError(f"{func!r} is not a Python function.",
                             hint="Pass a function defined with def (or the cell's source).")
    if func.__qualname__ != func.__name__:
        raise PackagingError(
            f"`{func.__qualname__}` is not defined at the top level of its cell or module.",
            hint="Define the handler at the top level: def handler(job): ...",
        )
    lines = linecache.getlines(code.co_filename)
    if not lines:
        raise PackagingError(f"The source of `{func.__name__}` is not available.",
                             hint="Pass the cell's source text to package_cell instead.")
    options.setdefault("handler", func.__name__)
    options.setdefault("user_ns", func.__globals__)
    if os.path.isfile(code.co_filename):
        options.setdefault("local_dir", Path(code.co_filename).parent)
    return package_cell("".join(lines), name=name, **options)


def _dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "worker"


def _write(path: Path, files: Mapping[str, bytes]) -> None:
    """Write each file atomically; leave identical files untouched (so mtimes say something)."""
    path.mkdir(parents=True, exist_ok=True)
    for rel in sorted(files):
        target = path / rel
        data = files[rel]
        try:
            if target.is_file() and target.read_bytes() == data:
                continue
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
