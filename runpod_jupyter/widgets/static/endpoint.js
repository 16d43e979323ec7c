// Endpoint view: workers by state, jobs, GPU pools and scaling, cost, findings, actions.
// Text is only ever set with textContent; the kernel sends data, never markup.

const STATES = ["initializing", "idle", "running", "throttled", "outdated", "unhealthy"];
const JOBS = [["inQueue", "in queue"], ["inProgress", "in progress"], ["completed", "completed"],
              ["failed", "failed"], ["retried", "retried"]];

function money(value, digits = 4) {
  if (value === null || value === undefined) return "n/a";
  return "$" + value.toFixed(Math.abs(value) < 1 ? digits : 2);
}

function costText(s) {
  const c = s.cost;
  const parts = [c.spent !== null ? `${money(c.spent)} spent` : "spend per endpoint not reported by RunPod"];
  if (c.perHour !== null) parts.push(`${money(c.perHour, 2)}/h now`);
  else if (c.perHourRange) {
    const [low, high] = c.perHourRange;
    parts.push(`about ${Math.abs(high - low) < 0.005 ? money(low, 2) : money(low, 2) + "-" + money(high, 2)}/h now`);
  }
  if (s.backend === "cloud" && c.accountPerHour !== null) parts.push(`account ${money(c.accountPerHour, 2)}/h`);
  return parts.join(" · ");
}

function row(label, ...content) {
  return h("div", { class: "rpj-row" }, h("span", { class: "rpj-label" }, label), ...content);
}

function workersRow(s) {
  const total = s.workersTotal;
  const bar = h("div", { class: "rpj-bar", title: `${total} worker(s)` });
  for (const state of STATES) {
    const n = s.workers[state];
    if (n > 0) bar.append(h("div", { class: `rpj-seg rpj-s-${state}`, style: `width:${(100 * n) / total}%`, title: `${n} ${state}` }));
  }
  const chips = h("div", { class: "rpj-chips" }, STATES.map((state) =>
    h("span", { class: `rpj-chip${s.workers[state] ? "" : " rpj-zero"}`, "data-state": state },
      h("span", { class: `rpj-dot rpj-s-${state}` }), h("b", {}, s.workers[state]), " ", state)));
  const limits = s.settings ? h("span", { class: "rpj-muted" }, `min ${s.settings.workersMin} · max ${s.settings.workersMax}`) : null;
  return row("Workers", total ? bar : h("span", { class: "rpj-muted" }, "no workers"), limits, chips);
}

function workerList(s) {
  if (!s.workerList.length) return null;
  const rows = s.workerList.map((w) => h("tr", {},
    h("td", {}, h("code", {}, w.id.slice(0, 10))), h("td", {}, h("span", { class: `rpj-dot rpj-s-${w.state}` }), w.state, w.stale ? " (stale)" : ""),
    h("td", {}, w.gpu || ""), h("td", { class: "rpj-muted" }, w.reason || "")));
  const more = s.workersNotListed ? h("div", { class: "rpj-muted" }, `… and ${s.workersNotListed} more`) : null;
  return h("details", {}, h("summary", {}, `Worker list (${s.workerList.length + s.workersNotListed})`),
    h("table", { class: "rpj-workers" }, rows), more);
}

// The newest release and its rollout, from REST v2 ("2 of 3 workers on release 5").
function releaseRow(s) {
  const r = s.rollout;
  if (!r) return null;
  const parts = [r.workersTotal ? `${r.workersOnLatest} of ${r.workersTotal} workers on release ${r.version}` : `release ${r.version}`];
  if (r.inProgress) parts.push("rolling out");
  if (s.stale) parts.push(`${s.stale} stale worker(s)`);
  const text = h("span", { class: "rpj-rollout", "data-in-progress": String(r.inProgress) }, parts.join(" · "));
  const changed = r.changed.length ? h("span", { class: "rpj-muted" }, `changed ${r.changed.join(", ")}`) : null;
  const bar = r.workersTotal ? h("div", { class: "rpj-bar rpj-rollout-bar", title: `${r.percentOnLatest}% on release ${r.version}` },
    h("div", { class: "rpj-seg rpj-s-idle", style: `width:${r.percentOnLatest}%` }),
    h("div", { class: "rpj-seg rpj-s-outdated", style: `width:${100 - r.percentOnLatest}%` })) : null;
  return row("Release", text, bar, changed);
}

// Stock of one of the endpoint's pools (HIGH, MEDIUM, LOW, NONE), when known.
function stockOf(s, pool) {
  const level = s.stock ? s.stock[pool] : undefined;
  return level ? h("span", { class: `rpj-stock rpj-stock-${level.toLowerCase()}`, "data-stock": level, title: "GPU stock now" }, level) : null;
}

function findings(s) {
  // Notes (info) are advice, not problems: "No problems found." stands above them.
  const problems = s.error || s.findings.some((f) => f.level !== "info");
  const ok = problems ? null : h("div", { class: "rpj-ok-text" }, "No problems found.");
  if (!s.findings.length) return ok;
  const list = h("ul", { class: "rpj-findings" }, s.findings.map((f) =>
    h("li", { class: `rpj-finding rpj-finding-${f.level}`, "data-code": f.code },
      h("div", {}, h("b", {}, f.level === "error" ? "Problem: " : f.level === "warning" ? "Warning: " : "Note: "), f.message),
      f.fix ? h("div", { class: "rpj-fix" }, "Fix: ", f.fix) : null)));
  return ok ? h("div", {}, ok, list) : list;
}

function body(s) {
  const jobs = h("div", { class: "rpj-chips" }, JOBS.map(([key, label]) =>
    h("span", { class: `rpj-chip${s.jobs[key] ? "" : " rpj-zero"}`, "data-job": key }, h("b", {}, s.jobs[key]), " ", label)));
  const gpus = s.settings ? h("div", { class: "rpj-chips" }, s.settings.gpus.map((g) =>
    h("span", { class: "rpj-chip", title: g.examples || "", "data-pool": g.id }, g.id, g.perHour !== null ? ` ${money(g.perHour, 2)}/h` : "", stockOf(s, g.id)))) : h("span", { class: "rpj-muted" }, "unknown");
  const st = s.settings;
  const scaling = st ? h("span", {}, `${st.workersMin}-${st.workersMax} workers · idle timeout ${st.idleTimeout} s · ${st.scaler} ${st.scalerValue}${st.scaler === "QUEUE_DELAY" ? " s" : ""}`) : h("span", { class: "rpj-muted" }, "unknown");
  return [
    s.error ? h("div", { class: "rpj-notice rpj-notice-error" }, "State unavailable: ", s.error) : null,
    s.deleted ? h("div", { class: "rpj-notice rpj-notice-error" }, "This endpoint was deleted.") : null,
    workersRow(s),
    workerList(s),
    releaseRow(s),
    row("Jobs", jobs),
    row("GPUs", gpus),
    row("Scaling", scaling),
    row("Cost", h("span", { class: "rpj-cost" }, costText(s))),
    findings(s),
  ];
}

// What the user is typing or confirming, per endpoint: kept when the view is re-rendered
// (the kernel refreshes the notebook's saved snapshot, which draws the view again).
const drafts = new Map();

function actions(model) {
  const box = h("div", { class: "rpj-actions" });
  const send = (content) => model.send({ type: "action", ...content });
  let key = null;
  const draft = () => drafts.get(key) || {};
  const keep = (change) => drafts.set(key, { ...draft(), ...change });
  const low = h("input", { type: "number", min: "0", step: "1", "aria-label": "minimum workers" });
  const high = h("input", { type: "number", min: "0", step: "1", "aria-label": "maximum workers" });
  for (const input of [low, high]) input.addEventListener("input", () => keep({ low: low.value, high: high.value }));
  const purge = h("button", { onclick: () => send({ name: "purge" }), title: "Drop queued jobs; running jobs continue" }, "Purge queue");
  const scale = h("button", {
    onclick: () => { send({ name: "scale", min: low.valueAsNumber, max: high.valueAsNumber }); keep({ low: undefined, high: undefined }); },
  }, "Scale");
  const confirm = h("span", { class: "rpj-confirm", hidden: true });
  const del = h("button", { class: "rpj-danger", onclick: () => setConfirm(true) }, "Delete…");
  const setConfirm = (open) => { confirm.hidden = !open; del.hidden = open; keep({ confirm: open }); };
  box.append(purge, h("span", { class: "rpj-muted" }, "workers"), low, "–", high, scale, del, confirm);
  return {
    node: box,
    update(s) {
      key = s.endpointId;
      const d = draft();
      confirm.replaceChildren(
        `Delete endpoint ${s.name} and its template? Its workers stop.`,
        h("button", { class: "rpj-danger", onclick: () => { send({ name: "delete", confirm: s.name }); setConfirm(false); } }, "Delete"),
        h("button", { onclick: () => setConfirm(false) }, "Keep"));
      confirm.hidden = !d.confirm;
      del.hidden = Boolean(d.confirm);
      if (s.settings && document.activeElement !== low && document.activeElement !== high) {
        low.value = d.low !== undefined ? d.low : s.settings.workersMin;
        high.value = d.high !== undefined ? d.high : s.settings.workersMax;
      }
      const off = Boolean(s.busy) || s.deleted || s.live === "final";
      for (const b of [scale, del]) b.disabled = off;
      purge.disabled = off || !s.jobs.inQueue;
    },
  };
}

function render({ model, el }) {
  el.classList.add("rpj", "rpj-endpoint");
  const head = h("div", { class: "rpj-head" });
  const main = h("div", { class: "rpj-body" });
  const controls = actions(model);
  const notice = h("div", { class: "rpj-notice" });
  el.append(head, main, controls.node, notice);
  const life = viewLife(model, el, { "change:state": draw });

  function draw() {
    if (!life.alive()) return;
    const s = model.get("state");
    if (!s || !s.workers) return;
    head.replaceChildren(
      h("span", { class: `rpj-badge rpj-badge-${s.backend}` }, s.backend.toUpperCase()),
      h("span", { class: "rpj-title" }, s.name),
      h("span", { class: "rpj-id" }, s.endpointId),
      h("span", { class: "rpj-spacer" }),
      liveBadge(model, s.live),
    );
    main.replaceChildren(...body(s).filter(Boolean));
    controls.update(s);
    const n = s.notice;
    notice.className = `rpj-notice${n && n.level === "error" ? " rpj-notice-error" : ""}`;
    notice.textContent = s.busy ? `${s.busy}…` : n ? n.text : "";
  }

  return life.open(draw);
}

export default { render };
