// The API client both pages share: the credential kept in this tab's sessionStorage (never in a
// URL, never in localStorage), calls with `Authorization: Bearer`, errors as the API words them,
// WebSockets opened with a single-use ticket, and a small DOM builder that never parses HTML.

const CREDENTIAL = "relai.credential";

/** The API's root, wherever the API is served (this file is `<root>/ui/assets/api.js`). */
export const ROOT = new URL("../../", import.meta.url);

export const session = {
  get: () => sessionStorage.getItem(CREDENTIAL),
  set: (credential) => sessionStorage.setItem(CREDENTIAL, credential),
  clear: () => sessionStorage.removeItem(CREDENTIAL),
};

/** An answer other than 2xx: `status`, and the API's `{detail, code, ...}` as `body`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || `http_${status}`;
    this.body = body;
  }
}

export function url(path, params) {
  const target = new URL(path.replace(/^\//, ""), ROOT);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, value);
  }
  return target;
}

/** Call the API: `json` or `form` (a FormData, sent as multipart) as the body. */
export async function api(path, { method = "GET", params, json, form, headers } = {}) {
  const sent = new Headers(headers || {});
  const credential = session.get();
  if (credential) sent.set("Authorization", `Bearer ${credential}`);
  let body;
  if (json !== undefined) {
    sent.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const answer = await fetch(url(path, params), { method, headers: sent, body, cache: "no-store" });
  if (answer.status === 204) return null;
  const type = answer.headers.get("content-type") || "";
  const data = type.includes("json") ? await answer.json() : await answer.text();
  if (!answer.ok) {
    const shaped = data && typeof data === "object" ? data : { detail: String(data) };
    throw new ApiError(answer.status, shaped);
  }
  return data;
}

/** The API's words for an error: status, code, detail and the fields it names. */
export function describe(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  const extra = [];
  for (const name of ["fields", "missing", "unknown", "unknown_addons", "price", "limit"]) {
    if (error.body[name] !== undefined) extra.push(`${name}: ${JSON.stringify(error.body[name])}`);
  }
  const retry = error.body.retry_after ? ` (retry in ${error.body.retry_after} s)` : "";
  return `${error.status} ${error.code}: ${error.body.detail || ""}${retry}${extra.length ? ` [${extra.join("; ")}]` : ""}`;
}

/** A WebSocket on `path`, authenticated with a single-use ticket (`POST /ws/ticket`) passed
 * as the subprotocols `ticket, <ticket>`: browsers cannot set headers on a WebSocket, and a
 * credential in the URL would end up in logs. */
export async function openSocket(path, params) {
  const { ticket } = await api("/ws/ticket", { method: "POST" });
  const target = url(path, params);
  target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
  return new WebSocket(target, ["ticket", ticket]);
}

/** A file's bytes (its owner's, with the credential) as an object URL for `<img>` or a link. */
export async function fileObjectUrl(path) {
  const answer = await fetch(url(path), {
    headers: { Authorization: `Bearer ${session.get()}` },
  });
  if (!answer.ok) throw new ApiError(answer.status, await answer.json().catch(() => ({})));
  return URL.createObjectURL(await answer.blob());
}

/** `h("p", {class: "x"}, "text", child)`: an element; strings become text nodes. */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "value") node.value = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function show(target, ...children) {
  target.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, describe(error));
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** A button that runs `action`, disabled while it runs, errors shown in `out`. */
export function actionButton(label, action, out, attrs = {}) {
  const button = h("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    if (out) show(out);
    try {
      await action();
    } catch (error) {
      if (out) show(out, errorBox(error));
      else throw error;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
