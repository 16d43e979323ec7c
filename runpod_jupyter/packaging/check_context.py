"""What every preflight check reads: how the project is about to be deployed, and the packaged
project's kept statements, parsed once."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..api.models import parse_gpu_list
from .astutil import import_aliases, statement_span
from .project import WorkerProject


@dataclass(frozen=True)
class PreflightOptions:
    """How the project is about to be deployed. ``env`` values are never shown, only keys."""

    backend: Literal["local", "cloud"] = "cloud"
    gpu_ids: Sequence[str] | str = ()
    env: Mapping[str, str] = field(default_factory=dict)
    docker_args: str = ""
    volume: str | None = None  # network volume id when one is attached
    container_disk_gb: float | None = None
    image_size_gb: float | None = None  # compressed image size, when known or estimated
    model_size_gb: float | None = None  # models downloaded at start (not baked into the image)
    known_gpu_ids: Sequence[str] | None = None  # default: GPU_POOLS
    #: GPU stock per pool (HIGH/MEDIUM/LOW/NONE) read before the deploy; None = unknown.
    stock: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        gpus = self.gpu_ids
        object.__setattr__(self, "gpu_ids", parse_gpu_list(gpus) if isinstance(gpus, str) else tuple(gpus))
        object.__setattr__(self, "env", dict(self.env or {}))
        if self.backend not in ("local", "cloud"):
            raise ValueError(f"backend must be 'local' or 'cloud', not {self.backend!r}")

    def __repr__(self) -> str:
        return (f"PreflightOptions(backend={self.backend!r}, gpu_ids={self.gpu_ids!r}, "
                f"env_keys={sorted(self.env)!r}, docker_args={'<set>' if self.docker_args else ''!r}, "
                f"volume={self.volume!r}, container_disk_gb={self.container_disk_gb!r}, "
                f"image_size_gb={self.image_size_gb!r}, model_size_gb={self.model_size_gb!r})")


@dataclass
class Context:
    """What every check reads: the project, the options, the kept statements and their imports."""

    project: WorkerProject
    options: PreflightOptions
    nodes: list[ast.stmt]
    aliases: dict[str, str]

    @property
    def cloud(self) -> bool:
        return self.options.backend == "cloud"

    def line(self, lineno: int) -> int:
        return lineno + self.project.first_line - 1

    def where(self, node: ast.stmt | ast.expr) -> str:
        return f"line {self.line(node.lineno)} of {self.project.origin}"

    def all_nodes(self) -> Iterable[ast.AST]:
        for stmt in self.nodes:
            yield from ast.walk(stmt)

    def strings(self) -> Iterable[tuple[ast.Constant, str]]:
        for node in self.all_nodes():
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield node, node.value


def build_context(project: WorkerProject, options: PreflightOptions) -> Context:
    tree = ast.parse(project.source or "")
    spans = set(project.kept_spans)
    nodes = [n for n in tree.body if statement_span(n) in spans]
    extra = ast.parse("\n".join(project.import_lines)).body if project.import_lines else []
    return Context(project, options, nodes, import_aliases([*extra, *nodes]))
