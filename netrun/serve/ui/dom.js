// Building DOM without markup: every string becomes a text node, never HTML, so text a
// model, a tool or an event produced is shown as the characters it is (the console's rule).

/** h("div", {class: "x", onclick: f}, "text", child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = tag === "svg" || SVG_TAGS.has(tag) ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "value") el.value = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
const SVG_TAGS = new Set(["g", "rect", "path", "text", "defs", "marker", "title"]);

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace the children of `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A value as readable text: strings as they are, the rest as indented JSON. */
export function show(value) {
  if (typeof value === "string") return value;
  if (value === undefined) return "";
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

export function status(text) {
  return h("span", { class: `status ${text || ""}`, "data-status": text || "" }, text || "?");
}

/** A time (ISO 8601 text, or Unix seconds) as the reader's locale writes it. */
export function when(moment) {
  if (typeof moment === "number") return new Date(moment * 1000).toLocaleString();
  if (typeof moment === "string" && moment) return new Date(moment).toLocaleString();
  return "";
}
