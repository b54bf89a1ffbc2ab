// The admin panel: a client of the admin API and nothing more. Every change is an admin API
// call, so it gets that API's rules (validation, the ledger for grants, the SSRF guard and the
// credential check on params, 403 for anyone but an admin), and its errors are shown as worded.

import {
  ApiError, ROOT, actionButton, api, errorBox, h, session, show, when,
} from "./api.js";
import { barChart, hourly } from "./chart.js";
import { signinConfig, signinView } from "./signin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let leave = () => {};

const SECTIONS = {
  users: ["Users & keys", usersPage],
  catalog: ["Catalog", catalogPage],
  configs: ["Configs", configsPage],
  "dead-letters": ["Dead letters", deadLettersPage],
  stuck: ["Stuck requests", stuckPage],
  usage: ["Usage", usagePage],
};

async function start() {
  if (!session.get()) {
    const oidc = await signinConfig();
    signinView(main, { oidc, title: "Relai admin panel", returnTo: "admin", done: () => location.reload() });
    return;
  }
  let me;
  try {
    me = await api("/me");
    await api("/admin/users", { params: { limit: 1 } });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      session.clear();
      location.reload();
      return;
    }
    // Not an admin (403) or the API cannot answer: no panel, only what the API said.
    show(main, h("section", { class: "card denied", id: "denied" },
      h("h1", {}, "No admin panel"),
      errorBox(error),
      h("p", {}, h("a", { href: new URL("console", ROOT).href }, "Open the console"), " · ",
        h("button", { type: "button", class: "link", onclick: signOut }, "Sign in as someone else"))));
    return;
  }
  show(nav, Object.entries(SECTIONS).map(([name, [label]]) => h("a", { href: `#${name}`, "data-page": name }, label)));
  show(who, h("span", {}, `${me.name} (admin)`),
    h("a", { href: new URL("console", ROOT).href }, "Console"),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
  window.addEventListener("hashchange", route);
  route();
}

function signOut() {
  session.clear();
  location.reload();
}

function route() {
  leave();
  leave = () => {};
  const name = location.hash.slice(1) || "users";
  const section = SECTIONS[name] || SECTIONS.users;
  for (const link of nav.querySelectorAll("a")) link.classList.toggle("active", link.dataset.page === name);
  show(main, h("p", { class: "muted" }, "Loading…"));
  section[1]().catch((error) => show(main, errorBox(error)));
}

function table(id, headings, rows) {
  return h("table", { class: "rows", id },
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

function secretBox(label, secret) {
  return h("div", { class: "secret", role: "status" }, h("p", {}, `${label} (shown once, copy it now):`), h("code", { class: "new-key" }, secret));
}

// ---- Users and keys

async function usersPage() {
  const out = h("div");
  const list = h("div");
  let offset = 0;
  const name = h("input", { id: "new-name", required: true, placeholder: "name" });
  const credits = h("input", { id: "new-credits", type: "number", min: 0, value: "0", required: true });
  const role = h("select", { id: "new-role" }, h("option", { value: "user" }, "user"), h("option", { value: "admin" }, "admin"));
  const create = h("form", { class: "inline card", onsubmit: async (event) => {
    event.preventDefault();
    show(out);
    try {
      const user = await api("/admin/users", { method: "POST", json: { name: name.value, credits: Number(credits.value), role: role.value } });
      show(out, secretBox(`API key of ${user.name}`, user.api_key));
      name.value = "";
      await load();
    } catch (error) {
      show(out, errorBox(error));
    }
  } }, h("strong", {}, "New user "), name, credits, role, h("button", { type: "submit" }, "Create"));

  async function keysRow(user, cell) {
    const keys = await api(`/admin/users/${encodeURIComponent(user.name)}/keys`);
    const status = h("div");
    show(cell, table(`keys-${user.name}`, ["Key", "Created", "Revoked", ""], keys.map((k) => h("tr", {},
      h("td", {}, h("code", {}, `${k.prefix}…`)),
      h("td", {}, when(k.created_at)),
      h("td", {}, k.revoked_at ? when(k.revoked_at) : "live"),
      h("td", {}, k.revoked_at ? "" : [
        actionButton("Rotate", async () => {
          const fresh = await api(`/admin/keys/${k.id}/rotate`, { method: "POST" });
          await keysRow(user, cell);
          cell.append(secretBox(`New API key of ${user.name}`, fresh.api_key));
        }, status),
        actionButton("Revoke", async () => {
          if (!confirm(`Revoke ${k.prefix}…? It stops working within seconds.`)) return;
          await api(`/admin/keys/${k.id}/revoke`, { method: "POST" });
          await keysRow(user, cell);
        }, status, { class: "danger" }),
      ]),
    ))), status);
  }

  async function load() {
    const users = await api("/admin/users", { params: { limit: 50, offset } });
    const rows = [];
    for (const user of users) {
      const amount = h("input", { type: "number", min: 1, value: "100", class: "short", "aria-label": `credits for ${user.name}` });
      const status = h("span");
      const keysCell = h("td", { colspan: 6 });
      const keysLine = h("tr", { hidden: true }, keysCell);
      rows.push(h("tr", { "data-user": user.name },
        h("td", {}, user.name),
        h("td", {}, user.role),
        h("td", { class: "num balance" }, String(user.balance)),
        h("td", { class: "num" }, String(user.reserved)),
        h("td", {}, when(user.created_at)),
        h("td", {}, amount, actionButton("Grant", async () => {
          await api(`/admin/users/${encodeURIComponent(user.name)}/grants`, { method: "POST", json: { credits: Number(amount.value) } });
          await load();
        }, status), actionButton("Keys", async () => {
          keysLine.hidden = !keysLine.hidden;
          if (!keysLine.hidden) await keysRow(user, keysCell);
        }, status), status),
      ), keysLine);
    }
    show(list, table("users", ["Name", "Role", "Balance", "Reserved", "Created", ""], rows),
      h("p", { class: "pager" },
        h("button", { type: "button", disabled: offset === 0 || undefined, onclick: () => { offset = Math.max(0, offset - 50); load(); } }, "← Previous"),
        h("button", { type: "button", disabled: users.length < 50 || undefined, onclick: () => { offset += 50; load(); } }, "Next →")));
  }

  show(main, h("h1", {}, "Users & keys"), create, out, list);
  await load();
}

// ---- Catalog: handlers, models, offers, deals and prompt templates, edited as the catalog
// file's entries

/** A model's deployments as `integration ×weight (cap)`; none: its handler's params say where. */
function deployments(model) {
  const list = model.deployments || [];
  if (!list.length) return h("span", { class: "muted" }, "handler's params");
  return list.map((d) => `${d.integration} ×${d.weight || 1}${d.max_concurrency ? ` (${d.max_concurrency})` : ""}`).join(", ");
}

const KINDS = {
  handlers: { key: (e) => e.id, disable: (e) => `/admin/handlers/${encodeURIComponent(e.id)}/disable`,
    summary: (e) => `${e.credits || 0} credits${e.params && e.params.integration ? ` · ${e.params.integration}` : ""}`,
    blank: { id: "group.name", credits: 0, params: {} } },
  models: { key: (e) => `${e.name}@${e.version}`, disable: (e) => `/admin/models/${encodeURIComponent(e.name)}/${encodeURIComponent(e.version)}/disable`,
    columns: [
      ["Name", (e) => h("code", {}, e.name)],
      ["Version", (e) => h("code", {}, e.version)],
      ["Default", (e) => (e.default ? "default" : "")],
      ["Handler", (e) => e.handler],
      ["Context window", (e) => String(e.context_window), "num"],
      ["Max output", (e) => String(e.max_output_tokens), "num"],
      ["Deployments", deployments],
    ],
    // The offers that pin no version route their next requests to the default.
    actions: (e, save, status) => (e.default || e.enabled === false ? [] : [
      actionButton("Make default", () => save({ ...e, default: true }), status, { class: "secondary" })]),
    blank: { name: "model-name", version: "1", handler: "echo.text", context_window: 8192, max_output_tokens: 1024, deployments: [] } },
  offers: { key: (e) => `${e.service}/${e.action}`, disable: (e) => `/admin/offers/${e.service}/${e.action}/disable`,
    summary: (e) => `${e.price} credit${e.price === 1 ? "" : "s"} · ${e.handler}${e.model ? ` · model ${e.model}` : ""}`,
    blank: { service: "svc", action: "act", price: 1, prompt_template: "{text}", handler: "echo.text" } },
  deals: { key: (e) => e.slug, disable: (e) => `/admin/deals/${encodeURIComponent(e.slug)}/disable`,
    summary: (e) => (e.offers || []).map((o) => (typeof o === "string" ? o : o.offer)).join(" + "),
    blank: { slug: "new-deal", offers: ["demo/echo"], price_modifier: 0 } },
  prompt_templates: { title: "Prompt templates", noun: "prompt template", path: "prompt-templates", flag: "active",
    key: (e) => e.name, disable: (e) => `/admin/prompt-templates/${encodeURIComponent(e.name)}/disable`,
    summary: (e) => [e.category || "general", ...(e.tags || [])].join(" · "),
    blank: { name: "new-template", category: "general", template: "{text}", example_input: { text: "an example" } } },
};
const kindPath = (kind) => `/admin/${KINDS[kind].path || kind}`;
const kindFlag = (kind) => KINDS[kind].flag || "enabled";

async function catalogPage() {
  const editor = h("div", { id: "editor" });

  function edit(kind, entry, isNew) {
    const text = h("textarea", { id: "entry-json", rows: 16, spellcheck: "false" });
    text.value = JSON.stringify(entry, null, 2);
    const out = h("div", { id: "editor-out" });
    show(editor, h("section", { class: "card" },
      h("h2", {}, isNew ? `New ${KINDS[kind].noun || kind.slice(0, -1)}` : `Edit ${KINDS[kind].key(entry)}`),
      h("p", { class: "muted" }, `PUT ${kindPath(kind)}: the admin API checks it (422 names the problem; nothing is written).`),
      text,
      h("p", {}, actionButton("Save", async () => {
        let body;
        try {
          body = JSON.parse(text.value);
        } catch (error) {
          throw new Error(`not JSON: ${error.message}`);
        }
        await api(kindPath(kind), { method: "PUT", json: body });
        show(editor);
        await load();
      }, out, { id: "save" }), " ", h("button", { type: "button", class: "secondary", onclick: () => show(editor) }, "Close")),
      out));
    text.focus();
  }

  const sections = h("div");
  async function load() {
    const data = await api("/admin/catalog");
    show(sections, Object.entries(KINDS).map(([kind, spec]) => {
      const status = h("div", { id: `catalog-${kind}-out` });
      const entries = data[kind] || [];
      const columns = spec.columns || [["Name", (e) => h("code", {}, spec.key(e))], ["", spec.summary]];
      const save = async (entry) => { await api(kindPath(kind), { method: "PUT", json: entry }); await load(); };
      return h("section", { class: "catalog-kind" },
        h("h2", {}, spec.title || kind[0].toUpperCase() + kind.slice(1), " ", h("button", { type: "button", class: "secondary", onclick: () => edit(kind, spec.blank, true) }, "New")),
        table(`catalog-${kind}`, [...columns.map(([heading]) => heading), "Enabled", ""], entries.map((entry) => {
          const enabled = entry[kindFlag(kind)] !== false;
          return h("tr", { "data-entry": spec.key(entry) },
            columns.map(([, cell, cls]) => h("td", { class: cls }, cell(entry))),
            h("td", {}, enabled ? "yes" : "no"),
            h("td", {},
              h("button", { type: "button", class: "edit", onclick: () => edit(kind, entry, false) }, "Edit"),
              spec.actions ? spec.actions(entry, save, status) : [],
              enabled
                ? actionButton("Disable", async () => { await api(spec.disable(entry), { method: "POST" }); await load(); }, status)
                : actionButton("Enable", () => save({ ...entry, [kindFlag(kind)]: true }), status)));
        })),
        status);
    }));
  }

  show(main, h("h1", {}, "Catalog"), h("p", { class: "muted" }, "API processes see a change within RELAI_CATALOG_REFRESH_S."), editor, sections);
  await load();
}

// ---- Central configs: versions, a masked version, a diff, activate, roll back

async function configsPage() {
  const detail = h("div");
  const output = h("pre", { id: "config-output", class: "code", hidden: true });
  const out = h("div");

  async function versions(configId) {
    const list = await api(`/admin/configs/${encodeURIComponent(configId)}/versions`);
    const status = h("div");
    const pick = (name, version) => h("input", { type: "radio", name, value: version, "aria-label": `${name} ${version}` });
    show(detail, h("h2", {}, `${configId} versions`),
      table("config-versions", ["Version", "Created", "Author", "Active", "Old", "New", ""], list.map((v) => h("tr", {},
        h("td", {}, v.version), h("td", {}, when(v.created_at)), h("td", {}, v.author), h("td", {}, v.active ? "active" : ""),
        h("td", {}, pick("old", v.version)), h("td", {}, pick("new", v.version)),
        h("td", {},
          actionButton("Show", async () => {
            const doc = await api(`/admin/configs/${encodeURIComponent(configId)}/versions/${encodeURIComponent(v.version)}`);
            output.hidden = false;
            output.textContent = `# ${configId} ${doc.version} (secrets masked)\n${doc.document}`;
          }, status),
          v.active ? "" : actionButton("Activate", async () => {
            await api(`/admin/configs/${encodeURIComponent(configId)}/activate`, { method: "POST", json: { version: v.version } });
            await versions(configId);
            await summaries();
          }, status)),
      ))),
      h("p", {},
        actionButton("Diff old → new", async () => {
          const old = detail.querySelector("input[name=old]:checked");
          const fresh = detail.querySelector("input[name=new]:checked");
          if (!old || !fresh) throw new Error("pick an old and a new version");
          const diff = await api(`/admin/configs/${encodeURIComponent(configId)}/diff`, { params: { old: old.value, new: fresh.value } });
          output.hidden = false;
          output.textContent = diff.diff || "(the same)";
        }, status), " ",
        actionButton("Roll back", async () => {
          const done = await api(`/admin/configs/${encodeURIComponent(configId)}/rollback`, { method: "POST" });
          status.replaceChildren(h("p", {}, `${configId}: version ${done.active_version} is active again`));
          await summaries();
        }, status, { class: "danger" })),
      status);
  }

  const list = h("div");
  async function summaries() {
    try {
      const configs = await api("/admin/configs");
      show(list, table("configs", ["Config", "Active", "Latest", "Versions", "Updated", ""], configs.map((c) => h("tr", {},
        h("td", {}, c.config_id), h("td", {}, c.active_version || "–"), h("td", {}, c.latest_version),
        h("td", { class: "num" }, String(c.versions)), h("td", {}, when(c.updated_at)),
        h("td", {}, actionButton("Versions", () => versions(c.config_id), out))))));
      if (!configs.length) list.append(h("p", { class: "muted" }, "No configs yet: `relai config upload FILE --id ID`."));
    } catch (error) {
      show(list, errorBox(error));
    }
  }

  show(main, h("h1", {}, "Central configs"),
    h("p", { class: "muted" }, "Secrets are never shown here; uploading and revealing stay with `relai config` on the operator's machine."),
    list, out, detail, output);
  await summaries();
}

// ---- Dead letters and stuck requests

async function deadLettersPage() {
  const body = h("div");
  const pages = [null];
  let index = 0;

  async function load() {
    const page = await api("/admin/dead-letters", { params: { limit: 25, before: pages[index] } });
    const last = page.items[page.items.length - 1];
    pages[index + 1] = page.items.length === 25 && last ? last.entry_id : null;
    const rows = [];
    for (const d of page.items) {
      const details = h("tr", { hidden: true }, h("td", { colspan: 8 }, h("pre", { class: "code" },
        JSON.stringify({ reason: d.reason, params: d.params, step: d.step, prompt_chars: d.prompt_chars, entry_id: d.entry_id }, null, 2))));
      rows.push(h("tr", {},
        h("td", {}, when(d.dead_lettered_at)), h("td", {}, d.request_id ? h("code", {}, d.request_id.slice(0, 8)) : "–"),
        h("td", {}, d.user || "–"), h("td", {}, d.request_status || "–"), h("td", {}, d.handler || "–"),
        h("td", { class: "num" }, String(d.attempt ?? "–")), h("td", { class: "num" }, `${d.deliveries ?? "–"}/${d.crashes ?? "–"}`),
        h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => { details.hidden = !details.hidden; } }, "Inspect"))), details);
    }
    show(body, h("p", {}, `${page.length} dead letter(s) on relai:dead-letters.`),
      table("dead-letters", ["When", "Request", "User", "Status", "Handler", "Attempt", "Deliveries/crashes", ""], rows),
      h("p", { class: "pager" },
        h("button", { type: "button", disabled: index === 0 || undefined, onclick: () => { index -= 1; load(); } }, "← Newer"),
        h("button", { type: "button", disabled: !pages[index + 1] || undefined, onclick: () => { index += 1; load(); } }, "Older →")));
  }

  show(main, h("h1", {}, "Dead letters"),
    h("p", { class: "muted" }, "A task retired after it took down every worker that ran it. Its request has ended (failed and refunded), so it is never run again: requests end once and are charged once. Fix the handler, then the user submits anew."),
    body);
  await load();
}

async function stuckPage() {
  const idle = h("input", { id: "idle", type: "number", min: 0, value: "60", class: "short" });
  const body = h("div");
  const out = h("div");

  async function load() {
    const rows = await api("/admin/requests/stuck", { params: { idle_s: idle.value } });
    show(body, table("stuck", ["Request", "User", "Target", "Status", "Attempt", "Idle", "State", ""], rows.map((r) => {
      const live = r.queued ? "queued in the outbox" : r.in_flight ? "in flight" : "lost";
      return h("tr", { "data-request": r.id },
        h("td", {}, h("code", {}, r.id.slice(0, 8))), h("td", {}, r.user), h("td", {}, r.target), h("td", {}, r.status),
        h("td", { class: "num" }, String(r.attempt)), h("td", { class: "num" }, `${Math.round(r.idle_s)} s`), h("td", {}, live),
        h("td", {}, actionButton("Re-drive", async () => {
          const done = await api(`/admin/requests/${r.id}/redrive`, { method: "POST" });
          show(out, h("p", {}, `Re-driven: ${done.attempt ? `attempt ${done.attempt}` : `steps ${done.steps.join(", ")}`} queued.`));
          await load();
        }, out, { disabled: r.queued || r.in_flight || undefined, title: r.queued || r.in_flight ? "live work: a re-drive would run it twice" : undefined })));
    })), rows.length ? null : h("p", { class: "muted" }, "Nothing idle that long."));
  }

  show(main, h("h1", {}, "Stuck requests"),
    h("p", { class: "muted" }, "Unfinished requests untouched for a while. Recon re-drives those past their deadline by itself; a re-drive here queues the next attempt at once, through the outbox, unless the request is live."),
    h("p", {}, h("label", { for: "idle" }, "Idle for at least (s) "), idle, " ", actionButton("Refresh", load, out)),
    out, body);
  await load();
}

// ---- Usage by user, offer and handler

async function usagePage() {
  const since = h("input", { id: "usage-from", type: "datetime-local" });
  const user = h("input", { id: "usage-user", placeholder: "user" });
  const offer = h("input", { id: "usage-offer", placeholder: "service/action" });
  const handler = h("input", { id: "usage-handler", placeholder: "handler" });
  const by = h("select", { id: "usage-by" }, ["user", "offer", "handler"].map((k) => h("option", { value: k }, `by ${k}`)));
  const body = h("div");
  const out = h("div");
  const start = new Date(Date.now() - 7 * 86400_000);
  since.value = new Date(start.getTime() - start.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);

  async function load() {
    const from = since.value ? new Date(since.value) : start;
    const rows = await api("/admin/usage", { params: { from: from.toISOString(), user: user.value, offer: offer.value, handler: handler.value } });
    const totals = new Map();
    for (const r of rows) {
      const t = totals.get(r[by.value]) || { requests: 0, succeeded: 0, failed: 0, credits: 0, cost: 0 };
      t.requests += r.requests; t.succeeded += r.succeeded; t.failed += r.failed; t.credits += r.credits; t.cost += r.cost;
      totals.set(r[by.value], t);
    }
    show(body, barChart(hourly(rows, (r) => r.credits, from, new Date()), { label: "Credits charged per hour" }),
      table("admin-usage", [by.value, "Requests", "Succeeded", "Failed", "Credits", "Cost"], [...totals].map(([name, t]) => h("tr", {},
        h("td", {}, name), ...[t.requests, t.succeeded, t.failed, t.credits, t.cost].map((n) => h("td", { class: "num" }, String(n)))))));
  }

  show(main, h("h1", {}, "Usage"),
    h("form", { class: "inline", onsubmit: (event) => { event.preventDefault(); load().catch((e) => show(out, errorBox(e))); } },
      h("label", { for: "usage-from" }, "From "), since, user, offer, handler, by, h("button", { type: "submit" }, "Show")),
    out, body);
  await load();
}

start();
