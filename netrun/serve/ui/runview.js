// What a run page shows, kept up to date from the run's stream: AgentKit's chunks ({event,
// data, timestamp, sequenceNumber, id}: part.created, text.delta, hitl.requested, ...), with
// netrun's extra detail in data.metadata (the routing decision of an agent's run.started)
// or "netrun.*" events (netrun.routed for a stop, netrun.waiting, netrun.run.waiting); the
// mapping is netrun/runtime/agentkit_stream.py. The page's views read this model.

import { show } from "./dom.js";

const FINAL = new Set(["completed", "failed", "cancelled", "interrupted"]);

/** The step a tool part is named after ("<run>:<step>:call|output"), or null. */
export function stepOf(partId) {
  const found = /^[^:]*:(.+):(call|output)$/.exec(String(partId || ""));
  return found ? found[1] : null;
}

/** Usage in one shape, from netrun's (prompt_tokens, cost, ...) or AgentKit's (promptTokens, ...). */
export function usage(u) {
  if (!u) return {};
  const out = {};
  const prompt = u.prompt_tokens ?? u.promptTokens, completion = u.completion_tokens ?? u.completionTokens;
  if (prompt !== undefined) out.prompt = prompt;
  if (completion !== undefined) out.completion = completion;
  const total = u.tokens ?? u.totalTokens ?? (prompt !== undefined && completion !== undefined ? prompt + completion : undefined);
  if (total !== undefined) out.total = total;
  if (u.cost !== undefined) out.cost = u.cost;
  if (u.seconds !== undefined) out.seconds = u.seconds;
  return out;
}

export class RunView {
  constructor(runId, onChange) {
    this.runId = runId;
    this.onChange = onChange; // (what) => void; what: "status" | "parts" | "route" | "approvals" | "waits" | "usage" | "state"
    this.status = null;
    this.network = null;
    this.input = null;
    this.error = null;
    this.route = [];
    this.resultRoute = [];
    this.parts = new Map(); // key -> {kind: "text"|"tool"|"output", who, text, tool, args, argsText, result, note, decision, error}
    this.waits = new Map(); // step -> {event, match, match_value, tool}
    this.requests = new Map(); // approval (hitl request) id -> step
    this.usage = null;
    this.state = null;
    this.iteration = 0;
    this.agent = null;
    this.ended = false;
  }

  changed(...what) { for (const w of what) this.onChange(w); }

  setStatus(status) {
    if (!status || status === this.status) return;
    this.status = status;
    if (FINAL.has(status)) this.ended = true;
    this.changed("status");
  }

  part(key, init) {
    let p = this.parts.get(key);
    if (!p) { p = { text: "", argsText: "", ...init }; this.parts.set(key, p); }
    return p;
  }

  /** The run as GET /runs/{id} answers it (the authority on status, approvals and result). */
  summary(run) {
    this.network = run.network;
    this.input = run.input;
    if (run.error) this.error = run.error;
    const r = run.result;
    if (r) {
      if (r.state) this.state = r.state;
      if (r.usage) this.usage = { ...(this.usage || {}), ...usage(r.usage) };
      // The agents the router took, shown until the stream's routing decisions (with their rules) arrive.
      if (Array.isArray(r.route)) this.resultRoute = r.route.map((agent) => ({ agent, how: "" }));
      this.changed("state", "usage", "route");
    }
    this.setStatus(run.status);
  }

  /** One chunk of the stream (the SSE data: the whole chunk); true when the stream is over. */
  apply(name, chunk) {
    if (!chunk || typeof chunk !== "object" || typeof chunk.data !== "object") return false; // not a chunk: ignored
    return this.chunk(chunk.event || name, chunk.data || {});
  }

  // -- AgentKit's chunks --------------------------------------------------------------------
  // Part ids are netrun's: "<run>:turn.N:text", "<run>:<step>:call", "<run>:<step>:output";
  // a call and its output show as one tool call (keyed by the step).
  chunk(event, d) {
    const meta = d.metadata || {};
    switch (event) {
      case "run.started":
        if (d.scope === "agent") {
          this.agent = d.name;
          this.setStatus("running"); // a turn begins: the run goes on (after a wait, too)
          if (meta.routing) this.routed(meta.routing);
        } else {
          this.network = d.name || this.network;
          if (meta.input !== undefined) this.input = meta.input;
          this.setStatus("running");
        }
        break;
      case "part.created": {
        const step = stepOf(d.partId);
        if (d.type === "text") this.part(d.partId, { kind: "text", who: meta.agentName || this.agent });
        else if (step) this.part(step, { kind: "tool", tool: meta.toolName });
        else this.part(d.partId, { kind: "output", tool: meta.toolName });
        this.changed("parts");
        break;
      }
      case "text.delta": case "reasoning.delta":
        this.part(d.partId, { kind: "text", who: this.agent }).text += d.delta || "";
        this.setStatus("running");
        this.changed("parts");
        break;
      case "tool_call.arguments.delta": {
        const p = this.part(stepOf(d.partId) || d.partId, { kind: "tool", tool: d.toolName });
        p.argsText += d.delta || "";
        if (d.toolName) p.tool = d.toolName;
        this.changed("parts");
        break;
      }
      case "tool_call.output.delta": break; // part.completed carries the whole output
      case "part.completed": {
        const step = stepOf(d.partId);
        if (d.type === "text") {
          this.part(d.partId, { kind: "text", who: meta.agentName || this.agent }).text = typeof d.finalContent === "string" ? d.finalContent : show(d.finalContent);
        } else if (step && d.type === "tool-call") {
          const p = this.part(step, { kind: "tool", tool: meta.toolName });
          p.args = d.finalContent;
          if (!p.note) p.note = "called";
        } else if (step) {
          const p = this.part(step, { kind: "tool", tool: meta.toolName });
          const out = d.finalContent || {};
          if (out.error !== undefined && out.error !== null) { p.error = out.error; p.note = "failed"; } else { p.result = "data" in out ? out.data : out; p.note = "done"; }
          if (this.waits.delete(step)) this.changed("waits");
        } else {
          this.part(d.partId, { kind: "output" }).result = d.finalContent;
        }
        this.changed("parts");
        break;
      }
      case "part.failed":
        this.part(stepOf(d.partId) || d.partId, { kind: "tool" }).error = d.error;
        this.changed("parts");
        break;
      case "hitl.requested":
        for (const call of d.toolCalls || []) {
          const step = stepOf(call.partId) || call.partId;
          const p = this.part(step, { kind: "tool", tool: call.toolName });
          if (p.args === undefined) p.args = call.toolInput;
          p.note = "waits for approval";
          this.requests.set(d.requestId, step);
        }
        this.setStatus("waiting");
        this.changed("parts", "approvals");
        break;
      case "hitl.resolved": {
        const step = this.requests.get(d.requestId);
        if (step) this.part(step, { kind: "tool" }).decision = (d.resolution || "") + (d.reason ? `: ${d.reason}` : "");
        this.changed("parts", "approvals");
        break;
      }
      case "usage.updated":
        this.usage = { ...(this.usage || {}), ...usage(d.usage) };
        this.changed("usage");
        break;
      case "netrun.routed": this.routed(d); break;
      case "netrun.waiting": this.waiting(d); break;
      case "netrun.run.waiting": this.setStatus("waiting"); break;
      case "run.completed":
        if (d.scope === "agent") break;
        if (d.result && typeof d.result === "object") {
          if (d.result.state) { this.state = d.result.state; this.changed("state"); }
          if (d.result.usage) this.usage = { ...(this.usage || {}), ...usage(d.result.usage) };
        }
        if (d.usage) this.usage = { ...(this.usage || {}), ...usage(d.usage) };
        this.changed("usage");
        this.setStatus("completed");
        break;
      case "run.failed":
        if (d.scope === "agent") break;
        this.error = d.error;
        this.setStatus("failed");
        break;
      case "run.interrupted":
        this.error = meta.error || d.reason;
        this.setStatus(d.reason === "user_cancellation" ? "cancelled" : "interrupted");
        break;
      case "stream.ended":
        if (d.scope !== "agent") { this.ended = true; return true; }
        break;
      default:
        if (meta.state) { this.state = meta.state; this.changed("state"); }
        break;
    }
    return false;
  }

  routed(d) {
    if (Array.isArray(d)) return;
    this.route.push({ agent: d.agent ?? null, how: d.how || d.reason || "" });
    this.changed("route");
  }

  waiting(d) {
    this.waits.set(d.step || d.step_id || d.event, d);
    this.setStatus("waiting");
    this.changed("waits");
  }
}
