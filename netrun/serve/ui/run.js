// The run page: status, the route the router took, the text and tool calls as they stream,
// Approve/Reject per gated call (with a reason), a form per open wait, state, usage and cost.

import { api } from "./api.js";
import { h, fill, show, status } from "./dom.js";
import { RunView } from "./runview.js";
import { follow } from "./stream.js";

export const APPROVAL_EVENT = "netrun/approval";

export function runPage(main, runId) {
  const els = {
    status: h("span", { id: "run-status" }),
    info: h("p", { class: "muted", id: "run-info" }),
    stream: h("span", { class: "muted", id: "stream-state" }),
    route: h("ol", { id: "route" }),
    parts: h("div", { id: "parts" }),
    approvals: h("div", { id: "approvals" }),
    waits: h("div", { id: "waits" }),
    state: h("pre", { id: "state" }),
    usage: h("p", { id: "usage" }),
    error: h("p", { class: "error", id: "run-error" }),
  };
  const partEls = new Map();
  let approvalKeys = null; // the ids drawn (null: draw again)
  let waitKeys = null;
  const view = new RunView(runId, (what) => schedule(what));
  const pending = new Set();
  let frame = 0;
  const schedule = (what) => {
    pending.add(what);
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; const todo = [...pending]; pending.clear(); todo.forEach(render); });
  };

  fill(main,
    h("h1", {}, "Run ", h("span", { class: "mono" }, runId), " ", els.status),
    els.info, els.error,
    h("div", { class: "row" },
      h("button", { class: "secondary", type: "button", id: "cancel-run", onclick: () => act("cancel") }, "Cancel"),
      h("button", { class: "secondary", type: "button", id: "retry-run", onclick: () => act("retry") }, "Retry"),
      h("span", {}, "Stream: "), els.stream),
    h("section", {}, h("h2", {}, "Approvals"), els.approvals),
    h("section", {}, h("h2", {}, "Waits"), els.waits),
    h("div", { class: "grid2" },
      h("section", {}, h("h2", {}, "Route"), els.route),
      h("section", {}, h("h2", {}, "Usage and cost"), els.usage)),
    h("section", {}, h("h2", {}, "Messages and tool calls"), els.parts),
    h("section", {}, h("h2", {}, "State"), els.state));

  const loadApprovals = async () => {
    try {
      const run = await api("GET", `/runs/${encodeURIComponent(runId)}`);
      view.summary(run);
      drawApprovals(run.approvals || []);
    } catch (error) { fill(els.error, error.message); }
  };

  async function act(verb) {
    try { await api("POST", `/runs/${encodeURIComponent(runId)}/${verb}`); fill(els.error); await loadApprovals(); }
    catch (error) { fill(els.error, error.message); }
  }

  function drawApprovals(list) {
    const keys = list.map((a) => a.id).join(",");
    if (keys === approvalKeys) return;
    approvalKeys = keys;
    if (!list.length) { fill(els.approvals, h("p", { class: "muted" }, "No call waits for approval.")); return; }
    fill(els.approvals, list.map((a) => {
      const reason = h("input", { type: "text", name: "reason", placeholder: "reason (optional)" });
      const note = h("span", { class: "error" });
      const decide = async (approved) => {
        try {
          await api("POST", "/events", {
            name: a.event || APPROVAL_EVENT, run_id: runId,
            data: { approval_id: a.id, approved, ...(reason.value ? { reason: reason.value } : {}) },
          });
          approvalKeys = null; // drawn again, whatever the list is now
          await loadApprovals();
        } catch (error) { fill(note, error.message); }
      };
      return h("div", { class: "card approval", "data-approval": a.id, "data-tool": a.tool },
        h("div", {}, h("strong", {}, a.tool), " ", h("span", { class: "muted" }, a.step || "")),
        h("pre", { class: "args" }, show(a.args)),
        h("div", { class: "row" }, reason,
          h("button", { type: "button", class: "approve", onclick: () => decide(true) }, "Approve"),
          h("button", { type: "button", class: "danger reject", onclick: () => decide(false) }, "Reject"), note));
    }));
  }

  function drawWaits() {
    const keys = [...view.waits.keys()].join(",");
    if (keys === waitKeys) return;
    waitKeys = keys;
    if (!view.waits.size) { fill(els.waits, h("p", { class: "muted" }, "No wait is open.")); return; }
    fill(els.waits, [...view.waits.entries()].map(([step, w]) => {
      const data = {};
      if (w.match && String(w.match).startsWith("data.")) {
        let at = data;
        const path = String(w.match).slice(5).split(".");
        path.slice(0, -1).forEach((k) => { at = at[k] = {}; });
        at[path[path.length - 1]] = w.match_value;
      }
      const name = h("input", { type: "text", name: "event", value: w.event || "", size: 40 });
      const body = h("textarea", { name: "data", value: JSON.stringify(data, null, 2) });
      const note = h("span", { class: "error" });
      const send = async (e) => {
        e.preventDefault();
        let parsed;
        try { parsed = JSON.parse(body.value || "{}"); } catch (error) { fill(note, `the data is not JSON: ${error.message}`); return; }
        try {
          await api("POST", "/events", { name: name.value, data: parsed, run_id: runId });
          fill(note, "");
          view.waits.delete(step);
          waitKeys = null;
          drawWaits();
        } catch (error) { fill(note, error.message); }
      };
      return h("form", { class: "card wait", "data-wait": step, onsubmit: send },
        h("div", {}, h("strong", {}, w.tool || "wait"), " waits for the event ", h("code", {}, w.event || "?"),
          w.match ? h("span", { class: "muted" }, ` where ${w.match} = ${show(w.match_value)}`) : null),
        h("div", { class: "row" }, h("label", {}, "Event ", name)),
        h("label", {}, "Data (JSON)", body),
        h("div", { class: "row" }, h("button", { type: "submit" }, "Send event"), note));
    }));
  }

  function drawPart(key, p) {
    let el = partEls.get(key);
    if (!el) {
      el = {
        root: h("div", { class: `part ${p.kind}`, "data-part": key }),
        who: h("div", { class: "who" }), body: h("pre", { class: "body" }), extra: h("div", {}),
      };
      el.root.append(el.who, el.body, el.extra);
      partEls.set(key, el);
      els.parts.appendChild(el.root);
    }
    if (p.kind === "text") {
      fill(el.who, p.who || "assistant");
      el.body.textContent = p.text;
      el.body.className = "body text";
    } else if (p.kind === "tool") {
      fill(el.who, "tool call ", h("strong", { class: "tool-name" }, p.tool || "?"),
        p.decision ? ` · ${p.decision}` : "", p.note ? ` · ${p.note}` : "");
      el.body.textContent = p.args !== undefined ? show(p.args) : p.argsText;
      fill(el.extra,
        p.result !== undefined ? h("div", {}, h("span", { class: "who" }, "result"), h("pre", { class: "result" }, show(p.result))) : null,
        p.error ? h("pre", { class: "error" }, show(p.error)) : null);
    } else {
      fill(el.who, "tool result", p.tool ? ` · ${p.tool}` : "");
      el.body.textContent = p.result !== undefined ? show(p.result) : p.text;
      fill(el.extra, p.error ? h("pre", { class: "error" }, show(p.error)) : null);
    }
  }

  function render(what) {
    if (what === "status") {
      fill(els.status, status(view.status));
      fill(els.info, `network ${view.network || "?"}`, view.input ? ` · input: ${view.input}` : "");
      fill(els.error, view.error ? show(view.error) : "");
      if (view.ended) { approvalKeys = null; loadApprovals(); }
    } else if (what === "parts") {
      for (const [key, p] of view.parts) drawPart(key, p);
    } else if (what === "route") {
      fill(els.route, (view.route.length ? view.route : view.resultRoute).map((r) => h("li", {}, r.agent === null ? "stop" : r.agent, r.how ? h("span", { class: "muted" }, ` (${r.how})`) : "")));
    } else if (what === "approvals") {
      loadApprovals();
    } else if (what === "waits") {
      drawWaits();
    } else if (what === "usage") {
      const u = view.usage || {};
      fill(els.usage,
        `prompt ${u.prompt ?? 0} · completion ${u.completion ?? 0} · total ${u.total ?? 0} tokens`,
        u.cost !== undefined ? ` · cost $${Number(u.cost).toFixed(6)}` : "",
        u.seconds !== undefined ? ` · ${Number(u.seconds).toFixed(2)} s` : "");
    } else if (what === "state") {
      els.state.textContent = view.state ? show(view.state) : "(not known yet)";
    }
  }

  ["status", "route", "usage", "state"].forEach(schedule);
  drawWaits();
  loadApprovals();
  const stream = follow(`/runs/${encodeURIComponent(runId)}/events`, "run", runId,
    (name, data) => view.apply(name, data), (text) => { els.stream.textContent = text; });
  return () => stream.close();
}
