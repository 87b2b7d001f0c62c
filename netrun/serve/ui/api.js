// The REST API of `netrun serve`, called with the API token the person signed in with.
// The token lives in sessionStorage (this tab only, gone when it closes), and goes out as a
// bearer header; streams never carry it (see stream.js).

const KEY = "netrun.apiToken";

/** Where the API is: the path the console is served under, without its /ui/ (netrun may be mounted under a prefix). */
export const BASE = location.pathname.replace(/\/ui(\/.*)?$/, "");

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.body = body;
  }
}

/** Called on a 401: the page asks to sign in again. */
export let onUnauthorized = () => {};
export function setUnauthorized(handler) { onUnauthorized = handler; }

export function headers(extra = {}) {
  const given = token.get();
  return { Accept: "application/json", ...(given ? { Authorization: `Bearer ${given}` } : {}), ...extra };
}

export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const answer = await fetch(BASE + path, init);
  let data = null;
  try { data = await answer.json(); } catch { /* an empty or non-JSON answer */ }
  if (!answer.ok) {
    if (answer.status === 401) onUnauthorized();
    throw new ApiError(answer.status, data && data.detail ? data.detail : `HTTP ${answer.status}`, data);
  }
  return data;
}

/** A query string from the entries that have a value. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}
