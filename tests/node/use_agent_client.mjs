// AgentKit's React client package against a real `netrun serve` (run by tests/test_use_agent.py).
//
// The real DefaultHttpTransport of @inngest/use-agent 0.4.0, configured only with URLs (and
// the API token header), and netrun's connection module, imported from the server itself
// (GET /agentkit/connection.js). Scenario: subscribe to the user's channel, create a thread,
// send a message and receive its run's chunks, list and load threads, approve a gated tool
// call and see it run, cancel a run waiting on another, refuse a wrong approval with the
// server's reason, resume a stream after a cursor, delete the thread. Prints one JSON line
// of what it saw; the Python test asserts on it.
//
//   NETRUN_URL=http://127.0.0.1:PORT NETRUN_API_TOKEN=... NETWORK=ops node use_agent_client.mjs

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { createDefaultHttpTransport } from "@inngest/use-agent";

const url = process.env.NETRUN_URL;
const network = process.env.NETWORK;
const apiToken = process.env.NETRUN_API_TOKEN;
const user = "user-42";
const BOUND_MS = 20000;

// The module as a browser would load it: fetched from the server (Node cannot import http: URLs).
const source = await (await fetch(`${url}/agentkit/connection.js`)).text();
const dir = await mkdtemp(join(tmpdir(), "netrun-connection-"));
await writeFile(join(dir, "connection.mjs"), source);
const { createNetrunConnection } = await import(pathToFileURL(join(dir, "connection.mjs")).href);
await rm(dir, { recursive: true });

// An app written for AgentKit changes only this: where its endpoints are.
const transport = createDefaultHttpTransport({
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
  headers: { Authorization: `Bearer ${apiToken}` }, // no Content-Type: netrun reads JSON anyway
});

// What use-agent's hook requires of a chunk before it uses it (mapToNetworkEvent in its
// dist/index.js): a string event, numeric timestamp and sequenceNumber; it routes the chunk
// to a thread by data.threadId.
const usable = (c) =>
  c && typeof c.event === "string" && typeof c.timestamp === "number" && typeof c.sequenceNumber === "number" && c.data;

const chunks = [];
const states = [];
let wake = () => {};
const arrivals = [];
const onMessage = (chunk) => {
  chunks.push(chunk);
  arrivals.push(performance.now());
  wake();
};

async function until(what, check, ms = BOUND_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = check();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; chunks: ${chunks.map((c) => c.event).join(" ")}`);
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, 200); // the bound's granularity; a chunk wakes the wait at once
    });
  }
}

const runEnded = (runId) => chunks.find((c) => c.event === "stream.ended" && c.data.messageId === runId);
const ofRun = (runId) => chunks.filter((c) => c.data && (c.data.runId === runId || c.data.messageId === runId || c.data.parentRunId === runId || String(c.data.partId || "").startsWith(`${runId}:`)));

const out = {};
const connection = createNetrunConnection({ baseURL: url, transport });
const sub = await connection.subscribe({ channel: user, onMessage, onStateChange: (s) => states.push(s.status) });

// A second subscriber whose streams break: its first token is refused (it must ask again),
// and each stream it opens is cut after a few events (it must resume with Last-Event-ID).
// The drops are made on the client side, in front of the real fetch; the server is real.
const flaky = { chunks: [], tokens: 0, opened: [] };
const CUT_AFTER = 3;
const cutting = async (target, init) => {
  flaky.opened.push({ lastEventId: init.headers["Last-Event-ID"] || null });
  const response = await fetch(target, init);
  if (!response.ok || flaky.opened.length > 6) return response;
  const reader = response.body.getReader();
  let events = 0;
  const body = new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      // Cut at an event boundary after CUT_AFTER events, as a dropped connection would.
      const text = new TextDecoder().decode(value);
      events += (text.match(/\r?\n\r?\n/g) || []).length;
      controller.enqueue(value);
      if (events >= CUT_AFTER) {
        reader.cancel();
        controller.error(new Error("connection dropped"));
      }
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
};
const flakyConnection = createNetrunConnection({
  baseURL: url,
  fetch: cutting,
  getToken: async ({ channel }) => {
    flaky.tokens += 1;
    const real = await transport.getRealtimeToken({ userId: channel, channelKey: channel });
    return flaky.tokens === 1 ? { ...real, token: real.token.slice(0, -4) + "AAAA" } : real;
  },
});
const flakySub = await flakyConnection.subscribe({ channel: user, onMessage: (c) => { flaky.chunks.push(c); wake(); } });

// A thread, a message, the run's chunks.
const created = await transport.createThread({ userId: user, title: "ops chat" });
out.created = created;
const threadId = created.threadId;
const t0 = performance.now();
const sent = await transport.sendMessage({
  userMessage: { id: "m1", content: "What can you do?", role: "user" },
  threadId,
  history: [],
  userId: user,
});
const tSent = performance.now();
out.sent = sent;
await until("the first run's stream.ended", () => chunks.find((c) => c.event === "stream.ended" && c.data.messageId === sent.runId));
const firstCount = chunks.length;
{
  const at = (pred) => Math.round(arrivals[chunks.findIndex(pred)] - t0);
  out.ms = {
    sendMessageAnswered: Math.round(tSent - t0),
    firstChunk: at((c) => c.event === "run.started" && c.data.runId === sent.runId),
    streamEnded: at((c) => c.event === "stream.ended" && c.data.messageId === sent.runId),
  };
}
const cursorAfterFirst = sub.lastEventId;
out.first = ofRun(sent.runId).map((c) => c.event);
out.firstText = ofRun(sent.runId).filter((c) => c.event === "text.delta").map((c) => c.data.delta).join("");
out.allUsable = chunks.every(usable);
out.threadIds = [...new Set(chunks.map((c) => c.data.threadId))];

// Threads and history.
const page = await transport.fetchThreads({ userId: user, limit: 10 });
out.threads = page;
out.history = await transport.fetchHistory({ threadId });

// A gated tool call: approve it by the partId the stream showed, and see it run.
const second = await transport.sendMessage({
  userMessage: { id: "m2", content: "Clean up the logs", role: "user" }, threadId, history: [], userId: user,
});
const hitl = await until("the approval request", () => chunks.find((c) => c.event === "hitl.requested" && c.data.runId === second.runId));
out.hitl = hitl.data;
const toolCallId = hitl.data.toolCalls[0].partId;
try {
  await transport.approveToolCall({ toolCallId: "no-such-call", threadId, action: "approve" });
  out.wrongApproval = "accepted";
} catch (err) {
  out.wrongApproval = err.message;
}
await transport.approveToolCall({ toolCallId, threadId, action: "approve", reason: "looks fine" });
await until("the second run to end", () => runEnded(second.runId));
out.second = ofRun(second.runId).map((c) => c.event);
out.secondOutputs = ofRun(second.runId).filter((c) => c.event === "part.completed" && c.data.type === "tool-output").map((c) => c.data.finalContent);
out.resolved = chunks.find((c) => c.event === "hitl.resolved" && c.data.runId === second.runId)?.data;

// Another gated call, cancelled instead of answered.
const third = await transport.sendMessage({
  userMessage: { id: "m3", content: "Clean up again", role: "user" }, threadId, history: [], userId: user,
});
await until("the third approval request", () => chunks.find((c) => c.event === "hitl.requested" && c.data.runId === third.runId));
await transport.cancelMessage({ threadId });
await until("the third run to end", () => runEnded(third.runId));
out.third = ofRun(third.runId).map((c) => c.event);
try {
  await transport.cancelMessage({ threadId });
  out.secondCancel = "accepted";
} catch (err) {
  out.secondCancel = err.message;
}
sub.unsubscribe();
await until("the broken subscriber to catch up", () => flaky.chunks.length >= chunks.length);
flakySub.unsubscribe();
out.flakySame = JSON.stringify(flaky.chunks) === JSON.stringify(chunks);
out.flakyTokens = flaky.tokens;
out.flakyOpened = flaky.opened.length;
out.flakyResumedWithCursor = flaky.opened.slice(2).every((o) => o.lastEventId);

// Resuming: a new connection given the cursor after the first run sees exactly what came after.
const resumed = [];
const again = createNetrunConnection({ baseURL: url, transport, lastEventId: cursorAfterFirst });
const sub2 = await again.subscribe({ channel: user, onMessage: (c) => { resumed.push(c); wake(); } });
await until("the resumed stream to catch up", () => resumed.length >= chunks.length - firstCount);
sub2.unsubscribe();
out.resumedSame = JSON.stringify(resumed) === JSON.stringify(chunks.slice(firstCount));
out.resumedCount = resumed.length;
out.cursorAfterFirst = cursorAfterFirst;

// Deleting the thread.
await transport.deleteThread({ threadId });
try {
  await transport.fetchHistory({ threadId });
  out.afterDelete = "found";
} catch (err) {
  out.afterDelete = err.message;
}
out.states = [...new Set(states)];
console.log(JSON.stringify(out));
