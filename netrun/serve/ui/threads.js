// Threads: the conversations the server keeps (GET /threads), and a chat with a network: a
// message starts a run on the thread (POST /networks/{name}/runs with thread_id); the
// thread's stream brings the reply in as it is written; the thread's messages are read back
// when the run ends.

import { api, query } from "./api.js";
import { h, fill, show, when } from "./dom.js";
import { RunView } from "./runview.js";
import { follow } from "./stream.js";

const NETWORK_OF = "netrun.threadNetwork."; // sessionStorage: which network a thread was chatting with

export async function threadsPage(main) {
  const [{ threads }, { networks }] = await Promise.all([api("GET", "/threads"), api("GET", "/networks")]);
  const pick = h("select", { name: "network" }, networks.map((n) => h("option", { value: n.name }, n.name)));
  fill(main, h("h1", {}, "Threads"),
    h("form", { class: "row", id: "new-thread", onsubmit: (e) => { e.preventDefault(); location.hash = `#/threads/new/${encodeURIComponent(pick.value)}`; } },
      h("span", {}, "New chat with"), pick, h("button", { type: "submit" }, "Start")),
    h("table", { id: "threads" },
      h("thead", {}, h("tr", {}, ["Thread", "User", "Messages", "Updated"].map((t) => h("th", {}, t)))),
      h("tbody", {}, threads.map((t) => h("tr", { "data-thread": t.thread_id },
        h("td", {}, h("a", { class: "mono", href: `#/threads/${encodeURIComponent(t.thread_id)}` }, t.thread_id)),
        h("td", {}, t.user || ""), h("td", {}, String(t.messages ?? "")), h("td", {}, when(t.updated)))))),
    threads.length ? null : h("p", { class: "muted" }, "No thread yet."));
}

function message(m) {
  const role = m.role || "?";
  const calls = (m.tool_calls || []).map((c) => `→ ${c.function ? c.function.name : c.name}(${c.function ? c.function.arguments : show(c.arguments)})`);
  return h("div", { class: `msg ${role}`, "data-role": role },
    h("div", { class: "who" }, role), show(m.content ?? ""), calls.length ? h("div", { class: "mono" }, calls.join("\n")) : null);
}

/**
 * The chat page of thread `threadId` (null: a new one) with network `network`. The page
 * follows the thread's stream (GET /threads/{id}/events, live) before it sends anything, so
 * a reply streams in as the model writes it; a new thread gets its id here, before its
 * first run, for the same reason.
 */
export function chatPage(main, threadId, network) {
  const fresh = !threadId;
  threadId = threadId || `thread-${crypto.randomUUID()}`;
  network = network || sessionStorage.getItem(NETWORK_OF + threadId) || "";
  const log = h("div", { id: "messages" });
  const live = h("div", { id: "live" });
  const input = h("textarea", { name: "message", placeholder: "Write a message…" });
  const note = h("span", { class: "error", id: "chat-note" });
  const send = h("button", { type: "submit", disabled: true }, "Send");
  const streamState = h("span", { class: "muted", id: "stream-state" });
  let started = !fresh;
  let view = null;
  let reply = null;

  async function load() {
    if (!started) { fill(log, h("p", { class: "muted" }, "A new conversation.")); return; }
    try {
      const { messages } = await api("GET", `/threads/${encodeURIComponent(threadId)}`);
      fill(log, messages.map(message));
    } catch (error) { fill(log, h("p", { class: "error" }, error.message)); }
  }

  function onChunk(name, data) {
    const d = (data && data.data) || {};
    if (data.event === "run.started" && d.scope !== "agent") { // a run of this thread begins
      view = new RunView(d.runId, () => {
        const texts = [...view.parts.values()].filter((p) => p.kind === "text").map((p) => p.text);
        reply.textContent = texts.join("\n");
      });
      reply = h("span", { class: "reply" });
      fill(live, h("div", { class: "msg assistant streaming" }, h("div", { class: "who" }, "assistant"), reply),
        h("a", { href: `#/runs/${encodeURIComponent(view.runId)}`, class: "muted" }, `run ${view.runId}`));
    }
    if (!view) return false;
    view.apply(name, data);
    if (view.ended || view.status === "failed" || view.status === "cancelled") {
      const failed = view.error;
      view = null;
      send.disabled = false;
      fill(live, failed ? h("p", { class: "error" }, show(failed)) : null);
      load();
    }
    return false; // a thread's stream stays open for its next run
  }

  async function submit(e) {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || !network) { fill(note, network ? "" : "choose a network first"); return; }
    send.disabled = true;
    fill(note, "");
    try {
      await api("POST", `/networks/${encodeURIComponent(network)}/runs`, { input: text, thread_id: threadId });
      if (!started) {
        started = true;
        sessionStorage.setItem(NETWORK_OF + threadId, network);
        history.replaceState(null, "", `#/threads/${encodeURIComponent(threadId)}${query({ network })}`);
        fill(log);
      }
      input.value = "";
      log.appendChild(message({ role: "user", content: text }));
    } catch (error) { fill(note, error.message); send.disabled = false; }
  }

  fill(main, h("h1", {}, "Thread ", h("span", { class: "mono", id: "thread-id" }, threadId)),
    h("p", { class: "muted" }, `with network ${network || "(none chosen)"} · stream: `, streamState), log, live,
    h("form", { id: "chat", onsubmit: submit }, input, h("div", { class: "row" }, send, note)));
  load();
  const stream = follow(`/threads/${encodeURIComponent(threadId)}/events`, "thread", threadId, onChunk, (state) => {
    streamState.textContent = state;
    if (state === "open" && !view) send.disabled = false;
  }, { live: "true" });
  return () => stream.close();
}
