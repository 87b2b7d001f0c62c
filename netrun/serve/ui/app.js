// The console's entry: sign-in, and the page for the location's hash
// (#/networks, #/runs, #/runs/ID, #/threads, #/threads/ID, #/threads/new/NETWORK).

import { BASE, token, setUnauthorized, ApiError } from "./api.js";
import { h, fill } from "./dom.js";
import { networksPage } from "./networks.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { threadsPage, chatPage } from "./threads.js";

const main = document.getElementById("main");
const signout = document.getElementById("signout");
let leave = null; // what the page open now stops when another opens (its streams, timers)

function signIn(why) {
  if (leave) { leave(); leave = null; }
  const field = h("input", { type: "password", name: "token", id: "token", autocomplete: "current-password", size: 40 });
  const note = h("p", { class: "error", id: "signin-error" }, why || "");
  const submit = async (e) => {
    e.preventDefault();
    // Tried before it is kept: a wrong token stays out of sessionStorage.
    try {
      const probe = await fetch(`${BASE}/networks`, { headers: { Authorization: `Bearer ${field.value}` } });
      if (probe.status === 401) { fill(note, "That token is not this server's NETRUN_API_TOKEN."); return; }
      if (!probe.ok) { fill(note, `The server answered HTTP ${probe.status}.`); return; }
    } catch (error) { fill(note, error.message); return; }
    token.set(field.value);
    route();
  };
  signout.hidden = true;
  fill(main, h("h1", {}, "Sign in"),
    h("form", { id: "signin", class: "card", onsubmit: submit },
      h("p", {}, "This server asks for its API token (NETRUN_API_TOKEN). It is kept in this tab only."),
      h("div", { class: "row" }, h("label", { for: "token" }, "API token"), field, h("button", { type: "submit" }, "Sign in")), note));
  field.focus();
}

setUnauthorized(() => signIn("The server refused the token: sign in again."));

async function route() {
  if (leave) { leave(); leave = null; }
  const [path, q] = (location.hash.replace(/^#/, "") || "/networks").split("?");
  const params = new URLSearchParams(q || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  signout.hidden = !token.get();
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("here", a.getAttribute("href") === `#/${parts[0]}`));
  try {
    if (parts[0] === "runs" && parts[1]) leave = runPage(main, parts[1]);
    else if (parts[0] === "runs") leave = runsPage(main, params);
    else if (parts[0] === "threads" && parts[1] === "new") leave = chatPage(main, null, parts[2]);
    else if (parts[0] === "threads" && parts[1]) leave = chatPage(main, parts[1], params.get("network"));
    else if (parts[0] === "threads") await threadsPage(main);
    else await networksPage(main);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // the sign-in form is up
    fill(main, h("p", { class: "error" }, error.message));
  }
}

signout.addEventListener("click", () => { token.clear(); signIn(); });
window.addEventListener("hashchange", route);

// Whether this server wants a token: /healthz is open, /networks is behind the token when one is set.
(async () => {
  const probe = await fetch(`${BASE}/networks`, {
    headers: token.get() ? { Authorization: `Bearer ${token.get()}` } : {},
  });
  if (probe.status === 401) signIn(token.get() ? "The server refused the token: sign in again." : "");
  else route();
})();
