/// The Q&A page served at `/`: one self-contained HTML document (no build
/// step, no framework, nothing fetched from elsewhere). In search mode a
/// question goes to the native search route; results show their document,
/// metadata and score, and each can be rated, which lands in the feedback
/// store. In chat mode the chat route answers (the bots' composer), and the
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
  <div id="status" role="status"></div>
  <ol id="results"></ol>
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
  $("results").hidden = chat;
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

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("question").value.trim();
  const collection = $("collection").value;
  if (!query || !collection) return;
  if (mode() === "chat") { await chat(query, collection); return; }
  $("status").textContent = "Searching…";
  $("results").replaceChildren();
  const response = await fetch(`/v1/collections/${encodeURIComponent(collection)}/search`, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({query, k: 8, include: ["documents", "metadatas"]})
  });
  const body = await response.json();
  if (!response.ok) { $("status").textContent = body.error ? body.error.message : "Search failed."; return; }
  $("status").textContent = `${body.results.length} results in ${body.took_ms.toFixed(1)} ms`;
  for (const r of body.results) {
    const item = document.createElement("li");
    item.className = "result";
    item.dataset.id = r.id;
    const head = document.createElement("div");
    head.className = "head";
    head.append(text("span", r.id, "id"), text("span", `score ${r.score.toFixed(3)}`, "score"));
    const meta = document.createElement("div");
    meta.className = "meta";
    for (const [k, v] of Object.entries(r.metadata || {})) if (!k.startsWith("sextant:")) meta.appendChild(text("span", `${k}: ${v}`));
    const rateBox = document.createElement("div");
    rateBox.className = "rate";
    const up = text("button", "▲ Helpful"); up.type = "button"; up.dataset.rating = "1";
    const down = text("button", "▼ Not helpful"); down.type = "button"; down.dataset.rating = "-1";
    up.onclick = () => rate(collection, query, r.id, 1, rateBox);
    down.onclick = () => rate(collection, query, r.id, -1, rateBox);
    rateBox.append(up, " ", down);
    item.append(head, text("div", r.document || "", "doc"), meta, rateBox);
    $("results").appendChild(item);
  }
});
loadCollections();
</script>
</body>
</html>
"""#
}
