"""Preflight: what the field notes say goes wrong on RunPod, checked before anything is deployed.

``preflight(project, options)`` returns :class:`~.findings.Finding` values: errors stop the
deploy, warnings and info are shown. Each check is one small function of the packaged project
(its kept source, handler kind, concurrency) and the deploy options (GPU pools, env, dockerArgs,
volume, disk sizes, backend); ``CHECKS`` lists them in display order. Some only matter on the
cloud (GPU capacity, disk sizing, model caching, init timeout) and stay quiet for ``local``;
secrets found for a ``local`` deploy are warnings, since nothing leaves the machine.

Secret values never appear in a finding: only the variable's name, or the kind of token seen.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from ..api.models import GPU_POOLS
from ..findings import Finding, has_errors, sort_findings
from ..secret import is_secret_reference, looks_secret, token_kind  # noqa: F401 (re-exported)
from .astutil import body_nodes, immediate_nodes, resolve_dotted, start_calls
from .check_context import Context, PreflightOptions, build_context
from .project import WorkerProject
from .stock_check import check_gpu_stock

__all__ = ["PreflightOptions", "preflight", "has_errors", "CHECKS", "looks_secret", "is_secret_reference",
           "disk_needed"]

#: RunPod's default limit on a worker's cold start, after which it is marked unhealthy.
DEFAULT_INIT_TIMEOUT_S = 7 * 60
DISK_BUFFER_GB = 20
UNPACK_FACTOR = 2.5
LARGE_CAPTURE_BYTES = 100 * 1024 * 1024

_FIX_HEAVY = ("Move it into a function called lazily on the first job, or accept the cold-start "
              "cost and set RUNPOD_INIT_TIMEOUT (seconds) in the endpoint's env.")


# --------------------------------------------------------------------------- secrets


def _secret_level(ctx: Context) -> Literal["error", "warning"]:
    return "error" if ctx.cloud else "warning"


def _local_note(ctx: Context) -> str:
    return "" if ctx.cloud else " (fine on the local backend; a cloud deploy refuses it)"


def _reference_for(key: str) -> str:
    return "{{ RUNPOD_SECRET_" + re.sub(r"[^A-Za-z0-9_]", "_", key).lower() + " }}"


_MEANT_AS_REFERENCE = re.compile(r"RUNPOD_SECRET|^\s*\{\{\s*[\w.-]*\s*\}\}\s*$", re.I)


def broken_reference(value: str) -> bool:
    """A value that was meant as ``{{ RUNPOD_SECRET_name }}`` but is not one (single braces, no
    braces, another name): RunPod passes it through as text and the worker gets no secret."""
    return not is_secret_reference(value) and bool(_MEANT_AS_REFERENCE.search(value))


def check_secret_reference(ctx: Context) -> list[Finding]:
    """A mangled secret reference fails silently: the worker sees the text, not the secret."""
    out = []
    for key in sorted(ctx.options.env):
        value = str(ctx.options.env[key] or "")
        if broken_reference(value):
            named = re.search(r"RUNPOD_SECRET_([A-Za-z0-9_.-]+)", value)
            wanted = "{{ RUNPOD_SECRET_" + named.group(1) + " }}" if named else _reference_for(key)
            out.append(Finding(
                "warning", "secret-reference",
                f"The env var {key} looks like a secret reference but is not one RunPod reads: "
                "the worker would get the text as written, not the secret.",
                f"Write it exactly as `{wanted}`; in %%runpod_deploy: --env '{key}={wanted}'.",
            ))
    return out


def check_secret_env(ctx: Context) -> list[Finding]:
    """Plain values for secret-looking env vars (or values shaped like tokens) are stored in the
    template in clear text, visible to anyone who can read the endpoint."""
    out = []
    for key in sorted(ctx.options.env):
        value = str(ctx.options.env[key] or "")
        if not value.strip() or is_secret_reference(value):
            continue
        if broken_reference(value) and not token_kind(value):
            continue  # check_secret_reference says what is wrong with it
        kind = token_kind(value)
        if looks_secret(key) or kind:
            what = f"looks like {kind}" if kind else "has a secret-looking name"
            out.append(Finding(
                _secret_level(ctx), "secret-in-env",
                f"The env var {key} {what} and is set to a plain value: it would be stored in the "
                f"template in clear text{_local_note(ctx)}.",
                f"Create a RunPod secret and set {key} to the reference `{_reference_for(key)}`.",
            ))
    return out


def check_secret_docker_args(ctx: Context) -> list[Finding]:
    """dockerArgs are shown in clear text in the template (a token in a git clone URL leaks)."""
    args = ctx.options.docker_args or ""
    if not args.strip():
        return []
    found = token_kind(args)
    if not found:
        for name, value in re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)=(\S+)", args):
            if looks_secret(name) and not value.startswith("$") and not is_secret_reference(value):
                found = f"a plain value for {name}"
                break
    if not found:
        return []
    return [Finding(
        _secret_level(ctx), "secret-in-docker-args",
        f"dockerArgs contain {found}; dockerArgs are visible in clear text in the template{_local_note(ctx)}.",
        "Remove it from dockerArgs; pass it as an env var set to a RunPod secret reference "
        "`{{ RUNPOD_SECRET_name }}` and read it with os.environ in the handler.",
    )]


def check_docker_args_override(ctx: Context) -> list[Finding]:
    """Any dockerArgs replace the image's CMD: the generated image already starts the worker."""
    if not (ctx.options.docker_args or "").strip():
        return []
    return [Finding(
        "warning", "docker-args-override",
        "dockerArgs replace the image's start command; the generated image already runs "
        f"{ctx.project.python_executable} -u /app/handler.py. A wrong path there exits with code 2.",
        "Leave dockerArgs empty unless you need a different start command.",
    )]


def check_secret_in_code(ctx: Context) -> list[Finding]:
    """A credential written in the cell is baked into the image, readable by anyone who pulls it."""
    out = []
    seen: set[int] = set()
    for node, text in ctx.strings():
        kind = token_kind(text)
        if kind and node.lineno not in seen:
            seen.add(node.lineno)
            out.append(Finding(
                _secret_level(ctx), "secret-in-code",
                f"{ctx.where(node).capitalize()} contains what looks like {kind}; it would be baked "
                f"into the image{_local_note(ctx)}.",
                "Read it from os.environ in the code, and set that env var to a RunPod secret "
                "reference `{{ RUNPOD_SECRET_name }}`.",
                line=ctx.line(node.lineno),
            ))
    return out


# --------------------------------------------------------------------------- start-up work


_HEAVY_ATTRS = {
    "from_pretrained": "loads a model", "from_single_file": "loads a model",
    "snapshot_download": "downloads a model", "hf_hub_download": "downloads from the Hub",
    "load_dataset": "loads a dataset", "urlretrieve": "downloads a file",
    "download": "downloads", "download_file": "downloads a file", "download_model": "downloads a model",
    "load_model": "loads a model", "load_checkpoint": "loads a checkpoint",
}
_HEAVY_CALLS = {
    "torch.load": "loads a checkpoint", "torch.hub.load": "downloads and loads a model",
    "joblib.load": "loads a model", "transformers.pipeline": "loads a model",
    "sentence_transformers.SentenceTransformer": "loads a model", "vllm.LLM": "loads a model",
    "whisper.load_model": "loads a model", "spacy.load": "loads a model",
    "requests.get": "makes a network request", "requests.post": "makes a network request",
    "httpx.get": "makes a network request", "urllib.request.urlopen": "makes a network request",
    "os.system": "runs a shell command", "os.popen": "runs a shell command",
    "time.sleep": "sleeps", "subprocess": "runs a subprocess",
}
_BIG_LOOP = 100_000


def heavy_reason(call: ast.Call, aliases: dict[str, str]) -> str | None:
    """Why this call is slow at start-up, or None."""
    full = resolve_dotted(call.func, aliases)
    if full:
        for name, why in _HEAVY_CALLS.items():
            if full == name or full.startswith(name + "."):
                return why
    if isinstance(call.func, ast.Attribute) and call.func.attr in _HEAVY_ATTRS:
        return _HEAVY_ATTRS[call.func.attr]
    if isinstance(call.func, ast.Name) and call.func.id in _HEAVY_ATTRS:
        return _HEAVY_ATTRS[call.func.id]
    return None


def _heavy_functions(ctx: Context) -> dict[str, str]:
    """Kept top-level functions whose bodies do heavy work (directly or through each other)."""
    funcs = {n.name: n for n in ctx.nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    heavy: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, func in funcs.items():
            if name in heavy:
                continue
            for node in body_nodes(func):
                if not isinstance(node, ast.Call):
                    continue
                why = heavy_reason(node, ctx.aliases)
                if why is None and isinstance(node.func, ast.Name) and node.func.id in heavy and node.func.id != name:
                    why = f"calls {node.func.id}(), which {heavy[node.func.id]}"
                if why:
                    heavy[name] = why
                    changed = True
                    break
    return heavy


def _startup_work(ctx: Context) -> list[tuple[ast.stmt | ast.expr, str]]:
    """(node, what it does) for slow work that runs when handler.py is imported."""
    heavy_funcs = _heavy_functions(ctx)
    found: list[tuple[ast.stmt | ast.expr, str]] = []
    for stmt in ctx.nodes:
        for node in immediate_nodes(stmt):
            why = None
            if isinstance(node, ast.Call):
                why = heavy_reason(node, ctx.aliases)
                if why is None and isinstance(node.func, ast.Name) and node.func.id in heavy_funcs:
                    why = f"calls {node.func.id}(), which {heavy_funcs[node.func.id]}"
            elif isinstance(node, ast.While) and isinstance(node.test, ast.Constant) and node.test.value:
                why = "loops forever"
            elif isinstance(node, ast.For) and isinstance(node.iter, ast.Call) \
                    and isinstance(node.iter.func, ast.Name) and node.iter.func.id == "range" and node.iter.args:
                bound = node.iter.args[0] if len(node.iter.args) == 1 else node.iter.args[1]
                if isinstance(bound, ast.Constant) and isinstance(bound.value, int) and bound.value >= _BIG_LOOP:
                    why = f"loops {bound.value:,} times"
            if why and isinstance(node, (ast.stmt, ast.expr)):  # always: only calls and loops have a why
                found.append((node, why))
                break  # one finding per top-level statement
    return found


def check_heavy_startup(ctx: Context) -> list[Finding]:
    """Slow module-level work delays ``runpod.serverless.start``: jobs sit IN_QUEUE meanwhile,
    the worker shows "running", and if the work fails the worker crash-loops."""
    out = []
    for node, why in _startup_work(ctx):
        snippet = ast.unparse(node).split("\n")[0]
        snippet = snippet if len(snippet) <= 60 else snippet[:59] + "…"
        out.append(Finding(
            "warning", "heavy-startup",
            f"{ctx.where(node).capitalize()} ({snippet}) {why} when the worker starts, before "
            "runpod.serverless.start(): until it finishes, jobs wait IN_QUEUE while the worker "
            "shows 'running', and if it fails the worker crash-loops.",
            _FIX_HEAVY, line=ctx.line(node.lineno),
        ))
    return out


def check_init_timeout(ctx: Context) -> list[Finding]:
    """RunPod marks a worker unhealthy if it is not ready within 7 minutes unless
    RUNPOD_INIT_TIMEOUT says otherwise."""
    if not ctx.cloud:
        return []
    value = ctx.options.env.get("RUNPOD_INIT_TIMEOUT")
    if value is not None:
        if not str(value).strip().isdigit() or int(str(value).strip()) <= 0:
            return [Finding("error", "init-timeout-invalid",
                            "RUNPOD_INIT_TIMEOUT must be a whole number of seconds.",
                            "Set it to e.g. 800.")]
        return []
    models = ctx.options.model_size_gb or 0
    slow = _startup_work(ctx)
    if not slow and models < 10:
        return []
    why = f"{len(slow)} slow statement(s) run at start" if slow else f"{models:g} GB of models load at start"
    return [Finding(
        "info", "init-timeout",
        f"{why.capitalize()}; RunPod marks a worker unhealthy when its cold start takes longer than "
        f"{DEFAULT_INIT_TIMEOUT_S // 60} minutes.",
        "If loading can take longer, set RUNPOD_INIT_TIMEOUT=800 (seconds) in the endpoint's env.",
    )]


def check_serverless_start(ctx: Context) -> list[Finding]:
    """The generated file starts the worker; a start call in the cell's functions would start a
    second worker loop inside a job. A top-level one was removed: say so."""
    out = []
    for stmt in ctx.nodes:
        for call in start_calls(stmt, ctx.aliases, nested=True):
            out.append(Finding(
                "error", "serverless-start",
                f"{ctx.where(call).capitalize()} calls runpod.serverless.start() inside a function; "
                "the generated handler.py already starts the worker.",
                "Remove that call: the handler only handles jobs.",
                line=ctx.line(call.lineno),
            ))
    for dropped in ctx.project.dropped:
        if dropped.kind == "serverless-start":
            out.append(Finding(
                "info", "serverless-start-removed",
                f"Line {dropped.line} ({dropped.code}) was left out: the generated handler.py ends "
                "with its own runpod.serverless.start(...).",
                line=dropped.line,
            ))
    return out


# --------------------------------------------------------------------------- storage


def _paths(ctx: Context, prefix: str) -> list[tuple[str, int | None]]:
    """(where, line) of string constants in the code and env values that start with ``prefix``."""
    found: list[tuple[str, int | None]] = []
    for node, text in ctx.strings():
        if text == prefix or text.startswith(prefix + "/"):
            found.append((ctx.where(node), ctx.line(node.lineno)))
    for key in sorted(ctx.options.env):
        value = str(ctx.options.env[key] or "")
        if not looks_secret(key) and (value == prefix or value.startswith(prefix + "/")):
            found.append((f"the env var {key}", None))
    return found


def check_workspace_paths(ctx: Context) -> list[Finding]:
    """Network volumes mount at /runpod-volume on serverless (/workspace is the Pod path)."""
    if not ctx.options.volume:
        return []
    return [Finding(
        "warning", "workspace-path",
        f"{where[0].upper() + where[1:]} uses a path under /workspace, but on serverless the network "
        "volume mounts at /runpod-volume: files written there go to the container disk, are lost "
        "at every cold start and can fill it (exit code 139).",
        "Use /runpod-volume/… instead (e.g. HF_HOME=/runpod-volume/huggingface).",
        line=line,
    ) for where, line in _paths(ctx, "/workspace")]


def check_volume_paths(ctx: Context) -> list[Finding]:
    """Without a network volume nothing is mounted at /runpod-volume."""
    if ctx.options.volume:
        return []
    return [Finding(
        "warning", "no-volume",
        f"{where[0].upper() + where[1:]} uses /runpod-volume but no network volume is attached: "
        "what is written there lives on the container disk and is gone at the next cold start.",
        "Attach a network volume, or bake the files into the image.",
        line=line,
    ) for where, line in _paths(ctx, "/runpod-volume")]


def disk_needed(image_gb: float | None, model_gb: float | None, volume: str | None = None) -> int:
    """GB of container disk a worker needs: the unpacked image, models downloaded to the disk
    (not to a volume), and the buffer."""
    models = 0.0 if volume else (model_gb or 0.0)
    return math.ceil((image_gb or 0.0) * UNPACK_FACTOR + models + DISK_BUFFER_GB)


def check_container_disk(ctx: Context) -> list[Finding]:
    """The container disk must hold the unpacked image (≈2.5× compressed), models downloaded to
    it, and a 20 GB buffer; too small fails before any code runs (no space left on device)."""
    opts = ctx.options
    if not ctx.cloud or (opts.image_size_gb is None and opts.model_size_gb is None):
        return []
    image = opts.image_size_gb or 0.0
    models = 0.0 if opts.volume else (opts.model_size_gb or 0.0)
    need = disk_needed(opts.image_size_gb, opts.model_size_gb, opts.volume)
    parts = [f"{image:g} GB compressed image × {UNPACK_FACTOR:g}" if opts.image_size_gb is not None
             else "the image (size unknown)"]
    if models:
        parts.append(f"{models:g} GB of models")
    parts.append(f"{DISK_BUFFER_GB} GB buffer")
    breakdown = " + ".join(parts)
    if opts.container_disk_gb is None:
        return [Finding("info", "container-disk",
                        f"This worker needs about {need} GB of container disk ({breakdown}); a deploy "
                        "without --container-disk asks for that much.",
                        f"To choose yourself, set --container-disk (container_disk) to {need} or more.")]
    if opts.container_disk_gb < need:
        return [Finding(
            "error", "container-disk",
            f"The container disk ({opts.container_disk_gb:g} GB) is smaller than the {need} GB this "
            f"worker needs ({breakdown}): the container would fail before your code runs (no space "
            "left on device, exit code 139).",
            f"Set container_disk_gb to {need} or more; disk is only billed while workers run.",
        )]
    return []


_HF_CALL_ATTRS = {"from_pretrained", "snapshot_download", "hf_hub_download", "pipeline",
                  "SentenceTransformer", "LLM"}
_HF_KWARGS = {"pretrained_model_name_or_path", "model", "repo_id", "model_name_or_path", "model_id",
              "model_name"}
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hf_model_ids(ctx: Context) -> list[str]:
    """Hugging Face repo ids the code loads (``org/name`` strings passed to loaders)."""
    ids: set[str] = set()
    for node in ctx.all_nodes():
        if not isinstance(node, ast.Call):
            continue
        full = resolve_dotted(node.func, ctx.aliases) or ""
        if full.split(".")[-1] not in _HF_CALL_ATTRS:
            continue
        values = [node.args[0]] if node.args else []
        values += [k.value for k in node.keywords if k.arg in _HF_KWARGS]
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and _HF_ID.match(value.value):
                ids.add(value.value)
    return sorted(ids)


def check_model_placement(ctx: Context) -> list[Finding]:
    """Where models should live: RunPod's cached HF models, then baked in, then a volume."""
    if not ctx.cloud:
        return []
    ids = hf_model_ids(ctx)
    if not ids:
        return []
    listed = ", ".join(ids)
    volume = " A network volume is the slowest of the three." if ctx.options.volume else ""
    return [Finding(
        "info", "model-placement",
        f"The code loads Hugging Face model(s) {listed}. Fastest cold starts: RunPod's cached "
        "models (set the endpoint's model), then baking the weights into the image, then a "
        f"network volume.{volume}",
        f"Set the endpoint's cached model to {ids[0]} (public or gated models), or download it "
        "in the Dockerfile so it is baked in.",
    )]


# --------------------------------------------------------------------------- GPUs


def check_gpu_ids(ctx: Context) -> list[Finding]:
    """Unknown pool ids are rejected by RunPod (or silently never scheduled)."""
    valid = list(ctx.options.known_gpu_ids or GPU_POOLS)
    unknown = [g for g in ctx.options.gpu_ids if g not in valid]
    out = []
    for gpu in unknown:
        close = difflib.get_close_matches(gpu.upper(), valid, n=1)
        guess = f" Did you mean {close[0]}?" if close else ""
        out.append(Finding(
            "error", "gpu-unknown",
            f"{gpu!r} is not a serverless GPU pool id.{guess}",
            "Use pool ids: " + ", ".join(valid) + ".",
        ))
    return out


def check_gpu_tiers(ctx: Context) -> list[Finding]:
    """One pool only: when it has no capacity, workers stay throttled and jobs wait forever."""
    gpus = [g for g in ctx.options.gpu_ids if g in GPU_POOLS]
    if not ctx.cloud or len(set(gpus)) != 1:
        return []
    pool = GPU_POOLS[gpus[0]]
    others = sorted((p for p in GPU_POOLS.values() if p.memory_gb >= pool.memory_gb and p.id != pool.id),
                    key=lambda p: (p.price_per_second, p.memory_gb))[:3]
    suggestion = ",".join([pool.id, *(p.id for p in others)])
    return [Finding(
        "warning", "gpu-single-tier",
        f"Only one GPU pool ({pool.id}, {pool.memory_gb} GB) is allowed: when it has no free "
        "capacity, workers stay throttled and jobs wait IN_QUEUE with no error.",
        f"Allow more pools with enough memory, e.g. --gpu {suggestion}.",
    )]


# --------------------------------------------------------------------------- jobs


_B64_DECODE = {"base64.b64decode", "base64.decodebytes", "base64.urlsafe_b64decode",
               "base64.standard_b64decode", "base64.b85decode"}


def check_payload_base64(ctx: Context) -> list[Finding]:
    """Base64 inputs grow a third and hit the request limits (10 MB /run, 20 MB /runsync)."""
    for node in ctx.all_nodes():
        if isinstance(node, ast.Call) and resolve_dotted(node.func, ctx.aliases) in _B64_DECODE:
            return [Finding(
                "info", "payload-base64",
                f"The handler decodes base64 input ({ctx.where(node)}). RunPod accepts at most "
                "10 MB per /run request and 20 MB per /runsync, and base64 adds a third.",
                "For images, audio or video send a URL (S3 presigned, HTTP) and download it in "
                "the handler.",
                line=ctx.line(node.lineno),
            )]
    return []


def check_concurrency(ctx: Context) -> list[Finding]:
    """concurrency_modifier only overlaps jobs for async handlers."""
    project = ctx.project
    if project.concurrency <= 1 or project.handler_kind in ("async", "async_generator"):
        return []
    what = "a sync generator" if project.handler_kind == "generator" else "a sync function"
    return [Finding(
        "warning", "concurrency-sync",
        f"Concurrency {project.concurrency} is set but the handler is {what}: it blocks the "
        "worker's event loop, so jobs still run one at a time (and cancel requests wait).",
        f"Make it `async def {project.handler_name}(job):` (await I/O; run CPU work with "
        "asyncio.to_thread), or drop --concurrency.",
    )]


def check_captured_size(ctx: Context) -> list[Finding]:
    """Big captured values bloat the image and slow every cold start."""
    total = sum(c.size for c in ctx.project.captured)
    if total <= LARGE_CAPTURE_BYTES:
        return []
    return [Finding(
        "warning", "captured-large",
        f"Captured values take {total / 2**20:.0f} MB (captured.pkl): they are copied into the "
        "image and unpickled at every cold start.",
        "Create large objects in the cell (lazily, on first job), or put them on a volume/bucket.",
    )]


Check = Callable[[Context], list[Finding]]

#: Every check, in the order findings are shown within a level.
CHECKS: tuple[Check, ...] = (
    check_serverless_start, check_secret_env, check_secret_reference, check_secret_docker_args, check_secret_in_code,
    check_gpu_ids, check_container_disk, check_heavy_startup, check_init_timeout,
    check_workspace_paths, check_volume_paths, check_gpu_stock, check_gpu_tiers, check_concurrency,
    check_docker_args_override, check_captured_size, check_payload_base64, check_model_placement,
)


def preflight(project: WorkerProject, options: PreflightOptions | None = None, **changes: Any) -> list[Finding]:
    """All findings for deploying ``project`` with ``options`` (or keyword options), errors first.

    Includes the notes gathered while packaging (dropped ``__main__`` work, added imports …).
    """
    opts = options or PreflightOptions()
    if changes:
        opts = replace(opts, **changes)
    ctx = build_context(project, opts)
    findings = list(project.notes)
    for check in CHECKS:
        findings.extend(check(ctx))
    return sort_findings(findings)
