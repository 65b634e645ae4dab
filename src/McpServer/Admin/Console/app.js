// The Gatehouse web console: plain browser JavaScript, no build step. Every value from the server is set as text
// (never as HTML), and every action carries the session's CSRF token.
"use strict";

const session = { csrf: "", admin: "" };
let refresh = null;
let lastDecision = -Infinity;

// Agents write much of what the console shows (SQL, reasons, names). Control and format characters, the bidirectional
// overrides among them, are shown as \uXXXX rather than obeyed, so a statement cannot reorder or hide what an approver
// reads; line breaks and tabs stay.
const hidden = /[\p{Cf}\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/gu;
function printable(text) { return text.replace(hidden, c => "\\u" + c.codePointAt(0).toString(16).padStart(4, "0")); }

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    // What is shown (a tooltip, a label) is made printable; a value the page sends back (an option's value) stays as it is.
    else el.setAttribute(key, key === "title" || key.startsWith("aria-") ? printable(String(value)) : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(printable(String(child))));
  }
  return el;
}

// Appends nodes, flattening lists and skipping what a condition left out.
function put(parent, ...items) {
  for (const item of items.flat(Infinity)) if (item !== null && item !== undefined && item !== false) parent.append(item);
  return parent;
}

function say(text) { document.getElementById("status").textContent = printable(text); }

async function api(path, options = {}) {
  const init = { credentials: "same-origin", method: options.method || "GET", headers: {} };
  if (init.method !== "GET") {
    init.headers["X-Gatehouse-CSRF"] = session.csrf;
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body || {});
  }
  const response = await fetch("/admin/api" + path, init);
  if (response.status === 401) { location.assign("/admin"); throw new Error("signed out"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

const time = value => value ? new Date(value).toLocaleString() : "–";
const decision = value => h("span", { class: "decision " + value }, value);
const clip = (text, max) => !text ? "" : text.length <= max ? text : text.slice(0, max - 1) + "…";

function table(headers, rows, empty) {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map(x => h("th", { scope: "col" }, x)))), h("tbody", {}, rows));
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== null && value !== undefined) q.set(key, value);
  const text = q.toString();
  return text ? "?" + text : "";
}

// ---- pages ---------------------------------------------------------------------------------------------------------

async function agentsPage(view) {
  const agents = await api("/agents");
  const toggle = agent => h("button", {
    class: agent.disabled ? "" : "danger",
    onclick: async () => {
      const result = await api(`/agents/${agent.disabled ? "enable" : "disable"}${query({ agent: agent.agent })}`, { method: "POST" });
      say(result.result);
      await route();
    },
  }, agent.disabled ? `Enable ${agent.agent}` : `Disable ${agent.agent}`);
  put(view, h("h1", {}, "Agents"), table(
    ["Agent", "Status", "First seen", "Last seen", "Calls", "Denials", "Identity from", ""],
    agents.map(a => h("tr", { "data-agent": a.agent },
      h("td", {}, h("a", { href: "#/calls" + query({ agent: a.agent }) }, a.agent)),
      h("td", {}, a.disabled ? h("strong", { class: "decision denied" }, "disabled") : "enabled"),
      h("td", {}, time(a.first_seen)), h("td", {}, time(a.last_seen)), h("td", {}, a.calls), h("td", {}, a.denials),
      h("td", {}, (a.issuers || []).join(", ") || "–"),
      h("td", {}, toggle(a), " ", h("a", { href: "#/sessions" + query({ agent: a.agent }) }, "sessions")))),
    "No agent has called yet, and the policy names none."));
}

async function callsPage(view, params) {
  const [connections, agents] = await Promise.all([api("/connections"), api("/agents")]);
  const offset = Number(params.get("offset") || 0);
  const filters = Object.fromEntries(["agent", "decision", "connection", "table", "text", "since", "until"].map(k => [k, params.get(k) || ""]));
  const page = await api("/calls" + query({ ...filters, offset }));
  const field = (label, input) => h("label", {}, label, input);
  const local = iso => iso ? new Date(new Date(iso).getTime() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16) : "";
  const form = h("form", { class: "filters", "aria-label": "Filter tool calls", onsubmit: event => {
    event.preventDefault();
    const data = new FormData(event.target);
    const chosen = {};
    for (const [key, value] of data.entries()) chosen[key] = (key === "since" || key === "until") && value ? new Date(value).toISOString() : value;
    location.hash = "#/calls" + query(chosen);
  } },
  field("Agent", h("select", { name: "agent", id: "filter-agent" }, h("option", { value: "" }, "any"),
    agents.map(a => h("option", { value: a.agent, selected: a.agent === filters.agent }, a.agent)))),
  field("Decision", h("select", { name: "decision", id: "filter-decision" }, ["", "allowed", "denied", "failed", "started"].map(d =>
    h("option", { value: d, selected: d === filters.decision }, d || "any")))),
  field("Connection", h("select", { name: "connection" }, h("option", { value: "" }, "any"),
    connections.map(c => h("option", { value: c, selected: c === filters.connection }, c)))),
  field("Table", h("input", { name: "table", value: filters.table, placeholder: "public.orders", size: 14 })),
  field("Text", h("input", { name: "text", type: "search", value: filters.text, placeholder: "SQL, rule or reason", size: 18 })),
  field("From", h("input", { name: "since", type: "datetime-local", value: local(filters.since) })),
  field("To", h("input", { name: "until", type: "datetime-local", value: local(filters.until) })),
  h("button", { type: "submit", class: "primary" }, "Filter"),
  h("a", { href: "#/calls" }, "Clear"));

  const rows = page.calls.map(c => h("tr", { "data-call": c.id },
    h("td", {}, h("a", { href: "#/calls/" + encodeURIComponent(c.id) }, time(c.time))),
    h("td", {}, c.agent || "–"), h("td", {}, c.tool), h("td", {}, decision(c.decision)), h("td", { class: "mono" }, c.rule),
    h("td", {}, c.connection || "–"), h("td", { class: "mono" }, clip(c.sql, 90)), h("td", {}, c.row_count ?? "–")));
  const move = delta => () => { location.hash = "#/calls" + query({ ...filters, offset: Math.max(0, offset + delta) }); };
  put(view, h("h1", {}, "Tool calls"), form, table(["Time", "Agent", "Tool", "Decision", "Rule", "Connection", "SQL", "Rows"], rows, "No calls match these filters."),
    h("div", { class: "pager" },
      h("button", { onclick: move(-page.limit), disabled: offset === 0 }, "Newer"),
      h("span", { class: "muted" }, page.calls.length ? `Calls ${offset + 1}–${offset + page.calls.length}` : ""),
      h("button", { onclick: move(page.limit), disabled: !page.has_more }, "Older")));
}

function excerpt(result) {
  let parsed;
  try { parsed = JSON.parse(result); } catch { return h("pre", {}, result); }
  const note = parsed.rows_kept !== undefined ? `${parsed.rows_kept} of ${parsed.row_count} rows kept (capture bound)` : `${parsed.row_count} row(s)`;
  return h("div", {}, h("p", { class: "muted" }, note),
    table(parsed.columns, parsed.rows.map(r => h("tr", {}, r.map(v => h("td", { class: "mono" }, v === null ? "null" : typeof v === "object" ? JSON.stringify(v) : v)))), "No rows."));
}

async function callPage(view, id) {
  const { call, approvals } = await api("/calls/" + encodeURIComponent(id));
  const row = (label, value) => [h("dt", {}, label), h("dd", {}, value ?? "–")];
  put(view, h("h1", {}, `Call ${call.id}`), h("dl", { class: "fields" },
    row("Time", time(call.time)), row("Agent", call.agent), row("Groups", (call.groups || []).join(", ") || "–"),
    row("Tool", call.tool), row("Transport", call.transport),
    row("Session", call.session_id ? h("a", { href: "#/sessions/" + encodeURIComponent(call.session_id) }, call.session_id) : null),
    row("Connection", call.connection), row("Decision", decision(call.decision)), row("Rule", h("code", {}, call.rule)),
    row("Why", call.reason), row("Classification", call.classification), row("Rows", call.row_count),
    row("Duration", `${call.duration_ms.toFixed(1)} ms`), row("Masked", call.masking || "nothing"), row("Error", call.error),
    row("Issuer / subject", [call.issuer, call.subject].filter(Boolean).join(" / ") || null)),
  call.sql ? [h("h2", {}, "SQL"), h("pre", { id: "call-sql" }, call.sql)] : null,
  call.parameters ? [h("h2", {}, "Parameters"), h("pre", {}, call.parameters)] : null,
  h("h2", {}, "Approvals"),
  approvals.length ? approvals.map(a => h("p", {}, `${a.id}: ${a.status}, ${a.approvals}/${a.required} approval(s)`,
    (a.decisions || []).map(d => h("span", { class: "muted" }, ` · ${d.approver} ${d.approve ? "approved" : "denied"}${d.note ? ` (“${d.note}”)` : ""}`))))
    : h("p", { class: "empty" }, "This call needed no approval."),
  h("h2", {}, "Result as the agent received it"),
  call.result ? excerpt(call.result) : h("p", { class: "empty" }, "Not captured: the connection records metadata only (set capture: full to keep masked results)."));
}

async function sessionsPage(view, params) {
  const agent = params.get("agent") || "";
  const sessions = await api("/sessions" + query({ agent }));
  put(view, h("h1", {}, agent ? `Sessions of ${agent}` : "Sessions"), table(
    ["Session", "Agent", "First call", "Last call", "Calls", "Denied", "Failed"],
    sessions.map(s => h("tr", {},
      h("td", {}, h("a", { href: "#/sessions/" + encodeURIComponent(s.session_id) }, s.session_id)), h("td", {}, s.agent || "–"),
      h("td", {}, time(s.first)), h("td", {}, time(s.last)), h("td", {}, s.calls), h("td", {}, s.denied), h("td", {}, s.failed))),
    "No sessions recorded."));
}

async function sessionPage(view, id) {
  const calls = await api("/sessions/" + encodeURIComponent(id));
  const start = new Date(calls[0].time).getTime();
  put(view, h("h1", {}, `Session ${id}`), h("p", { class: "muted" }, `${calls[0].agent || "unidentified"} · ${calls.length} call(s) from ${time(calls[0].time)}`),
    h("ol", { class: "timeline" }, calls.map(c => h("li", {},
      h("span", { class: "offset" }, `+${((new Date(c.time).getTime() - start) / 1000).toFixed(1)}s`), " ",
      h("a", { href: "#/calls/" + encodeURIComponent(c.id) }, c.tool), " ", decision(c.decision), " ", h("code", {}, c.rule),
      h("span", { class: "muted" }, ` (${c.duration_ms.toFixed(1)} ms${c.row_count !== null && c.row_count !== undefined ? `, ${c.row_count} row(s)` : ""}${c.masking ? `, masked ${c.masking}` : ""})`),
      c.sql ? h("pre", {}, c.sql) : null, h("div", { class: "muted" }, c.reason)))));
}

function decide(request) {
  const reason = h("textarea", { rows: 2, cols: 40, maxlength: 2000, "aria-label": `Reason for deciding ${request.id}` });
  const act = verb => async () => {
    // A click within half a second of a decision is the second of a double click: the decided card is gone, and the
    // click would land on whichever request took its place. It decides nothing.
    if (performance.now() - lastDecision < 500) return;
    lastDecision = performance.now();
    try {
      const result = await api(`/requests/${encodeURIComponent(request.id)}/${verb}`, { method: "POST", body: { reason: reason.value } });
      say(result.result);
    } catch (error) { say(`Refused: ${error.message}`); }
    await route();
    // The window runs from when the next card is under the pointer, not from the first click.
    lastDecision = performance.now();
  };
  return h("div", { class: "actions" }, h("label", {}, "Reason (optional)", reason),
    h("button", { class: "primary", onclick: act("approve") }, `Approve ${request.id}`),
    h("button", { class: "danger", onclick: act("deny") }, `Deny ${request.id}`));
}

async function approvalsPage(view) {
  const { access, statements } = await api("/requests");
  const cards = [
    ...statements.map(s => h("section", { class: "card", "data-request": s.id, "aria-label": `Statement request ${s.id}` },
      h("h3", {}, `${s.agent} wants to run a statement on ${s.connection}` + (s.delegated_by ? ` on behalf of ${s.delegated_by}` : "")),
      h("pre", {}, s.sql), s.parameters ? h("p", { class: "mono" }, `parameters: ${s.parameters}`) : null,
      h("p", {}, h("code", {}, s.rule), `: ${s.reason}`),
      h("p", { class: "muted" }, `${s.classification} · ${s.approvals}/${s.required} approval(s) · expires ${time(s.expires_at)}`
        + (s.dry_run_rows !== null && s.dry_run_rows !== undefined ? ` · dry run touched ${s.dry_run_rows} row(s)` : "")),
      s.review ? h("p", {}, h("strong", {}, "AI review: "), s.review) : null,
      decide(s))),
    ...access.map(a => h("section", { class: "card", "data-request": a.id, "aria-label": `Access request ${a.id}` },
      h("h3", {}, `${a.agent} asks for ${a.access} access for ${a.duration}` + (a.delegated_by ? ` on behalf of ${a.delegated_by}` : "")),
      h("p", {}, [...a.tables, ...a.schemas.map(x => `schema ${x}`)].join(", "), ` on ${a.connection}`),
      h("p", { class: "muted" }, `Reason: ${a.reason} · asked ${time(a.created_at)} · ${a.approvals}/${a.required} approval(s) · expires ${time(a.expires_at)}`),
      decide(a))),
  ];
  const live = h("p", { class: "muted", id: "live" }, `Updates every 2 seconds · last ${new Date().toLocaleTimeString()}`);
  put(view, h("h1", {}, "Pending approvals"), live, cards.length ? cards : h("p", { class: "empty" }, "Nothing is waiting for a decision."));
  // Live, but never under the admin's hand: while the pointer or the keyboard focus is on a request (aiming at its buttons,
  // typing its reason), a reload could slide another request's card, and its Approve button, under the click. The page
  // waits until they leave it, and says so.
  const busy = () => document.querySelector("section.card:hover, section.card:focus-within") !== null;
  const tick = () => {
    refresh = setTimeout(() => {
      if (!busy()) { route(); return; }
      live.textContent = "Updates paused while you are on a request";
      updatePendingCount();
      tick();
    }, 2000);
  };
  tick();
}

async function grantsPage(view) {
  const grants = await api("/grants");
  put(view, h("h1", {}, "Active grants"), table(["Grant", "Agent", "Access", "On", "Expires", ""],
    grants.map(g => h("tr", { "data-grant": g.id }, h("td", { class: "mono" }, g.id), h("td", {}, g.agent), h("td", {}, g.access),
      h("td", {}, [...g.tables, ...g.schemas.map(x => `schema ${x}`)].join(", ")), h("td", {}, time(g.grant_expires_at)),
      h("td", {}, h("button", { class: "danger", onclick: async () => {
        try { say((await api(`/grants/${encodeURIComponent(g.id)}/revoke`, { method: "POST" })).result); } catch (error) { say(`Refused: ${error.message}`); }
        await route();
      } }, `Revoke ${g.id}`)))),
    "No time-boxed grants are active."));
}

// ---- routing -------------------------------------------------------------------------------------------------------

async function updatePendingCount() {
  try {
    const { access, statements } = await api("/requests");
    const count = access.length + statements.length;
    const badge = document.getElementById("pending-count");
    badge.textContent = String(count);
    badge.hidden = count === 0;
  } catch { /* the page itself reports errors */ }
}

async function route() {
  clearTimeout(refresh);
  const [path, search] = (location.hash.slice(1) || "/calls").split("?");
  const params = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const view = document.getElementById("view");
  const next = h("div", {});
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === parts[0]) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  try {
    if (parts[0] === "agents") await agentsPage(next);
    else if (parts[0] === "calls" && parts[1]) await callPage(next, parts[1]);
    else if (parts[0] === "sessions" && parts[1]) await sessionPage(next, parts[1]);
    else if (parts[0] === "sessions") await sessionsPage(next, params);
    else if (parts[0] === "approvals") await approvalsPage(next);
    else if (parts[0] === "grants") await grantsPage(next);
    else await callsPage(next, params);
  } catch (error) {
    next.append(h("p", { class: "error", role: "alert" }, `Could not load this page: ${error.message}`));
    // The live page tries again, rather than stop updating after one failed read.
    if (parts[0] === "approvals") refresh = setTimeout(() => route(), 2000);
  }
  view.replaceChildren(...next.childNodes);
  updatePendingCount();
}

async function start() {
  const response = await fetch("/admin/session", { credentials: "same-origin" });
  if (!response.ok) { location.assign("/admin"); return; }
  const info = await response.json();
  session.csrf = info.csrf;
  session.admin = info.admin;
  document.getElementById("who").textContent = `Signed in as ${info.admin}`;
  document.getElementById("signout-csrf").value = info.csrf;
  window.addEventListener("hashchange", () => { say(""); route().then(() => document.getElementById("view").focus()); });
  await route();
}

start();
