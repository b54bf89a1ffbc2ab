// The user console: offers and deals with forms built from their input schemas, a request
// watched live over its WebSocket, the history, credits and usage. Every call is the public
// API's, with the signed-in credential.

import {
  ApiError, ROOT, actionButton, api, errorBox, fileObjectUrl, h, openSocket, session, show, when,
} from "./api.js";
import { barChart, hourly } from "./chart.js";
import { finishOidc, signinConfig, signinView } from "./signin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const FINAL = new Set(["succeeded", "failed", "cancelled", "expired"]);
const STATUSES = ["pending", "running", "succeeded", "failed", "cancelled", "expired"];
let me = null;
let oidc = null;
let leave = () => {};

const PAGES = {
  offers: ["Offers", offersPage],
  deals: ["Deals", dealsPage],
  requests: ["Requests", requestsPage],
  credits: ["Credits", creditsPage],
  usage: ["Usage", usagePage],
};

async function start() {
  oidc = await signinConfig();
  let failed = null;
  try {
    const back = await finishOidc(oidc);
    if (back === "admin") {
      location.assign(new URL("admin/ui", ROOT));
      return;
    }
  } catch (error) {
    failed = error;
  }
  if (!session.get()) return signin(failed);
  try {
    me = await api("/me");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) session.clear();
    return signin(error);
  }
  header();
  window.addEventListener("hashchange", route);
  route();
}

function signin(error) {
  show(nav);
  show(who);
  signinView(main, { oidc, title: "Relai console", done: () => location.reload() });
  if (error) main.append(errorBox(error));
}

function header() {
  show(nav, Object.entries(PAGES).map(([name, [label]]) => h("a", { href: `#${name}`, "data-page": name }, label)));
  refreshWho();
}

async function refreshWho() {
  try {
    me = await api("/me");
  } catch {
    return;
  }
  show(who,
    h("span", { id: "me" }, `${me.name} · `, h("strong", { id: "balance" }, String(me.balance)), " credits"),
    me.role === "admin" ? h("a", { href: new URL("admin/ui", ROOT).href }, "Admin panel") : null,
    h("button", { type: "button", class: "link", onclick: () => { session.clear(); location.assign(new URL("console", ROOT)); } }, "Sign out"),
  );
}

function route() {
  leave();
  leave = () => {};
  const [name, arg] = (location.hash.slice(1) || "offers").split("/");
  for (const link of nav.querySelectorAll("a")) link.classList.toggle("active", link.dataset.page === name);
  if (name === "request" && arg) return run(() => requestPage(arg));
  const page = PAGES[name] || PAGES.offers;
  run(page[1]);
}

async function run(page) {
  show(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await page();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      // A revoked key or an expired token: sign in again, saying why.
      session.clear();
      leave();
      return signin(error);
    }
    show(main, errorBox(error));
  }
}

// Forms built from an input schema (`properties`, `required`); `files` names the file inputs.
function fields(schema, files = {}) {
  return Object.keys(schema.properties).map((name) => {
    const required = schema.required.includes(name);
    const id = `field-${name}`;
    const control = files[name]
      ? h("input", { type: "file", id, name, accept: files[name].types.join(","), required: required || undefined })
      : h("textarea", { id, name, rows: 2, required: required || undefined });
    const note = files[name] ? ` (file: ${files[name].types.join(", ")})` : "";
    return h("div", { class: "field" }, h("label", { for: id }, `${name}${required ? "" : " (optional)"}${note}`), control);
  });
}

function price(item) {
  if (item.input_price !== null && item.input_price !== undefined) {
    return `${item.price} + ${item.input_price}/${item.output_price} per 1k tokens`;
  }
  return `${item.price} credit${item.price === 1 ? "" : "s"}`;
}

async function offersPage() {
  const offers = await api("/svc");
  const cards = offers.map((offer) => {
    const name = `${offer.service}/${offer.action}`;
    const out = h("div");
    const files = offer.files || {};
    const form = h("form", { class: "card offer", "data-offer": name, onsubmit: async (event) => {
      event.preventDefault();
      show(out);
      const data = new FormData(form);
      const withFiles = Object.keys(files).some((f) => data.get(f) instanceof File && data.get(f).size > 0);
      let options;
      if (withFiles) {
        for (const f of Object.keys(files)) if (!(data.get(f) instanceof File && data.get(f).size)) data.delete(f);
        options = { method: "POST", form: data };
      } else {
        const body = {};
        for (const [key, value] of data.entries()) if (typeof value === "string") body[key] = value;
        options = { method: "POST", json: body };
      }
      try {
        const done = await api(`/svc/${offer.service}/${offer.action}`, options);
        location.hash = `#request/${done.id}`;
      } catch (error) {
        show(out, errorBox(error));
      }
    } },
      h("h2", {}, name),
      h("p", { class: "price" }, h("span", { class: "offer-price" }, price(offer)), offer.aliases.length ? ` · also ${offer.aliases.join(", ")}` : ""),
      fields(offer.inputs, files),
      h("button", { type: "submit" }, "Submit"),
      out,
    );
    return form;
  });
  show(main, h("h1", {}, "Offers"), offers.length ? h("div", { class: "grid" }, cards) : h("p", { class: "muted" }, "No offers are enabled."));
}

async function dealsPage() {
  const deals = await api("/deals");
  const cards = deals.map((deal) => {
    const out = h("div");
    const addons = deal.addons.map((addon) => {
      const name = `${addon.service}/${addon.action}`;
      return h("label", { class: "check" }, h("input", { type: "checkbox", name: "addon", value: name }), ` ${name} (+${addon.price}, ×${deal.addons_modifier})`);
    });
    const form = h("form", { class: "card deal", "data-deal": deal.slug, onsubmit: async (event) => {
      event.preventDefault();
      show(out);
      const data = new FormData(form);
      const inputs = {};
      for (const name of Object.keys(deal.inputs.properties)) {
        const value = data.get(name);
        if (value) inputs[name] = value;
      }
      try {
        const done = await api(`/deal/${deal.slug}`, { method: "POST", json: { inputs, addons: data.getAll("addon") } });
        location.hash = `#request/${done.id}`;
      } catch (error) {
        show(out, errorBox(error));
      }
    } },
      h("h2", {}, deal.slug),
      h("p", { class: "price" }, `${deal.price} credits · `, deal.offers.map((o) => `${o.service}/${o.action}${o.mode ? ` (${o.mode})` : ""}`).join(" → ")),
      fields(deal.inputs),
      addons.length ? h("fieldset", {}, h("legend", {}, "Add-ons"), addons) : null,
      h("button", { type: "submit" }, "Submit"),
      out,
    );
    return form;
  });
  show(main, h("h1", {}, "Deals"), deals.length ? h("div", { class: "grid" }, cards) : h("p", { class: "muted" }, "No deals are enabled."));
}

// Results: text as it is, a file as a link (and the picture, for an image), fetched with the
// credential (a file is its owner's only).
function result(item) {
  if (typeof item === "string") return h("pre", { class: "result" }, item);
  if (item && item.type === "file" && item.url) {
    const box = h("div", { class: "file" });
    const link = h("a", { download: item.id, href: "#" }, `${item.id} (${item.media_type}, ${item.bytes} bytes)`);
    box.append(link);
    fileObjectUrl(item.url).then((objectUrl) => {
      link.href = objectUrl;
      if (item.media_type.startsWith("image/")) box.prepend(h("img", { src: objectUrl, alt: item.id, class: "result-image" }));
    }).catch((error) => box.append(errorBox(error)));
    return box;
  }
  return h("pre", { class: "result" }, JSON.stringify(item, null, 2));
}

async function requestPage(id) {
  const status = h("span", { class: "status", id: "status" });
  const queue = h("span", { id: "queue" });
  const stream = h("pre", { class: "stream", id: "stream", "aria-live": "polite" });
  const streamed = h("section", { hidden: true }, h("h2", {}, "Streamed"), stream);
  const results = h("div", { id: "results" });
  const out = h("div");
  const cancel = actionButton("Cancel", async () => {
    const done = await api(`/svc/request/${id}/cancel`, { method: "POST" });
    out.append(h("p", { class: "muted" }, `Cancelled: ${done.refunded} credits refunded.`));
    apply({ status: done.status });
    refreshWho();
  }, out, { id: "cancel" });
  let current = null;
  let attempt = null;
  let lastEvent = null;
  let socket = null;
  let closed = false;

  function place(state) {
    if (!state.queue_position) return;
    const eta = state.queue_eta_s == null ? "" : `, about ${state.queue_eta_s} s to go`;
    queue.textContent = `queue position ${state.queue_position}${eta}`;
  }

  function apply(state) {
    current = state.status;
    status.textContent = state.status;
    status.className = `status ${state.status}`;
    cancel.hidden = FINAL.has(state.status);
    if (state.status !== "pending") queue.textContent = "";
    if (state.results) show(results, state.results.map(result));
    if (state.error) show(results, h("p", { class: "error" }, state.error));
    if (state.status === "pending") place(state);
    if (FINAL.has(state.status)) refreshWho();
  }

  async function watch(tries = 0) {
    socket = await openSocket(`/ws/requests/${id}`, { last_event_id: lastEvent });
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (event.event === "chunk") {
        if (attempt !== null && event.attempt !== attempt) stream.textContent = "";
        attempt = event.attempt;
        lastEvent = event.event_id;
        streamed.hidden = false;
        stream.append(event.text);
        return;
      }
      if (event.event === "queue") {
        if (current === "pending") place(event);
        return;
      }
      apply(event);
    });
    socket.addEventListener("close", (event) => {
      if (closed || FINAL.has(current)) return;
      if (tries < 5 && event.code !== 4401 && event.code !== 4404) {
        setTimeout(() => watch(tries + 1).catch((error) => show(out, errorBox(error))), 1000);
      } else {
        out.append(h("p", { class: "error" }, `The live view closed (${event.code} ${event.reason}).`));
      }
    });
  }

  const view = await api(`/svc/request/${id}`);
  show(main,
    h("h1", {}, `${view.service}/${view.action}`),
    h("p", {}, status, " ", queue),
    h("dl", { class: "facts" },
      h("dt", {}, "Request"), h("dd", {}, h("code", {}, id)),
      h("dt", {}, "Price"), h("dd", {}, String(view.price)),
      h("dt", {}, "Submitted"), h("dd", {}, when(view.created_at)),
      h("dt", {}, "Inputs"), h("dd", {}, h("code", {}, JSON.stringify(view.inputs))),
    ),
    cancel,
    out,
    streamed,
    h("h2", {}, "Results"),
    results,
  );
  apply(view);
  leave = () => {
    closed = true;
    if (socket) socket.close();
  };
  // An ended request's socket replays its streamed output, then its final state; a pending
  // one's tells its place in the queue as it changes.
  await watch();
}

function statusSelect(selected, onchange) {
  return h("select", { id: "status-filter", onchange },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === selected || undefined }, s)));
}

async function requestsPage() {
  const table = h("tbody");
  const out = h("div");
  const state = { status: "", cursors: [null], page: 0 };
  const pageLabel = h("span", { id: "page" });
  const previous = h("button", { type: "button", id: "previous", onclick: () => { state.page -= 1; load(); } }, "← Newer");
  const next = h("button", { type: "button", id: "next", onclick: () => { state.page += 1; load(); } }, "Older →");

  async function load() {
    show(out);
    try {
      const page = await api("/svc/requests", { params: { limit: 10, status: state.status, cursor: state.cursors[state.page] } });
      state.cursors[state.page + 1] = page.next_cursor;
      show(table, page.items.map((r) => h("tr", {},
        h("td", {}, when(r.created_at)),
        h("td", {}, `${r.service}/${r.action}`),
        h("td", {}, h("span", { class: `status ${r.status}` }, r.status)),
        h("td", { class: "num" }, String(r.price)),
        h("td", {}, h("a", { href: `#request/${r.id}`, class: "request-link" }, r.id.slice(0, 8))),
      )));
      if (!page.items.length) show(table, h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No requests.")));
      previous.disabled = state.page === 0;
      next.disabled = !page.next_cursor;
      pageLabel.textContent = `page ${state.page + 1}`;
    } catch (error) {
      show(out, errorBox(error));
    }
  }

  show(main,
    h("h1", {}, "Requests"),
    h("p", {}, statusSelect("", (event) => { state.status = event.target.value; state.cursors = [null]; state.page = 0; load(); })),
    h("table", { class: "rows", id: "history" }, h("thead", {}, h("tr", {}, ["Submitted", "Offer", "Status", "Price", "Id"].map((t) => h("th", {}, t)))), table),
    h("p", { class: "pager" }, previous, pageLabel, next),
    out,
  );
  await load();
}

async function creditsPage() {
  me = await api("/me");
  const table = h("tbody");
  const out = h("div");
  const cursors = [null];
  let page = 0;
  const previous = h("button", { type: "button", onclick: () => { page -= 1; load(); } }, "← Newer");
  const next = h("button", { type: "button", onclick: () => { page += 1; load(); } }, "Older →");

  async function load() {
    try {
      const entries = await api("/me/ledger", { params: { limit: 20, cursor: cursors[page] } });
      cursors[page + 1] = entries.next_cursor;
      show(table, entries.items.map((e) => h("tr", {},
        h("td", {}, when(e.created_at)),
        h("td", {}, e.kind),
        h("td", { class: "num" }, `${["reserve", "settle"].includes(e.kind) ? "-" : "+"}${e.amount}`),
        h("td", {}, e.request_id ? h("a", { href: `#request/${e.request_id}` }, e.request_id.slice(0, 8)) : ""),
      )));
      previous.disabled = page === 0;
      next.disabled = !entries.next_cursor;
    } catch (error) {
      show(out, errorBox(error));
    }
  }

  show(main,
    h("h1", {}, "Credits"),
    h("div", { class: "stats" },
      h("div", { class: "stat" }, h("span", {}, "Balance"), h("strong", { id: "credits-balance" }, String(me.balance))),
      h("div", { class: "stat" }, h("span", {}, "Reserved"), h("strong", {}, String(me.reserved))),
    ),
    h("p", { class: "muted" }, "A submission reserves its price; success spends it (settle), a failure, cancellation or expiry returns it (refund)."),
    h("table", { class: "rows", id: "ledger" }, h("thead", {}, h("tr", {}, ["When", "Movement", "Credits", "Request"].map((t) => h("th", {}, t)))), table),
    h("p", { class: "pager" }, previous, next),
    out,
  );
  await load();
}

async function usagePage() {
  const body = h("div");
  const range = h("select", { id: "range", onchange: () => load() },
    h("option", { value: "24", selected: true }, "last 24 hours"),
    h("option", { value: "168" }, "last 7 days"),
    h("option", { value: "720" }, "last 30 days"));

  async function load() {
    const to = new Date();
    const from = new Date(to.getTime() - Number(range.value) * 3600_000);
    try {
      const rows = await api("/me/usage", { params: { from: from.toISOString() } });
      const totals = new Map();
      for (const r of rows) {
        const t = totals.get(r.offer) || { requests: 0, succeeded: 0, failed: 0, credits: 0, tokens: 0 };
        t.requests += r.requests; t.succeeded += r.succeeded; t.failed += r.failed; t.credits += r.credits;
        t.tokens += r.input_tokens + r.output_tokens;
        totals.set(r.offer, t);
      }
      show(body,
        barChart(hourly(rows, (r) => r.credits, from, to), { label: "Credits spent per hour" }),
        h("table", { class: "rows", id: "usage" },
          h("thead", {}, h("tr", {}, ["Offer", "Requests", "Succeeded", "Failed", "Credits", "Tokens"].map((t) => h("th", {}, t)))),
          h("tbody", {}, [...totals].map(([offer, t]) => h("tr", {},
            h("td", {}, offer), h("td", { class: "num" }, String(t.requests)), h("td", { class: "num" }, String(t.succeeded)),
            h("td", { class: "num" }, String(t.failed)), h("td", { class: "num" }, String(t.credits)), h("td", { class: "num" }, String(t.tokens)))))),
        rows.length ? null : h("p", { class: "muted" }, "No usage in this period yet (a request is counted a little after it ends)."),
      );
    } catch (error) {
      show(body, errorBox(error));
    }
  }

  show(main, h("h1", {}, "Usage"), h("p", {}, range), body);
  await load();
}

start();
