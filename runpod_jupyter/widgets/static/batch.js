// Batch view: aggregate progress of Deployment.map(...), counts by status, failures listed.

const ORDER = ["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT", "GONE"];

function render({ model, el }) {
  el.classList.add("rpj", "rpj-batch");
  const head = h("div", { class: "rpj-head" });
  const bar = h("div", { class: "rpj-progress" });
  const chips = h("div", { class: "rpj-chips" });
  const failures = h("div", { class: "rpj-failures" });
  const notice = h("div", { class: "rpj-notice rpj-notice-error" });
  el.append(head, bar, chips, failures, notice);
  const life = viewLife(model, el, { "change:state": draw });

  function draw() {
    if (!life.alive()) return;
    const s = model.get("state");
    if (!s || s.total === undefined) return;
    head.replaceChildren(
      h("span", { class: `rpj-badge rpj-badge-${s.backend}` }, s.backend.toUpperCase()),
      h("span", { class: "rpj-title" }, `Batch of ${s.total}`),
      h("span", { class: "rpj-muted" }, `on ${s.endpoint}`),
      h("span", { class: "rpj-spacer" }),
      liveBadge(model, s.live),
    );
    const ok = s.total ? (100 * (s.done - s.failed)) / s.total : 0;
    const bad = s.total ? (100 * s.failed) / s.total : 0;
    const track = h("div", { class: "rpj-bar" },
      h("div", { class: "rpj-seg rpj-s-idle", style: `width:${ok}%` }),
      h("div", { class: "rpj-seg rpj-s-unhealthy", style: `width:${bad}%` }));
    bar.replaceChildren(track, h("span", {}, `${s.done}/${s.total} done`));
    const states = Object.keys(s.counts).sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));
    chips.replaceChildren(...states.map((st) =>
      h("span", { class: `rpj-chip rpj-st-${st}`, "data-status": st }, h("b", {}, s.counts[st]), " ", st)));
    failures.replaceChildren();
    if (s.failures.length) {
      const rows = s.failures.map((f) => h("tr", {},
        h("td", {}, `#${f.index}`), h("td", {}, h("code", {}, f.id)),
        h("td", { class: `rpj-st-${f.status}` }, f.status), h("td", {}, f.reason)));
      failures.append(h("details", { open: s.failures.length <= 5 },
        h("summary", {}, `Failures (${s.failed})`), h("table", { class: "rpj-workers" }, rows),
        s.failuresNotListed ? h("div", { class: "rpj-muted" }, `… and ${s.failuresNotListed} more`) : null));
    }
    notice.textContent = s.error ? `State unavailable: ${s.error}` : "";
  }

  return life.open(draw);
}

export default { render };
