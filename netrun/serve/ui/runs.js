// The run list (GET /runs, with filters and cursor pagination), refreshed while it is open.

import { api, query, ApiError } from "./api.js";
import { h, fill, status, when } from "./dom.js";

const FILTERS = ["network", "status", "thread_id", "user"];

export function runsPage(main, params) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  const inputs = Object.fromEntries(FILTERS.map((k) => [k, h("input", { type: "text", name: k, placeholder: k.replace("_id", ""), value: filters[k], size: 14 })]));
  const body = h("tbody", {});
  const note = h("p", { class: "muted", id: "runs-note" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "More");
  let cursor = null;
  const apply = (e) => {
    e.preventDefault();
    const q = query(Object.fromEntries(FILTERS.map((k) => [k, inputs[k].value.trim()])));
    location.hash = `#/runs${q}`;
  };
  fill(main, h("h1", {}, "Runs"),
    h("form", { class: "row", onsubmit: apply }, Object.values(inputs), h("button", { type: "submit" }, "Filter")),
    h("table", { id: "runs" }, h("thead", {}, h("tr", {}, ["Run", "Network", "Status", "Started", "Input"].map((t) => h("th", {}, t)))), body),
    more, note);

  const row = (r) => h("tr", { "data-run": r.run_id },
    h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}`, class: "mono" }, r.run_id)),
    h("td", {}, r.network || ""), h("td", {}, status(r.status)), h("td", {}, when(r.created ?? r.started_at ?? r.created_at)),
    h("td", {}, String(r.input ?? "").slice(0, 80)));

  async function load(append) {
    try {
      const page = await api("GET", `/runs${query({ ...filters, limit: 50, ...(append && cursor ? { cursor } : {}) })}`);
      const runs = page.runs || [];
      if (!append) body.replaceChildren();
      runs.forEach((r) => body.appendChild(row(r)));
      cursor = typeof page.next === "string" ? page.next : page.next_cursor || (page.next && page.next.cursor) || null;
      more.hidden = !cursor;
      fill(note, runs.length || append ? "" : "No run matches.");
    } catch (error) {
      fill(note, error instanceof ApiError && error.status === 405 ? "This server does not list runs." : error.message);
    }
  }
  more.addEventListener("click", () => load(true));
  load(false);
  const timer = setInterval(() => { if (!cursor) load(false); }, 3000);
  return () => clearInterval(timer);
}
