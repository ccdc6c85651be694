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
/// history, so the API stays stateless.
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
  const chat = mode() === "chat";
  $("search-view").hidden = chat;
  $("chat").hidden = !chat;
  $("new-chat").hidden = !chat;
  $("submit").textContent = chat ? "Ask" : "Search";
  $("status").textContent = "";
  if (chat) renderChat();
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
