"""The snapshot a notebook keeps: each view's state as escaped HTML (readable on GitHub and
nbviewer, where no kernel runs and styles may be stripped) and as plain text (terminal IPython,
``text/plain``). Built from the same state dicts as the live views (:mod:`.state`).
"""

from __future__ import annotations

import html
import time
from typing import Any

from ..api.models import WORKER_STATES
from . import render

#: What the saved notebook keeps of a stream: the latest items, text and images within bounds.
STATIC_ITEMS = 200
STATIC_TEXT_CHARS = 50_000
STATIC_IMAGE_CHARS = 2_000_000
LOG_LINES_SHOWN = 200

_JOB_LABELS = (("inQueue", "in queue"), ("inProgress", "in progress"), ("completed", "completed"),
               ("failed", "failed"), ("retried", "retried"))
_STYLE = "font-family:var(--jp-ui-font-family,sans-serif);font-size:var(--jp-ui-font-size1,13px)"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _clock(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else ""


def _seconds(ms: int | None) -> str:
    return "" if ms is None else f"{ms / 1000:.2f} s"


def _badge(backend: str) -> str:
    return f"[{backend.upper()}]"


# -- endpoint -----------------------------------------------------------------------------------
def _workers_line(state: dict[str, Any]) -> str:
    return ", ".join(f"{state['workers'][s]} {s}" for s in WORKER_STATES)


def _jobs_line(state: dict[str, Any]) -> str:
    return ", ".join(f"{state['jobs'][k]} {label}" for k, label in _JOB_LABELS)


def _gpus_line(settings: dict[str, Any] | None, stock: dict[str, str] | None = None) -> str:
    if not settings:
        return "unknown"
    return ", ".join(
        g["id"] + (f" ({render.money(g['perHour'], 2)}/h)" if g["perHour"] is not None else "")
        + (f" stock {stock[g['id']]}" if stock and g["id"] in stock else "")
        for g in settings["gpus"]
    ) or "none"


def release_line(state: dict[str, Any]) -> str:
    """E.g. "release 5: 2 of 3 workers on it, rolling out; 1 stale worker" ("" when unknown)."""
    rollout = state.get("rollout")
    if not rollout:
        return ""
    parts = [f"release {rollout['version']}"]
    if rollout["workersTotal"]:
        parts[0] += f": {rollout['workersOnLatest']} of {rollout['workersTotal']} workers on it"
    if rollout["inProgress"]:
        parts.append("rolling out")
    if state.get("stale"):
        parts.append(f"{state['stale']} stale worker(s)")
    if rollout["changed"]:
        parts.append("changed " + ", ".join(rollout["changed"]))
    return "; ".join(parts)


def _scaling_line(settings: dict[str, Any] | None) -> str:
    if not settings:
        return "unknown"
    unit = " s" if settings["scaler"] == "QUEUE_DELAY" else " jobs/worker"
    return (f"workers {settings['workersMin']}-{settings['workersMax']}, idle timeout {settings['idleTimeout']} s, "
            f"{settings['scaler']} {settings['scalerValue']}{unit}")


def cost_line(state: dict[str, Any]) -> str:
    cost = state["cost"]
    parts = []
    if cost["spent"] is not None:
        parts.append(f"{render.money(cost['spent'])} spent")
    else:
        parts.append("spend per endpoint not reported by RunPod")
    if cost["perHour"] is not None:
        parts.append(f"{render.money(cost['perHour'], 2)}/h now")
    elif cost["perHourRange"]:
        low, high = cost["perHourRange"]
        span = render.money(low, 2) if abs(high - low) < 0.005 else f"{render.money(low, 2)}-{render.money(high, 2)}"
        parts.append(f"about {span}/h now")
    if cost["accountPerHour"] is not None and state["backend"] == "cloud":
        parts.append(f"account {render.money(cost['accountPerHour'], 2)}/h")
    return ", ".join(parts)


def endpoint_text(state: dict[str, Any], at: float | None = None) -> str:
    lines = [f"{_badge(state['backend'])} endpoint {state['name']!r} ({state['endpointId']})"
             + (f" at {_clock(at)}" if at else "")]
    if state["deleted"]:
        lines.append("  deleted")
    if state["error"]:
        lines.append(f"  state unavailable: {state['error']}")
    lines += [
        f"  workers: {_workers_line(state)}",
        f"  jobs:    {_jobs_line(state)}",
        f"  gpus:    {_gpus_line(state['settings'], state.get('stock'))}",
        f"  scaling: {_scaling_line(state['settings'])}",
        f"  cost:    {cost_line(state)}",
    ]
    if release_line(state):
        lines.insert(-3, f"  release: {release_line(state)}")
    for f in state["findings"]:
        lines.append(f"  {f['level']}: {f['message']}")
        if f["fix"]:
            lines.append(f"    fix: {f['fix']}")
    return "\n".join(lines)


def _findings_html(findings: list[dict[str, Any]]) -> str:
    ok = "" if any(f["level"] != "info" for f in findings) else "<p>No problems found.</p>"
    if not findings:
        return ok
    rows = "".join(
        f"<li><strong>{_e(f['level'])}</strong>: {_e(f['message'])}"
        + (f"<br><em>Fix:</em> {_e(f['fix'])}" if f["fix"] else "") + "</li>"
        for f in findings
    )
    return f"{ok}<ul>{rows}</ul>"


def endpoint_html(state: dict[str, Any], at: float | None = None) -> str:
    rows = [
        ("Workers", _workers_line(state)),
        ("Jobs", _jobs_line(state)),
        ("GPUs", _gpus_line(state["settings"], state.get("stock"))),
        ("Scaling", _scaling_line(state["settings"])),
        ("Cost", cost_line(state)),
    ]
    if release_line(state):
        rows.insert(2, ("Release", release_line(state)))
    if state["workerList"]:
        rows.append(("Worker list", "; ".join(
            f"{w['id'][:8]} {w['state']}" + (f" on {w['gpu']}" if w["gpu"] else "") + (f" ({w['reason']})" if w["reason"] else "")
            for w in state["workerList"])))
    table = "".join(f"<tr><th style='text-align:left'>{_e(k)}</th><td style='text-align:left'>{_e(v)}</td></tr>" for k, v in rows)
    head = (f"<p><strong>{_e(_badge(state['backend']))} endpoint {_e(state['name'])}</strong> "
            f"<code>{_e(state['endpointId'])}</code>" + (f" &middot; snapshot {_e(_clock(at))}" if at else "") + "</p>")
    notes = ""
    if state["deleted"]:
        notes += "<p><strong>Deleted.</strong></p>"
    if state["error"]:
        notes += f"<p>State unavailable: {_e(state['error'])}</p>"
    return (f"<div class='runpod-jupyter-static' data-kind='endpoint' style='{_STYLE}'>{head}{notes}"
            f"<table>{table}</table>{_findings_html(state['findings'])}</div>")


# -- job ----------------------------------------------------------------------------------------
def kept_items(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The tail of a stream the saved notebook keeps, and how many items were left out."""
    merged = render.merge(items)
    kept: list[dict[str, Any]] = []
    text_budget, image_budget = STATIC_TEXT_CHARS, STATIC_IMAGE_CHARS
    for item in reversed(merged):
        if len(kept) >= STATIC_ITEMS:
            break
        if item["k"] == "img":
            if item["bytes"] > image_budget:
                kept.append({"k": "json", "t": f"<image, {item['bytes'] * 3 // 4:,} bytes, not kept in the notebook>"})
                continue
            image_budget -= item["bytes"]
        else:
            if text_budget <= 0:
                break
            if len(item["t"]) > text_budget:
                item = {**item, "t": "…" + item["t"][-text_budget:]}
            text_budget -= len(item["t"])
        kept.append(item)
    kept.reverse()
    return kept, len(merged) - len(kept)


def items_html(items: list[dict[str, Any]]) -> str:
    parts = []
    for item in items:
        if item["k"] == "img":
            parts.append(f"<img src='{_e(item['src'])}' alt='{_e(item.get('alt', 'image'))}' style='max-width:100%'>")
        else:
            parts.append(f"<pre style='white-space:pre-wrap;margin:2px 0'>{_e(item['t'])}</pre>")
    return "".join(parts)


def items_text(items: list[dict[str, Any]]) -> str:
    out = []
    for item in render.merge(items):
        out.append(f"<image, {item['bytes'] * 3 // 4:,} bytes>" if item["k"] == "img" else item["t"])
    return "\n".join(out)


def _timeline_text(state: dict[str, Any]) -> str:
    steps = (f"{status}" + (f" ({detail})" if detail else "") + f" {_clock(t)}" for t, status, detail in state["timeline"])
    return " -> ".join(steps)


def _timing(state: dict[str, Any]) -> str:
    parts = []
    if state["delayMs"] is not None:
        parts.append(f"waited {_seconds(state['delayMs'])}")
    if state["executionMs"] is not None:
        parts.append(f"ran {_seconds(state['executionMs'])}")
    if state["worker"]:
        parts.append(f"worker {state['worker']}")
    return ", ".join(parts)


def job_text(state: dict[str, Any], items: list[dict[str, Any]], logs: list[dict[str, Any]]) -> str:
    lines = [f"{_badge(state['backend'])} job {state['id']} on {state['endpoint']!r}: {state['status']}"
             + (f" ({_timing(state)})" if _timing(state) else "")]
    if state["timeline"]:
        lines.append(f"  timeline: {_timeline_text(state)}")
    if state["progress"] and not state["final"]:
        lines.append(f"  progress: {state['progress']['text']}")
    if items:
        kept, dropped = kept_items(items)
        count = state["streamCount"]
        earlier = f", {dropped} earlier not shown" if dropped else ""
        lines.append(f"  stream ({count} chunk{'' if count == 1 else 's'}{earlier}):")
        lines += ["    " + line for line in items_text(kept).splitlines()[-40:]]
    if state["result"]:
        lines.append("  result:")
        lines += ["    " + line for line in items_text(state["result"]).splitlines()[:40]]
    elif state["resultNote"]:
        lines.append(f"  result: {state['resultNote']}")
    if state["error"]:
        err = state["error"]
        lines.append(f"  error: {err['type'] + ': ' if err['type'] else ''}{err['message']}")
    if state.get("logsUrl"):
        lines.append(f"  worker log: in the RunPod console, {state['logsUrl']} (Logs tab)")
    if logs:
        lines.append(f"  worker log ({len(logs)} line(s)):")
        lines += [f"    {_clock(line.get('t'))} {line.get('message', '')}" for line in logs[-10:]]
    return "\n".join(lines)


def job_html(state: dict[str, Any], items: list[dict[str, Any]], logs: list[dict[str, Any]]) -> str:
    head = (f"<p><strong>{_e(_badge(state['backend']))} job <code>{_e(state['id'])}</code> on {_e(state['endpoint'])}"
            f": {_e(state['status'])}</strong>" + (f" &middot; {_e(_timing(state))}" if _timing(state) else "") + "</p>")
    body = []
    if state["timeline"]:
        steps = "".join(
            f"<li>{_e(_clock(t))} {_e(status)}" + (f" &middot; {_e(detail)}" if detail else "") + "</li>"
            for t, status, detail in state["timeline"]
        )
        body.append(f"<details><summary>Timeline</summary><ul>{steps}</ul></details>")
    if state["progressHistory"]:
        body.append("<p>Progress: " + _e(" → ".join(state["progressHistory"])) + "</p>")
    if items:
        kept, dropped = kept_items(items)
        note = f" ({dropped} earlier item(s) not kept)" if dropped else ""
        body.append(f"<p><strong>Stream</strong>: {state['streamCount']} chunk(s){_e(note)}</p>{items_html(kept)}")
    if state["result"]:
        body.append(f"<p><strong>Result</strong></p>{items_html(state['result'])}")
    elif state["resultNote"]:
        body.append(f"<p><strong>Result</strong>: {_e(state['resultNote'])}</p>")
    if state["error"]:
        err = state["error"]
        body.append(f"<p><strong>Error</strong>: {_e((err['type'] + ': ') if err['type'] else '')}{_e(err['message'])}</p>")
        if err["traceback"]:
            body.append(f"<details><summary>Worker traceback</summary><pre>{_e(err['traceback'])}</pre></details>")
    if state.get("logsUrl"):
        body.append(f"<p>Worker log: in the RunPod console, <a href='{_e(state['logsUrl'])}' target='_blank' "
                    f"rel='noopener'>{_e(state['logsUrl'])}</a> (Logs tab).</p>")
    if logs:
        shown = logs[-LOG_LINES_SHOWN:]
        text = "\n".join(f"{_clock(line.get('t'))} {line.get('message', '')}" for line in shown)
        body.append(f"<details><summary>Worker log ({len(logs)} line(s))</summary><pre>{_e(text)}</pre></details>")
    return f"<div class='runpod-jupyter-static' data-kind='job' style='{_STYLE}'>{head}{''.join(body)}</div>"


# -- batch --------------------------------------------------------------------------------------
def _counts_line(state: dict[str, Any]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(state["counts"].items()))


def batch_text(state: dict[str, Any]) -> str:
    lines = [f"{_badge(state['backend'])} batch of {state['total']} on {state['endpoint']!r}: "
             f"{state['done']}/{state['total']} done ({_counts_line(state)})"]
    for f in state["failures"]:
        lines.append(f"  #{f['index']} {f['id']} {f['status']}: {f['reason']}")
    if state["failuresNotListed"]:
        lines.append(f"  … and {state['failuresNotListed']} more failure(s)")
    return "\n".join(lines)


def batch_html(state: dict[str, Any]) -> str:
    head = (f"<p><strong>{_e(_badge(state['backend']))} batch of {state['total']} on {_e(state['endpoint'])}</strong>: "
            f"{state['done']}/{state['total']} done &middot; {_e(_counts_line(state))}</p>")
    fails = ""
    if state["failures"]:
        rows = "".join(
            f"<tr><td>#{f['index']}</td><td><code>{_e(f['id'])}</code></td><td>{_e(f['status'])}</td><td>{_e(f['reason'])}</td></tr>"
            for f in state["failures"]
        )
        more = f"<p>… and {state['failuresNotListed']} more failure(s)</p>" if state["failuresNotListed"] else ""
        fails = f"<p><strong>Failures</strong></p><table>{rows}</table>{more}"
    return f"<div class='runpod-jupyter-static' data-kind='batch' style='{_STYLE}'>{head}{fails}</div>"
