// Shared by every view (prepended to each view's module by the Python side: anywidget
// modules cannot import their siblings). Text is only ever set with textContent.

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The live-updates indicator; a click asks for fresh state now (and resumes paused updates).
function liveBadge(model, live) {
  const label = live === "active" ? "live" : live;
  const title = live === "final" ? "final state" : "live updates: click to refresh now";
  const badge = h("span", { class: `rpj-live rpj-live-${live}`, title, role: "button" }, label);
  if (live !== "final") badge.addEventListener("click", () => model.send({ type: "action", name: "refresh" }));
  return badge;
}

// A view's life with the kernel. `open(first)` subscribes the handlers, draws, and tells the kernel a
// view is showing; `close` (also what render returns, for a disposal) unsubscribes and tells it once.
// A view can also be replaced on the page without being disposed: `alive()` notices that it was shown
// and is no longer, and closes it then.
function viewLife(model, el, handlers) {
  let connected = false;
  let closed = false;

  function close() {
    if (closed) return;
    closed = true;
    for (const [event, handler] of Object.entries(handlers)) model.off(event, handler);
    model.send({ type: "view", event: "close" });
  }

  function alive() {
    if (closed) return false;
    if (el.isConnected) connected = true;
    else if (connected) { close(); return false; }
    return true;
  }

  function open(first) {
    for (const [event, handler] of Object.entries(handlers)) model.on(event, handler);
    first();
    model.send({ type: "view", event: "open" });
    return close;
  }

  return { alive, open };
}
