// AgentKit's React hook, useAgents of @inngest/use-agent 0.4.0, against a real `netrun serve`
// (run by tests/test_use_agent.py): rendered with react-test-renderer (no DOM), inside
// AgentProvider, configured only with the transport's URLs and INNGEST_BASE_URL (where
// @inngest/realtime opens its WebSocket: netrun's /v1/realtime/connect). Sends a message and
// sees the reply stream into `messages`, lists threads, approves a gated tool call from
// the part the hook shows and sees its output. Prints one JSON line of what it saw.
//
//   INNGEST_BASE_URL=http://127.0.0.1:PORT NETRUN_URL=... NETRUN_API_TOKEN=... NETWORK=ops \
//     node --experimental-websocket use_agent_hook.mjs

import React from "react";
import TestRenderer from "react-test-renderer";
import { AgentProvider, useAgents } from "@inngest/use-agent";

const url = process.env.NETRUN_URL;
const network = process.env.NETWORK;
const user = "hook-user";
const BOUND_MS = 20000;

const transport = {
  baseURL: `${url}/agentkit/${network}`,
  api: {
    sendMessage: "/chat",
    getRealtimeToken: "/realtime/token",
    fetchThreads: "/threads",
    fetchHistory: "/threads/{threadId}",
    createThread: "/threads",
    deleteThread: "/threads/{threadId}",
    approveToolCall: "/approve-tool",
    cancelMessage: "/chat/cancel",
  },
  headers: { Authorization: `Bearer ${process.env.NETRUN_API_TOKEN}`, "Content-Type": "application/json" },
};

let latest = null;
let renders = 0;
function Probe() {
  latest = useAgents({ userId: user, debug: false });
  renders += 1;
  return null;
}

// The hook logs through console.log when debug is on and React warns about the deprecated
// renderer: keep stdout for the result line.
const log = console.log;
console.log = (...a) => console.error(...a);

const root = TestRenderer.create(
  React.createElement(AgentProvider, { userId: user, debug: false, transport }, React.createElement(Probe)),
);

async function until(what, check, ms = BOUND_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = latest && check(latest);
    if (found) return found;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify({ status: latest?.status, connected: latest?.isConnected, current: latest?.currentThreadId, threads: latest?.threads, threadsError: latest?.threadsError, messages: latest?.messages })}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50)); // the bound's granularity: React renders on its own schedule
  }
}

const texts = (m) => m.parts.filter((p) => p.type === "text").map((p) => p.content).join("");
const out = {};

await until("the realtime subscription", (s) => s.isConnected || s.status === "idle");
await latest.sendMessage("What can you do?");
const reply = await until("the streamed reply", (s) =>
  s.messages.find((m) => m.role === "assistant" && texts(m) === "I can clean up logs."),
);
out.reply = texts(reply);
out.roles = latest.messages.map((m) => m.role);
out.currentThreadId = latest.currentThreadId; // null: the hook sends on its fallback thread until one is chosen
await latest.refreshThreads();
const listed = await until("the thread in the list", (s) => s.threads.length === 1 && s.threads[0]);
out.listed = { title: listed.title, messageCount: listed.messageCount };

await latest.sendMessage("Clean up the logs");
const tool = await until("the gated tool call", (s) => {
  for (const m of s.messages) for (const p of m.parts) if (p.type === "tool-call" && p.toolName === "cleanup") return p;
  return null;
});
out.toolCallId = tool.toolCallId;
out.toolInput = tool.input;
await latest.approveToolCall(tool.toolCallId, "fine");
const done = await until("the tool's output", (s) => {
  for (const m of s.messages) for (const p of m.parts) if (p.type === "tool-call" && p.toolCallId === tool.toolCallId && p.state === "output-available") return p;
  return null;
});
out.toolOutput = done.output;
out.status = latest.status;

// A socket opened late, after the run it should show has ended, still gets all of it: the
// key pins the stream's position at the moment the token was given.
{
  const post = (path, body) =>
    fetch(`${transport.baseURL}${path}`, { method: "POST", headers: transport.headers, body: JSON.stringify(body) }).then((r) => r.json());
  const token = await post("/realtime/token", { userId: "late-user" });
  const started = await post("/chat", { userMessage: { content: "Hello?" }, userId: "late-user" });
  const ended = async () => (await (await fetch(`${url}/runs/${started.runId}`, { headers: transport.headers })).json()).status === "completed";
  for (const deadline = Date.now() + BOUND_MS; !(await ended()); ) {
    if (Date.now() > deadline) throw new Error("the late run did not complete");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  out.late = await new Promise((resolve) => {
    const got = [];
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/v1/realtime/connect?token=${encodeURIComponent(token.key)}`);
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      got.push(m);
      if (m.data.event === "stream.ended") {
        ws.close();
        resolve({ kinds: [...new Set(got.map((g) => g.kind))], topics: [...new Set(got.map((g) => g.topic))], first: got[0].data.event, last: m.data.event, runs: [...new Set(got.map((g) => g.run_id).filter(Boolean))] });
      }
    };
    setTimeout(() => resolve({ timeout: true, got: got.length }), BOUND_MS);
  });
  out.lateRun = started.runId;
}

// A socket with a token that is not this server's is closed before anything is sent.
out.refused = await new Promise((resolve) => {
  const got = [];
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/v1/realtime/connect?token=not-a-token`);
  ws.onmessage = (e) => got.push(e.data);
  ws.onclose = (e) => resolve({ opened: ws.readyState, messages: got.length, code: e.code });
  setTimeout(() => resolve({ timeout: true }), BOUND_MS);
});
out.renders = renders;
root.unmount();
log(JSON.stringify(out));
process.exit(0); // react-query and the realtime socket keep timers alive
