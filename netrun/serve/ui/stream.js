// Following a stream of `netrun serve` (a run's, a thread's): Server-Sent Events read by an
// EventSource.
//
// Behind NETRUN_API_TOKEN an EventSource cannot send the bearer header, and the API token
// must not sit in a URL (logs, history). So the page asks POST /streams/token for a
// short-lived token that opens this one stream, and passes it as ?token=. The browser
// reconnects by itself (with Last-Event-ID); once the server refuses (the token expired) the
// stream is opened again with a new token, after the last event seen (last_event_id).

import { BASE, api, token } from "./api.js";

/** Event names an EventSource must listen for by name: AgentKit's chunks, netrun's own. */
export const NAMES = [
  "run.started", "run.completed", "run.failed", "run.interrupted",
  "part.created", "part.completed", "part.failed", "text.delta", "reasoning.delta", "data.delta",
  "tool_call.arguments.delta", "tool_call.output.delta", "hitl.requested", "hitl.resolved",
  "usage.updated", "metadata.updated", "step.started", "step.completed", "step.failed", "stream.ended", "error",
  "netrun.routed", "netrun.waiting", "netrun.run.waiting", "netrun.state",
];

/** A token for this one stream (none needed when the server has no API token). */
async function streamToken(scope, key) {
  if (!token.get()) return null;
  return (await api("POST", "/streams/token", { scope, key })).token;
}

/**
 * Follow `path` (e.g. `/runs/ID/events`), a stream of `scope` `key`, with query `params`.
 * `onEvent(name, data, id)` gets each event's name and parsed data; when it returns true the
 * stream is closed. `onState(text)` hears "open", "reconnecting (why)" or "closed". Returns {close()}.
 */
export function follow(path, scope, key, onEvent, onState = () => {}, params = {}) {
  let last = null;
  let closed = false;
  let source = null;
  let delay = 500;
  const fixed = params;

  const deliver = (name, text, id) => {
    if (closed) return;
    if (id) last = id;
    let data;
    try { data = JSON.parse(text); } catch { data = { text }; }
    if (onEvent(name || "message", data, id)) close();
  };

  const url = (extra) => {
    const params = new URLSearchParams({ ...fixed, ...extra });
    if (last) params.set("last_event_id", last);
    const q = params.toString();
    return BASE + path + (q ? `?${q}` : "");
  };

  const retry = (why) => {
    if (closed) return;
    onState(`reconnecting (${why})`);
    setTimeout(open, delay);
    delay = Math.min(delay * 2, 10000);
  };

  async function open() {
    if (closed) return;
    let signed;
    try { signed = await streamToken(scope, key); } catch (error) { return retry(error.message); }
    source = new EventSource(url(signed ? { token: signed } : {}));
    const handler = (e) => { delay = 500; deliver(e.type, e.data, e.lastEventId); };
    for (const name of NAMES) source.addEventListener(name, handler);
    source.onmessage = handler;
    source.onopen = () => onState("open");
    source.onerror = () => {
      // Closed: the server refused (an expired token) or ended; else the browser retries itself.
      if (source && source.readyState === EventSource.CLOSED) { source = null; retry("the stream closed"); }
    };
  }

  function close() {
    closed = true;
    if (source) source.close();
    onState("closed");
  }

  open();
  return { close };
}
