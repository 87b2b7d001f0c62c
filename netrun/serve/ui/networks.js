// The networks page: each served network, its graph, and a form that starts a run.

import { api } from "./api.js";
import { h, fill } from "./dom.js";
import { drawGraph } from "./graph.js";

export async function networksPage(main) {
  fill(main, h("h1", {}, "Networks"), h("p", { class: "muted" }, "Loading…"));
  const { networks } = await api("GET", "/networks");
  const list = h("div", { id: "networks" });
  fill(main, h("h1", {}, "Networks"), list);
  for (const n of networks) {
    const graph = h("div", { class: "graph-box" }, h("p", { class: "muted" }, "Loading the graph…"));
    const input = h("input", { type: "text", name: "input", placeholder: "input", size: 50 });
    const note = h("span", { class: "error" });
    const start = async (e) => {
      e.preventDefault();
      try {
        const run = await api("POST", `/networks/${encodeURIComponent(n.name)}/runs`, input.value ? { input: input.value } : {});
        location.hash = `#/runs/${encodeURIComponent(run.run_id)}`;
      } catch (error) { fill(note, error.message); }
    };
    list.appendChild(h("section", { class: "network", "data-network": n.name },
      h("h2", {}, n.name), n.description ? h("p", {}, n.description) : null,
      h("p", { class: "muted mono" }, `${n.file} · ${String(n.definition_hash || "").slice(0, 12)}`,
        (n.triggers || []).map((t) => ` · ${t.event ? `on ${t.event}` : `cron ${t.cron}`}`)),
      graph,
      h("form", { class: "row start-run", onsubmit: start }, input, h("button", { type: "submit" }, "Start run"),
        h("a", { href: `#/threads/new/${encodeURIComponent(n.name)}` }, "Chat"), note)));
    api("GET", `/networks/${encodeURIComponent(n.name)}/graph`)
      .then((g) => fill(graph, drawGraph(g)))
      .catch((error) => fill(graph, h("p", { class: "error" }, `no graph: ${error.message}`)));
  }
  if (!networks.length) list.appendChild(h("p", { class: "muted" }, "No network is served."));
}
