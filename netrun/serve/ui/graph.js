// A network's topology (GET /networks/{name}/graph) drawn as SVG, with no library: rows by
// role (start; router; agents and stop; tools, waits, networks, MCP servers), edges as curves
// labelled with the rule that takes them. Labels are text nodes (names come from YAML files).

import { h } from "./dom.js";

const ROW = { start: 0, router: 1, agent: 2, stop: 2, tool: 3, wait: 3, network: 3, server: 3 };
const W = 176, H = 34, GAP_X = 24, GAP_Y = 70, PAD = 16;

function short(text, n = 24) { return text.length > n ? `${text.slice(0, n - 1)}…` : text; }

export function drawGraph(graph) {
  const rows = [[], [], [], []];
  for (const node of graph.nodes) rows[ROW[node.shape] ?? 3].push(node);
  const widest = Math.max(...rows.map((r) => r.length), 1);
  const width = PAD * 2 + widest * W + (widest - 1) * GAP_X;
  const used = rows.filter((r) => r.length).length;
  const height = PAD * 2 + used * H + (used - 1) * GAP_Y;
  const at = {};
  let y = PAD;
  for (const row of rows) {
    if (!row.length) continue;
    const span = row.length * W + (row.length - 1) * GAP_X;
    row.forEach((node, i) => { at[node.id] = { x: (width - span) / 2 + i * (W + GAP_X), y }; });
    y += H + GAP_Y;
  }
  const svg = h("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `graph of ${graph.name}` },
    h("defs", {}, h("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      h("path", { d: "M0,0 L10,5 L0,10 z", fill: "#889" }))));
  const seen = {};
  for (const edge of graph.edges) {
    const a = at[edge.source], b = at[edge.target];
    if (!a || !b) continue;
    const pair = `${edge.source}>${edge.target}`;
    const nth = (seen[pair] = (seen[pair] || 0) + 1) - 1;
    const down = b.y > a.y;
    const x1 = a.x + W / 2 + (down ? 0 : -20), y1 = down ? a.y + H : a.y;
    const x2 = b.x + W / 2 + (down ? 0 : 20), y2 = down ? b.y : b.y + H;
    const bend = (down ? 1 : -1) * GAP_Y * 0.5 + nth * 12;
    const d = `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`;
    svg.appendChild(h("path", { class: `edge${edge.dashed ? " dashed" : ""}`, d, "marker-end": "url(#arrow)" }, h("title", {}, edge.label || "")));
    if (edge.label && down) {
      svg.appendChild(h("text", { class: "elabel", x: (x1 + x2) / 2 + 4, y: (y1 + y2) / 2 + nth * 11, "text-anchor": "middle" }, short(edge.label, 30)));
    }
  }
  for (const node of graph.nodes) {
    const p = at[node.id];
    svg.appendChild(h("g", { class: `node ${node.shape}`, "data-node": node.label },
      h("rect", { x: p.x, y: p.y, width: W, height: H, rx: node.shape === "agent" ? 4 : 14 }),
      h("text", { x: p.x + W / 2, y: p.y + H / 2 + 4, "text-anchor": "middle" }, short(node.label, 28)),
      h("title", {}, `${node.shape}: ${node.label}`)));
  }
  return svg;
}
