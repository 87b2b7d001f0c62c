// netrun's connection for AgentKit's React client (@inngest/use-agent): an IConnection
// (`subscribe({channel, onMessage, onStateChange})`) over the Server-Sent Event streams of
// `netrun serve` (GET /users/{user}/events, GET /threads/{id}/events). Served by netrun at
// GET /agentkit/connection.js; an ES module with no dependencies, for browsers and Node 18+.
//
//   import { createNetrunConnection } from "https://netrun.example/agentkit/connection.js";
//   const connection = createNetrunConnection({ transport });   // use-agent's DefaultHttpTransport
//   const sub = await connection.subscribe({ channel: userId, onMessage, onStateChange });
//   sub.unsubscribe();
//
// Each event of the stream is an AgentKit chunk ({event, data, timestamp, sequenceNumber, id})
// and reaches onMessage parsed, as use-agent's hook receives chunks from Inngest Realtime.
// (The useAgents hook of use-agent 0.4.0 does not call a connection: it subscribes through
// @inngest/realtime, which netrun answers at /v1/realtime/connect. This module is for code
// that subscribes itself: StreamingEngine.subscribeWithConnection, a plain page, Node.)
// The stream token comes from the transport's getRealtimeToken (netrun's
// /agentkit/{network}/realtime/token), which also names the stream's URL. A dropped stream
// is opened again with Last-Event-ID, so nothing is lost or repeated; an expired or refused
// token is asked for again. fetch is used rather than EventSource: it sends Last-Event-ID
// on the first connection too, and exists in Node, where EventSource does not (Node 20).

const STATES = Object.freeze({
  connecting: "connecting",
  active: "active",
  refreshToken: "refresh_token",
  closed: "closed",
  error: "error",
});

const MIN_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;
// Ask for a new token this long before the one held expires.
const EARLY_MS = 5000;

/**
 * @param {object} options
 * @param {{getRealtimeToken: Function}} [options.transport] use-agent's transport (or any with getRealtimeToken)
 * @param {(p: {channel: string}) => Promise<{token: string, expires?: number, url?: string}>} [options.getToken]
 *   instead of a transport: how to get a stream token for a channel
 * @param {string} [options.baseURL] netrun's URL; default: the page's origin
 * @param {"user"|"thread"} [options.scope] what a channel names when the token names no URL (default "user")
 * @param {string} [options.lastEventId] resume after this cursor
 * @param {boolean} [options.live] without lastEventId, start with what comes next (default true);
 *   false: from the stream's first journaled chunk
 * @param {typeof fetch} [options.fetch]
 */
export function createNetrunConnection(options = {}) {
  return new NetrunConnection(options);
}

export class NetrunConnection {
  constructor(options = {}) {
    this.options = options;
    this.fetchFn = options.fetch || ((url, init) => fetch(url, init));
  }

  async _token(channel) {
    const { transport, getToken } = this.options;
    if (getToken) return getToken({ channel });
    if (transport && typeof transport.getRealtimeToken === "function") {
      const scope = this.options.scope || "user";
      return transport.getRealtimeToken(scope === "thread" ? { threadId: channel } : { userId: channel, channelKey: channel });
    }
    throw new Error("createNetrunConnection needs a transport (with getRealtimeToken) or getToken");
  }

  _url(channel, token) {
    const base = this.options.baseURL || (typeof location !== "undefined" ? location.origin : undefined);
    if (!base) throw new Error("createNetrunConnection needs baseURL outside a browser");
    const root = new URL(base);
    const scope = this.options.scope || "user";
    const path = token && typeof token.url === "string" ? token.url : `/${scope === "thread" ? "threads" : "users"}/${encodeURIComponent(channel)}/events`;
    const url = new URL(path, root);
    // The stream is netrun's own: a token's url cannot send the connection elsewhere.
    if (url.origin !== root.origin) throw new Error(`the stream URL ${url} is not on ${root.origin}`);
    if (token && token.token) url.searchParams.set("token", token.token);
    return url;
  }

  /**
   * @param {{channel: string, onMessage: (chunk: unknown) => void, onStateChange?: (state: unknown) => void, debug?: boolean}} params
   * @returns {Promise<{unsubscribe(): void}>} once the stream is open (or failed to open the first time)
   */
  async subscribe(params) {
    const { channel, onMessage, onStateChange, debug } = params;
    if (!channel) throw new Error("subscribe needs a channel (the user, or with scope thread, the thread)");
    const log = debug ? (...a) => console.log("[netrun-connection]", ...a) : () => {};
    const state = (status, extra) => {
      try {
        onStateChange?.({ status, channel, ...extra });
      } catch (err) {
        log("onStateChange threw", err);
      }
    };
    const controller = new AbortController();
    let active = true;
    let lastEventId = this.options.lastEventId;
    let token = null;
    let opened;
    const firstOpen = new Promise((resolve) => (opened = resolve));

    const connectOnce = async () => {
      if (!token || (typeof token.expires === "number" && token.expires - EARLY_MS < Date.now())) {
        state(STATES.refreshToken);
        token = await this._token(channel);
        // Where the stream stood when the first token was given: connecting later (after a
        // refused token, a drop before any event) still misses nothing that followed.
        if (lastEventId === undefined && this.options.live !== false && token && token.cursor != null) {
          lastEventId = String(token.cursor);
        }
      }
      state(STATES.connecting);
      const headers = { Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      const url = this._url(channel, token);
      // A first connection starts with what comes next (the page loads history with
      // fetchHistory); a resumed one continues after its cursor.
      if (!lastEventId && this.options.live !== false) url.searchParams.set("live", "true");
      const response = await this.fetchFn(url, { headers, signal: controller.signal });
      if (response.status === 401 || response.status === 403) {
        token = null; // expired or for another stream: ask again
        throw new Error(`the stream refused the token (HTTP ${response.status})`);
      }
      if (!response.ok || !response.body) throw new Error(`the stream answered HTTP ${response.status}`);
      state(STATES.active);
      opened();
      await readEvents(response.body, (event) => {
        if (event.id) lastEventId = event.id;
        if (!event.data) return;
        let chunk;
        try {
          chunk = JSON.parse(event.data);
        } catch {
          log("not JSON, skipped", event.data.slice(0, 80));
          return;
        }
        try {
          onMessage(chunk);
        } catch (err) {
          log("onMessage threw", err);
        }
      });
    };

    const run = async () => {
      let delay = MIN_RETRY_MS;
      while (active) {
        try {
          await connectOnce();
          delay = MIN_RETRY_MS; // it was open: the next drop starts the backoff again
        } catch (err) {
          if (!active) break;
          log("stream dropped", err && err.message);
          state(STATES.error, { error: String((err && err.message) || err) });
          opened(); // the caller is not kept waiting: the connection keeps trying
        }
        if (!active) break;
        await pause(delay, controller.signal);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
      }
      state(STATES.closed);
    };
    run();
    await firstOpen;
    return {
      /** The cursor of the last event received (the stream's SSE id): give it as lastEventId to resume there. */
      get lastEventId() {
        return lastEventId;
      },
      unsubscribe() {
        if (!active) return;
        active = false;
        controller.abort();
      },
    };
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

// The Server-Sent Events format (WHATWG HTML, "Interpreting an event stream"): fields
// `event`, `data` (lines joined by "\n"), `id`; a blank line dispatches; ":" starts a comment.
async function readEvents(body, dispatch) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = { event: "message", data: [], id: undefined };
  const line = (text) => {
    if (text === "") {
      if (event.data.length || event.id) dispatch({ event: event.event, data: event.data.join("\n"), id: event.id });
      event = { event: "message", data: [], id: undefined };
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event.event = value;
    else if (field === "data") event.data.push(value);
    else if (field === "id" && !value.includes("\0")) event.id = value;
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.search(/\r\n|\r|\n/)) !== -1) {
        if (buffer[end] === "\r" && end === buffer.length - 1) break; // a "\r\n" cut between two reads
        const text = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1));
        line(text);
      }
    }
  } finally {
    reader.releaseLock();
  }
}
