// Job view: status and timeline, progress, streamed output as it arrives, result or error,
// worker log lines, cancel. New stream items come in numbered "tail" batches; a view that
// opens later (or misses a batch) asks the kernel for a replay. Only textContent and data:
// image URIs are ever put on the page.

const MAX_NODES = 1000;
const MAX_TEXT = 200000;
const MAX_LOG_CHARS = 300000;

const clock = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "");
const seconds = (ms) => (ms === null || ms === undefined ? null : `${(ms / 1000).toFixed(2)} s`);

function itemNode(item) {
  if (item.k === "img") {
    if (typeof item.src !== "string" || !item.src.startsWith("data:image/")) return null;
    return h("img", { src: item.src, alt: item.alt || "image", class: "rpj-img" });
  }
  return h("pre", { class: item.k === "text" ? "rpj-text" : "rpj-json" }, item.t);
}

function appendItems(box, items) {
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  for (const item of items) {
    const last = box.lastElementChild;
    if (item.k === "text" && last && last.classList.contains("rpj-text")) {
      last.append(item.t);
      if (last.textContent.length > MAX_TEXT) last.textContent = "…" + last.textContent.slice(-MAX_TEXT / 2);
    } else {
      const node = itemNode(item);
      if (node) box.append(node);
    }
  }
  while (box.childElementCount > MAX_NODES) box.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function render({ model, el }) {
  el.classList.add("rpj", "rpj-job");
  const head = h("div", { class: "rpj-head" });
  const timing = h("div", { class: "rpj-muted rpj-timing" });
  const timeline = h("div", { class: "rpj-timeline" });
  const progress = h("div", { class: "rpj-progress", hidden: true });
  const streamHead = h("div", { class: "rpj-muted rpj-stream-head", hidden: true });
  const stream = h("div", { class: "rpj-stream", hidden: true });
  const result = h("div", { class: "rpj-result" });
  const error = h("div", { class: "rpj-error", hidden: true });
  const logText = h("pre", { class: "rpj-log" });
  const logSummary = h("summary", {}, "Worker log");
  const logs = h("details", { class: "rpj-logs", hidden: true }, logSummary, logText);
  const logsLink = h("div", { class: "rpj-muted", hidden: true });
  const notice = h("div", { class: "rpj-notice" });
  const cancel = h("button", { class: "rpj-danger", onclick: () => model.send({ type: "action", name: "cancel" }) }, "Cancel");
  el.append(head, timing, timeline, progress, streamHead, stream, result, error, logs, logsLink, notice);

  let seq = -1;
  let waiting = true; // until the replay arrives
  let chunks = 0;
  let logLines = 0;
  let lastFraction = null;
  const life = viewLife(model, el, { "change:state": draw, "change:tail": onTail, "msg:custom": onCustom });

  function addLogs(lines) {
    if (!lines.length) return;
    logLines += lines.length;
    logText.append(lines.map((l) => `${clock(l.t)} ${l.message}\n`).join(""));
    if (logText.textContent.length > MAX_LOG_CHARS) logText.textContent = logText.textContent.slice(-MAX_LOG_CHARS / 2);
    if (logs.hidden) logs.open = true; // the first lines: show them as they come
    logs.hidden = false;
    logSummary.textContent = `Worker log (${logLines} line${logLines === 1 ? "" : "s"})`;
  }

  function showStream() {
    if (!chunks) return;
    stream.hidden = false;
    streamHead.hidden = false;
    streamHead.textContent = `Stream · ${chunks} chunk${chunks === 1 ? "" : "s"}`;
  }

  function onTail() {
    const t = model.get("tail");
    if (!t || waiting || t.seq <= seq || !life.alive()) return;
    if (t.seq !== seq + 1) { // a batch went missing: start over from a replay
      waiting = true;
      model.send({ type: "view", event: "replay" });
      return;
    }
    seq = t.seq;
    chunks = t.chunks;
    appendItems(stream, t.items);
    addLogs(t.logs);
    showStream();
  }

  function onCustom(msg) {
    if (!msg || msg.type !== "replay" || !life.alive()) return;
    stream.replaceChildren();
    if (msg.dropped) stream.append(h("div", { class: "rpj-muted" }, `… ${msg.dropped} earlier item(s) not shown`));
    appendItems(stream, msg.items);
    logText.textContent = "";
    logLines = 0;
    addLogs(msg.logs);
    seq = msg.seq;
    chunks = msg.chunks;
    waiting = false;
    showStream();
  }

  function drawProgress(s) {
    const p = s.progress;
    if (p && p.fraction !== null) lastFraction = p.fraction;
    if (!p && lastFraction === null) { progress.hidden = true; return; }
    progress.hidden = false;
    const bar = h("div", { class: "rpj-bar" });
    let fraction = lastFraction;
    if (s.status === "COMPLETED" && fraction !== null) fraction = 1;
    if (fraction !== null) bar.append(h("div", { class: "rpj-fill", style: `width:${(fraction * 100).toFixed(1)}%` }));
    progress.className = "rpj-progress" + (s.final ? (s.status === "COMPLETED" ? " rpj-done" : " rpj-failed") : "");
    const text = p ? p.text : (s.progressHistory.length ? s.progressHistory[s.progressHistory.length - 1] : "");
    progress.replaceChildren(fraction !== null ? bar : null, h("span", { class: "rpj-progress-text" }, text));
  }

  function draw() {
    if (!life.alive()) return;
    const s = model.get("state");
    if (!s || !s.status) return;
    cancel.disabled = s.final || Boolean(s.busy);
    head.replaceChildren(
      h("span", { class: `rpj-badge rpj-badge-${s.backend}` }, s.backend.toUpperCase()),
      h("span", { class: "rpj-title" }, "Job"),
      h("span", { class: "rpj-id" }, s.id),
      h("span", { class: "rpj-muted" }, `on ${s.endpoint}`),
      h("span", { class: `rpj-status rpj-st-${s.status}` }, s.status),
      h("span", { class: "rpj-spacer" }),
      liveBadge(model, s.live),
      s.final ? null : cancel,
    );
    timing.textContent = [
      s.delayMs !== null ? `queue delay ${seconds(s.delayMs)}` : null,
      s.executionMs !== null ? `execution ${seconds(s.executionMs)}` : null,
      s.worker ? `worker ${s.worker}` : null,
    ].filter(Boolean).join(" · ");
    timeline.replaceChildren(...s.timeline.map(([t, status, detail]) =>
      h("span", { class: "rpj-step", title: detail || "" }, `${status} ${clock(t)}`)));
    drawProgress(s);
    if (s.streamCount > chunks) { chunks = s.streamCount; showStream(); }
    result.replaceChildren();
    if (s.result.length) {
      result.append(h("div", { class: "rpj-muted" }, "Result"));
      for (const item of s.result) { const node = itemNode(item); if (node) result.append(node); }
    } else if (s.resultNote) {
      result.append(h("div", { class: "rpj-muted" }, `Result: ${s.resultNote}`));
    }
    error.hidden = !s.error;
    if (s.error) {
      error.replaceChildren(
        h("div", { class: "rpj-error-msg" }, s.error.type ? `${s.error.type}: ${s.error.message}` : s.error.message),
        s.error.traceback ? h("details", {}, h("summary", {}, "Worker traceback"), h("pre", { class: "rpj-tb" }, s.error.traceback)) : null,
      );
    }
    logsLink.hidden = !s.logsUrl;
    if (s.logsUrl && !logsLink.firstChild) {
      const url = s.logsUrl.startsWith("https://") ? s.logsUrl : null;
      logsLink.append("Worker log: ", url ? h("a", { href: url, target: "_blank", rel: "noopener" }, "RunPod console") : "RunPod console",
        " (Logs tab)");
    }
    const n = s.notice;
    notice.className = `rpj-notice${n && n.level === "error" ? " rpj-notice-error" : ""}`;
    notice.textContent = s.busy ? `${s.busy}…` : (n ? n.text : "") + (s.streamError ? ` Stream: ${s.streamError}` : "");
  }

  return life.open(draw);
}

export default { render };
