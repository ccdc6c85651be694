/// The Q&A page served at `/`: one self-contained HTML document (no build
/// step, no framework, nothing fetched from elsewhere). In search mode a
/// question goes to the native search route; results show their document
/// (the query's words marked), metadata as a table and score, and each can be
/// rated, which lands in the feedback store. Filters come from the facets
/// route (values with counts, or a range), the search lives in the URL so it
/// can be shared, "More results" asks for more, and a line says how many
/// records the collection holds, whether the engine is ready, what the
/// ingestion worker's last run did (and which file it could not ingest), and
/// when the scraper last ran. In chat mode the chat route answers (the bots' composer), and the
/// conversation is kept per browser session (sessionStorage) and sent back as
/// history, so the API stays stateless. The Bots view manages the users' own
/// Telegram and Discord bots through the API (which forwards to the bot
/// gateway): list with status, last error, messages answered and data
/// sequence; add one (its token typed once, never shown again); start, stop,
/// edit, remove; its recent conversations. With an API key set, the page asks
/// for it once and keeps it for the browser session.
enum WebPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sextant — ask the knowledge base</title>
<style>
  :root { --ink: #1d2330; --muted: #5c6575; --line: #dfe3ea; --accent: #2458d6; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--bg); }
  main { max-width: 860px; margin: 0 auto; padding: 2rem 1rem 4rem; }
  h1 { font-size: 1.4rem; margin: 0 0 1rem; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; }
  input[type=search] { flex: 1 1 22rem; padding: .7rem .9rem; font-size: 1rem; border: 1px solid var(--line); border-radius: 8px; }
  select, button { padding: .7rem .9rem; font-size: 1rem; border-radius: 8px; border: 1px solid var(--line); background: #fff; }
  button.primary { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
  #status { color: var(--muted); margin: .8rem 0; min-height: 1.5em; }
  ol { list-style: none; padding: 0; margin: 0; }
  li.result { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: .9rem 1rem; margin: .6rem 0; }
  .head { display: flex; justify-content: space-between; gap: 1rem; align-items: baseline; }
  .id { font-weight: 600; word-break: break-all; }
  .score { color: var(--muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
  .doc { white-space: pre-wrap; margin: .4rem 0; }
  .meta { font-size: .85rem; color: var(--muted); }
  .meta span { display: inline-block; margin-right: .8rem; }
  .rate button { padding: .2rem .6rem; font-size: .9rem; cursor: pointer; }
  .rate .done { color: var(--accent); font-size: .9rem; }
  .modes { display: flex; gap: 1rem; margin: .6rem 0 0; color: var(--muted); align-items: center; }
  #chat { list-style: none; padding: 0; }
  li.turn { border-radius: 10px; padding: .7rem 1rem; margin: .5rem 0; white-space: pre-wrap; }
  li.turn.user { background: #e8eefc; margin-left: 3rem; }
  li.turn.assistant { background: #fff; border: 1px solid var(--line); margin-right: 3rem; }
  li.turn .sources { font-size: .85rem; color: var(--muted); margin-top: .4rem; white-space: normal; }
  li.turn .sources a { color: var(--accent); margin-right: .8rem; }
  .layout { display: grid; grid-template-columns: 14rem 1fr; gap: 1.2rem; align-items: start; }
  @media (max-width: 700px) { .layout { grid-template-columns: 1fr; } }
  #filters fieldset { border: 1px solid var(--line); border-radius: 8px; margin: 0 0 .7rem; padding: .4rem .7rem .6rem; background: #fff; }
  #filters legend { font-weight: 600; font-size: .9rem; padding: 0 .3rem; }
  #filters label { display: block; font-size: .9rem; margin: .15rem 0; }
  #filters .count { color: var(--muted); }
  #filters input[type=number], #filters input[type=date] { width: 100%; padding: .3rem; font-size: .9rem; }
  table.meta { border-collapse: collapse; font-size: .85rem; color: var(--muted); margin: .3rem 0; }
  table.meta th { text-align: left; font-weight: 600; padding: .1rem .8rem .1rem 0; vertical-align: top; }
  table.meta td { padding: .1rem 0; word-break: break-word; }
  mark { background: #ffec99; color: inherit; padding: 0 .05em; }
  #panel { font-size: .85rem; color: var(--muted); margin: .6rem 0 0; }
  #more { margin: .8rem 0; }
  #bots-view table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; font-size: .9rem; }
  #bots-view th, #bots-view td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  #bots-view td.actions button { padding: .25rem .55rem; font-size: .85rem; margin: 0 .2rem .2rem 0; }
  #bots-view form { display: grid; grid-template-columns: 1fr 1fr; gap: .5rem; background: #fff; border: 1px solid var(--line);
                    border-radius: 8px; padding: .8rem; margin: 1rem 0; }
  #bots-view form label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
  #bots-view form input, #bots-view form select, #bots-view form textarea { padding: .45rem; font-size: .95rem; border: 1px solid var(--line); border-radius: 6px; }
  #bots-view form .wide { grid-column: 1 / -1; }
  @media (max-width: 700px) { #bots-view form { grid-template-columns: 1fr; } #bots-view table { font-size: .8rem; } }
  .status-running { color: #1a7f37; font-weight: 600; }
  .status-error { color: #b42318; font-weight: 600; }
  #bot-turns li { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .4rem .7rem; margin: .3rem 0; white-space: pre-wrap; }
  #bot-turns .who { color: var(--muted); font-size: .8rem; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<main>
  <h1>Ask the knowledge base</h1>
  <form id="ask">
    <input id="question" type="search" name="q" placeholder="Type a question…" autocomplete="off" required maxlength="2000">
    <select id="collection" name="collection" aria-label="Collection"></select>
    <button class="primary" id="submit" type="submit">Search</button>
  </form>
  <div class="modes">
    <label><input type="radio" name="mode" value="search" checked> Search</label>
    <label><input type="radio" name="mode" value="chat"> Chat</label>
    <label><input type="radio" name="mode" value="bots"> Bots</label>
    <button type="button" id="new-chat" hidden>New conversation</button>
  </div>
  <div id="panel" aria-live="polite"></div>
  <div id="status" role="status"></div>
  <div class="layout" id="search-view">
    <aside id="filters" aria-label="Filters"></aside>
    <div>
      <ol id="results"></ol>
      <button type="button" id="more" hidden>More results</button>
    </div>
  </div>
  <ol id="chat" hidden></ol>
  <section id="bots-view" hidden aria-label="Bots">
    <p id="bots-status" role="status"></p>
    <table>
      <thead><tr><th>Bot</th><th>Collection</th><th>Status</th><th>Answered</th><th>Data seq.</th><th>Actions</th></tr></thead>
      <tbody id="bots-list"></tbody>
    </table>
    <form id="bot-form">
      <strong class="wide" id="bot-form-title">Add a bot</strong>
      <label>Name <input id="bot-name" required maxlength="100" autocomplete="off"></label>
      <label>Platform <select id="bot-platform"><option value="telegram">Telegram</option><option value="discord">Discord</option></select></label>
      <label>Token (kept sealed, never shown again) <input id="bot-token" type="password" autocomplete="off"></label>
      <label>Collection <select id="bot-collection"></select></label>
      <label>Answer style <select id="bot-style"><option value="extractive">Extractive</option><option value="llm">LLM</option></select></label>
      <label class="wide">System prompt <textarea id="bot-prompt" rows="2" maxlength="4000"></textarea></label>
      <div class="wide"><button class="primary" type="submit" id="bot-save">Add bot</button>
        <button type="button" id="bot-cancel" hidden>Cancel edit</button></div>
    </form>
    <h2 id="bot-turns-title" hidden></h2>
    <ol id="bot-turns"></ol>
  </section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const text = (tag, value, cls) => { const e = document.createElement(tag); e.textContent = value; if (cls) e.className = cls; return e; };

async function loadCollections() {
  try {
    const response = await fetch("/v1/collections");
    const list = await response.json();
    const select = $("collection");
    select.replaceChildren();
    for (const c of list) {
      const option = text("option", `${c.name} (${c.count})`);
      option.value = c.name;
      select.appendChild(option);
    }
    if (!list.length) $("status").textContent = "No collections yet.";
  } catch (e) { $("status").textContent = "Cannot reach the search API."; }
}

async function rate(collection, query, id, rating, holder) {
  const response = await fetch("/v1/feedback", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({collection, query, result_id: id, rating})
  });
  holder.replaceChildren(text("span", response.status === 201 ? "Thanks for the feedback" : "Feedback not saved", "done"));
}

const mode = () => document.querySelector("input[name=mode]:checked").value;
const chatKey = () => `sextant-chat:${$("collection").value}`;
const loadTurns = () => { try { return JSON.parse(sessionStorage.getItem(chatKey()) || "[]"); } catch (e) { return []; } };
const saveTurns = (turns) => sessionStorage.setItem(chatKey(), JSON.stringify(turns.slice(-40)));

function renderChat() {
  const list = $("chat");
  list.replaceChildren();
  for (const turn of loadTurns()) {
    const item = text("li", turn.text, `turn ${turn.role}`);
    if (turn.sources && turn.sources.length) {
      const sources = document.createElement("div");
      sources.className = "sources";
      sources.append("Sources: ");
      turn.sources.forEach((s, i) => {
        const label = `${i + 1}. ${s.title || s.id}`;
        if (s.url) { const a = text("a", label); a.href = s.url; a.target = "_blank"; a.rel = "noopener"; sources.appendChild(a); }
        else sources.appendChild(text("span", label + " "));
      });
      item.appendChild(sources);
    }
    list.appendChild(item);
  }
}

function applyMode() {
  const chat = mode() === "chat", bots = mode() === "bots";
  $("search-view").hidden = chat || bots;
  $("chat").hidden = !chat;
  $("new-chat").hidden = !chat;
  $("bots-view").hidden = !bots;
  $("ask").hidden = bots;
  $("submit").textContent = chat ? "Ask" : "Search";
  $("status").textContent = "";
  if (chat) renderChat();
  if (bots) loadBots();
}

// Bots: every call carries the API key when the API wants one (asked once, kept for the session).
let editingBot = null;
async function botsFetch(path, options = {}) {
  const headers = Object.assign({"Content-Type": "application/json"}, options.headers || {});
  const key = sessionStorage.getItem("sextant-api-key");
  if (key) headers["Authorization"] = `Bearer ${key}`;
  let response = await fetch(path, Object.assign({}, options, {headers}));
  if (response.status === 401) {
    const entered = prompt("This server's API key, to manage bots:");
    if (!entered) return response;
    sessionStorage.setItem("sextant-api-key", entered);
    headers["Authorization"] = `Bearer ${entered}`;
    response = await fetch(path, Object.assign({}, options, {headers}));
  }
  return response;
}

async function botsError(response) {
  try { const body = await response.json(); return (body.error && (body.error.message || body.error)) || body.message || response.statusText; }
  catch (e) { return response.statusText; }
}

// `message`, when given, says what just happened in place of the count.
async function loadBots(message) {
  const response = await botsFetch("/v1/bots");
  const list = $("bots-list");
  list.replaceChildren();
  const options = [...$("collection").options].map((o) => o.value);
  $("bot-collection").replaceChildren(...options.map((name) => { const o = text("option", name); o.value = name; return o; }));
  if (!response.ok) { $("bots-status").textContent = await botsError(response); return; }
  const bots = await response.json();
  $("bots-status").textContent = message
    || (bots.length ? `${bots.length} bot${bots.length === 1 ? "" : "s"}` : "No bots yet: add one below.");
  for (const bot of bots) {
    const row = document.createElement("tr");
    row.dataset.bot = bot.name;
    row.append(text("td", `${bot.name} (${bot.platform})`), text("td", bot.collection));
    const status = text("td", bot.status, bot.last_error ? "status-error" : bot.status === "running" ? "status-running" : "");
    if (bot.last_error) status.appendChild(text("div", bot.last_error, "meta"));
    row.append(status, text("td", String(bot.messages_answered)), text("td", String(bot.data_sequence)));
    const actions = document.createElement("td");
    actions.className = "actions";
    const action = (label, handler) => { const b = text("button", label); b.type = "button"; b.dataset.action = label.toLowerCase(); b.addEventListener("click", handler); actions.appendChild(b); };
    if (bot.enabled) action("Stop", () => botAction(bot, "stop")); else action("Start", () => botAction(bot, "start"));
    action("Edit", () => editBot(bot));
    action("Conversations", () => showTurns(bot));
    action("Remove", async () => {
      if (!confirm(`Remove ${bot.name}? Its conversations go with it.`)) return;
      const r = await botsFetch(`/v1/bots/${bot.id}`, {method: "DELETE"});
      if (r.ok) loadBots(`${bot.name} removed.`); else $("bots-status").textContent = await botsError(r);
    });
    row.appendChild(actions);
    list.appendChild(row);
  }
}

async function botAction(bot, verb) {
  const response = await botsFetch(`/v1/bots/${bot.id}/${verb}`, {method: "POST"});
  if (response.ok) loadBots(`${bot.name}: ${verb === "stop" ? "stopped" : "started"}.`);
  else $("bots-status").textContent = await botsError(response);
}

function editBot(bot) {
  editingBot = bot;
  $("bot-form-title").textContent = `Edit ${bot.name}`;
  $("bot-save").textContent = "Save";
  $("bot-cancel").hidden = false;
  $("bot-name").value = bot.name;
  $("bot-platform").value = bot.platform;
  $("bot-platform").disabled = true;
  $("bot-token").value = "";
  $("bot-token").placeholder = "unchanged unless typed";
  $("bot-collection").value = bot.collection;
  $("bot-style").value = bot.answer_style;
  $("bot-prompt").value = bot.system_prompt;
}

function resetBotForm() {
  editingBot = null;
  $("bot-form").reset();
  $("bot-platform").disabled = false;
  $("bot-token").placeholder = "";
  $("bot-form-title").textContent = "Add a bot";
  $("bot-save").textContent = "Add bot";
  $("bot-cancel").hidden = true;
}
$("bot-cancel").addEventListener("click", resetBotForm);

$("bot-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const settings = {name: $("bot-name").value.trim(), collection: $("bot-collection").value, answer_style: $("bot-style").value,
                    system_prompt: $("bot-prompt").value};
  const token = $("bot-token").value.trim();
  if (token) settings.token = token;
  let response;
  if (editingBot) {
    response = await botsFetch(`/v1/bots/${editingBot.id}`, {method: "PATCH", body: JSON.stringify(settings)});
  } else {
    if (!token) { $("bots-status").textContent = "A new bot needs its token."; return; }
    settings.platform = $("bot-platform").value;
    response = await botsFetch("/v1/bots", {method: "POST", body: JSON.stringify(settings)});
  }
  $("bot-token").value = "";  // typed once: never kept in the page
  if (response.ok) { resetBotForm(); loadBots(`${settings.name} saved.`); }
  else $("bots-status").textContent = await botsError(response);
});

async function showTurns(bot) {
  const response = await botsFetch(`/v1/bots/${bot.id}/conversations?limit=50`);
  const list = $("bot-turns");
  list.replaceChildren();
  $("bot-turns-title").hidden = false;
  $("bot-turns-title").textContent = `Recent conversations of ${bot.name}`;
  if (!response.ok) { $("bots-status").textContent = await botsError(response); return; }
  const turns = await response.json();
  if (!turns.length) list.appendChild(text("li", "Nothing yet."));
  for (const turn of turns) {
    const item = document.createElement("li");
    item.className = `bot-turn ${turn.role}`;
    item.append(text("div", `${turn.role === "user" ? "user" : bot.name} in chat ${turn.chat}, ${new Date(turn.at * 1000).toLocaleString()}`, "who"),
                text("div", turn.text));
    list.appendChild(item);
  }
}
for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", applyMode);
$("collection").addEventListener("change", () => { if (mode() === "chat") renderChat(); });
$("new-chat").addEventListener("click", () => { sessionStorage.removeItem(chatKey()); renderChat(); });

async function chat(message, collection) {
  const turns = loadTurns();
  const history = turns.slice(-12).map((t) => ({role: t.role, text: t.text.slice(0, 4000)}));
  turns.push({role: "user", text: message});
  saveTurns(turns);
  renderChat();
  $("status").textContent = "Thinking…";
  const response = await fetch(`/v1/collections/${encodeURIComponent(collection)}/chat`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({message, history})
  });
  const body = await response.json();
  if (!response.ok) { $("status").textContent = body.error ? body.error.message : "No answer."; return; }
  turns.push({role: "assistant", text: body.answer, sources: body.sources});
  saveTurns(turns);
  renderChat();
  $("status").textContent = `answered in ${body.took_ms.toFixed(1)} ms`;
  $("question").value = "";
}

// Search state, mirrored in the URL so a search can be bookmarked and shared:
// ?c=collection&q=query&k=results&f={"field": {"in": [...]} | {"min": n, "max": n}}
const search = {collection: "", query: "", k: 8, filters: {}};
const maximumK = 96;

function whereClause() {
  const clauses = [];
  for (const [field, f] of Object.entries(search.filters)) {
    if (f.in && f.in.length) clauses.push({[field]: {"$in": f.in}});
    if (typeof f.min === "number") clauses.push({[field]: {"$gte": f.min}});
    if (typeof f.max === "number") clauses.push({[field]: {"$lte": f.max}});
  }
  return clauses.length === 0 ? null : clauses.length === 1 ? clauses[0] : {"$and": clauses};
}

function saveURL() {
  const params = new URLSearchParams();
  params.set("c", search.collection);
  params.set("q", search.query);
  if (search.k !== 8) params.set("k", String(search.k));
  if (Object.keys(search.filters).length) params.set("f", JSON.stringify(search.filters));
  history.replaceState(null, "", "?" + params.toString());
}

function readURL() {
  const params = new URLSearchParams(location.search);
  search.collection = params.get("c") || "";
  search.query = params.get("q") || "";
  search.k = Math.min(maximumK, Math.max(1, parseInt(params.get("k") || "8", 10) || 8));
  try { search.filters = JSON.parse(params.get("f") || "{}") || {}; } catch (e) { search.filters = {}; }
}

const stopWords = new Set(["the", "and", "for", "with", "that", "this", "from", "are", "was", "how", "what", "can", "you", "not"]);
// The query's words, marked where they start a word of the text (case-insensitive).
function highlighted(tag, value, cls, query) {
  const e = text(tag, "", cls);
  const words = [...new Set(query.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 2 && !stopWords.has(w)))];
  if (!words.length) { e.textContent = value; return e; }
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const parts = value.split(new RegExp(`(?<![\\p{L}\\p{N}])(${escaped.join("|")})`, "giu"));
  parts.forEach((part, i) => e.appendChild(i % 2 ? text("mark", part) : document.createTextNode(part)));
  return e;
}

function metadataTable(metadata) {
  const table = document.createElement("table");
  table.className = "meta";
  for (const [k, v] of Object.entries(metadata || {})) {
    if (k.startsWith("sextant:") || (k.endsWith("_text") && (k.slice(0, -5) in metadata))) continue;
    const row = document.createElement("tr");
    const shown = metadata[k + "_text"] !== undefined ? metadata[k + "_text"] : (typeof v === "object" ? JSON.stringify(v) : String(v));
    row.append(text("th", k), text("td", shown));
    table.appendChild(row);
  }
  return table;
}

// Filters from the collection's metadata, counted within the current search's
// other filters: the most common values of low-cardinality fields, and a range
// for numbers (dates, stored as seconds beside their text, get date inputs).
async function renderFilters(fields, isDate) {
  const box = $("filters");
  const where = whereClause();
  const views = [];
  for (const field of fields) {
    const params = new URLSearchParams({field, limit: "8"});
    if (where) params.set("where", JSON.stringify(where));
    const response = await fetch(`/v1/collections/${encodeURIComponent(search.collection)}/facets?${params}`);
    if (!response.ok) continue;
    const facet = await response.json();
    const chosen = search.filters[field] || {};
    const set = document.createElement("fieldset");
    set.dataset.field = field;
    set.appendChild(text("legend", field));
    const covered = facet.values.reduce((n, v) => n + v.count, 0);
    if (facet.values.length && (covered * 2 >= facet.matched || (chosen.in || []).length)) {
      for (const v of facet.values) {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = JSON.stringify(v.value);
        box.checked = (chosen.in || []).some((x) => JSON.stringify(x) === box.value);
        box.addEventListener("change", () => toggleValue(field, v.value, box.checked));
        label.append(box, " ", String(v.value), " ", text("span", `(${v.count})`, "count"));
        set.appendChild(label);
      }
    } else if (facet.numbers > 0) {
      for (const bound of ["min", "max"]) {
        const label = text("label", bound === "min" ? "from " : "to ");
        const input = document.createElement("input");
        input.dataset.bound = bound;
        const date = isDate(field);
        input.type = date ? "date" : "number";
        const value = chosen[bound];
        if (date) input.value = typeof value === "number" ? new Date(value * 1000).toISOString().slice(0, 10) : "";
        else { input.placeholder = String(bound === "min" ? facet.minimum : facet.maximum); if (typeof value === "number") input.value = String(value); }
        input.addEventListener("change", () => setBound(field, bound, input.value, date));
        label.appendChild(input);
        set.appendChild(label);
      }
    } else continue;
    views.push(set);
  }
  box.replaceChildren(...views);
}

function toggleValue(field, value, on) {
  const f = search.filters[field] || {};
  const list = (f.in || []).filter((x) => JSON.stringify(x) !== JSON.stringify(value));
  if (on) list.push(value);
  f.in = list;
  if (!list.length) delete f.in;
  if (Object.keys(f).length) search.filters[field] = f; else delete search.filters[field];
  search.k = 8;
  runSearch();
}

function setBound(field, bound, raw, date) {
  const f = search.filters[field] || {};
  const value = raw === "" ? NaN : date ? Date.parse(raw + (bound === "max" ? "T23:59:59Z" : "T00:00:00Z")) / 1000 : Number(raw);
  if (Number.isFinite(value)) f[bound] = value; else delete f[bound];
  if (Object.keys(f).length) search.filters[field] = f; else delete search.filters[field];
  search.k = 8;
  runSearch();
}

function formatSeconds(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

async function refreshPanel() {
  try {
    const [list, ready, ingest] = await Promise.all([
      fetch("/v1/collections").then((r) => r.json()), fetch("/readyz"),
      fetch("/v1/ingest/runs?limit=1").then((r) => r.ok ? r.json() : {runs: [], failed_files: [], scrapes: []})]);
    const current = list.find((c) => c.name === $("collection").value);
    const parts = [];
    if (current) parts.push(`${current.count.toLocaleString()} records in ${current.name}`);
    parts.push(ready.ok ? "engine ready" : "engine not ready");
    for (const file of ingest.running || []) {
      const rows = file.rows_estimated ? `${file.rows_done.toLocaleString()} of about ${file.rows_estimated.toLocaleString()} rows`
        : `${file.rows_done.toLocaleString()} rows`;
      const percent = file.fraction !== undefined ? ` (${Math.floor(file.fraction * 100)}%)` : "";
      const left = file.seconds_left !== undefined ? `, about ${formatSeconds(file.seconds_left)} left` : "";
      parts.push(`ingesting ${file.name}: ${rows}${percent}, ${file.rows_per_second.toLocaleString()} rows/s${left}`);
    }
    const run = ingest.runs[0];
    if (run) {
      const when = new Date(run.finished_at * 1000).toLocaleString();
      parts.push(`last ingest ${when}: ${run.files} files, ${run.rows_ingested} rows, ${run.rows_quarantined} quarantined`);
    }
    if (ingest.failed_files.length) parts.push(`not ingested: ${ingest.failed_files[0].name} (${ingest.failed_files[0].error})`);
    const scrape = (ingest.scrapes || [])[0];
    if (scrape && scrape.finished_at) parts.push(`last scrape of ${scrape.site} ${new Date(scrape.finished_at * 1000).toLocaleString()}`);
    $("panel").textContent = parts.join(" · ");
    schedulePanel((ingest.running || []).length ? 2000 : 30000);
  } catch (e) {
    $("panel").textContent = "Cannot reach the search API.";
    schedulePanel(30000);
  }
}

// The panel follows a running ingest every two seconds, and looks for one every thirty.
let panelTimer = null;
function schedulePanel(milliseconds) {
  clearTimeout(panelTimer);
  panelTimer = setTimeout(refreshPanel, milliseconds);
}

async function runSearch() {
  const {collection, query} = search;
  if (!query || !collection) return;
  saveURL();
  $("status").textContent = "Searching…";
  const body = {query, k: search.k, include: ["documents", "metadatas"]};
  const where = whereClause();
  if (where) body.where = where;
  const response = await fetch(`/v1/collections/${encodeURIComponent(collection)}/search`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
  });
  const reply = await response.json();
  $("results").replaceChildren();
  if (!response.ok) { $("status").textContent = reply.error ? reply.error.message : "Search failed."; $("more").hidden = true; return; }
  $("status").textContent = `${reply.results.length} results in ${reply.took_ms.toFixed(1)} ms`;
  const fields = new Set(Object.keys(search.filters));
  const dates = new Set();
  for (const r of reply.results) {
    const item = document.createElement("li");
    item.className = "result";
    item.dataset.id = r.id;
    const head = document.createElement("div");
    head.className = "head";
    head.append(text("span", r.id, "id"), text("span", `score ${r.score.toFixed(3)}`, "score"));
    const rateBox = document.createElement("div");
    rateBox.className = "rate";
    const up = text("button", "▲ Helpful"); up.type = "button"; up.dataset.rating = "1";
    const down = text("button", "▼ Not helpful"); down.type = "button"; down.dataset.rating = "-1";
    up.onclick = () => rate(collection, query, r.id, 1, rateBox);
    down.onclick = () => rate(collection, query, r.id, -1, rateBox);
    rateBox.append(up, " ", down);
    item.append(head, highlighted("div", r.document || "", "doc", query), metadataTable(r.metadata), rateBox);
    $("results").appendChild(item);
    for (const [k, v] of Object.entries(r.metadata || {})) {
      if (k.startsWith("sextant:") || typeof v === "object") continue;
      if (k.endsWith("_text") && (k.slice(0, -5) in r.metadata)) { dates.add(k.slice(0, -5)); continue; }
      fields.add(k);
    }
  }
  $("more").hidden = reply.results.length < search.k || search.k >= maximumK;
  await renderFilters([...fields].sort().slice(0, 12), (field) => dates.has(field));
}

$("more").addEventListener("click", () => { search.k = Math.min(maximumK, search.k + 8); runSearch(); });

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("question").value.trim();
  const collection = $("collection").value;
  if (!query || !collection) return;
  if (mode() === "chat") { await chat(query, collection); return; }
  if (collection !== search.collection) search.filters = {};
  Object.assign(search, {collection, query, k: 8});
  await runSearch();
});

$("collection").addEventListener("change", refreshPanel);

async function start() {
  readURL();
  await loadCollections();
  if (search.collection) $("collection").value = search.collection;
  refreshPanel();
  if (search.query && search.collection) {
    $("question").value = search.query;
    await runSearch();
  }
}
start();
</script>
</body>
</html>
"""#
}
