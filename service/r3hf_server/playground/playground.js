// R3HF playground: calls POST /token_rewards on this server and draws what it returns. No libraries, no network
// beyond this origin. URLs are relative so the page also works behind a path prefix.
"use strict";

const API = "token_rewards";
const DEFAULT_CURVE_OPTIONS = { redistribution: "r3hf", beta: 1, baseline: "prompt" };
const POSITIVE = [33, 102, 172];  // blue: colour-blind safe against the red
const NEGATIVE = [178, 24, 43];
const $ = (id) => document.getElementById(id);

const state = { mode: "text", messages: [
  { role: "user", content: "How was your day?" },
  { role: "assistant", content: "It was wonderful, although the traffic was awful." },
] };

// ---- inputs -------------------------------------------------------------------------------------------------

function setMode(mode) {
  state.mode = mode;
  $("text-inputs").hidden = mode !== "text";
  $("chat-inputs").hidden = mode !== "chat";
  for (const [id, m] of [["mode-text", "text"], ["mode-chat", "chat"]]) {
    $(id).classList.toggle("active", m === mode);
    $(id).setAttribute("aria-selected", String(m === mode));
  }
}

function renderMessages() {
  const box = $("messages");
  box.replaceChildren();
  state.messages.forEach((message, index) => {
    const row = document.createElement("div");
    row.className = "message";
    const role = document.createElement("select");
    role.className = "message-role";
    for (const name of ["system", "user", "assistant"]) role.add(new Option(name, name, false, name === message.role));
    role.addEventListener("change", () => { message.role = role.value; });
    const content = document.createElement("textarea");
    content.className = "message-content";
    content.rows = 2;
    content.value = message.content;
    content.addEventListener("input", () => { message.content = content.value; });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => { state.messages.splice(index, 1); renderMessages(); });
    row.append(role, content, remove);
    box.append(row);
  });
}

function currentItem() {
  if (state.mode === "chat") return { messages: state.messages.map((m) => ({ role: m.role, content: m.content })) };
  return { prompt: $("prompt").value, response: $("response").value };
}

function responseText(item) {
  return item.messages ? item.messages[item.messages.length - 1].content : item.response;
}

function options() {
  return { redistribution: $("strategy").value, beta: Number($("beta").value), baseline: $("baseline").value };
}

// ---- API ----------------------------------------------------------------------------------------------------

function authHeaders(headers = {}) {
  const key = $("api-key").value.trim();
  if (key) headers.authorization = "Bearer " + key;
  return headers;
}

// The menus list what this server's OpenAPI schema offers (the option lists are defined once, in the wire models);
// a hint only adds words to a name it knows, so a new strategy appears here with no change to this page.
const HINTS = {
  r3hf: "prefix-score differences", attention: "ABC, last-layer attention", uniform: "score / T",
  sparse: "all on the last token", prompt: "first token vs R(x, ∅)", zero: "first token vs 0",
};

function fillMenu(id, field) {
  const select = $(id);
  const chosen = select.value || field.default;
  const label = (v) => (HINTS[v] ? `${v}: ${HINTS[v]}` : v);
  select.replaceChildren(...field.enum.map((v) => new Option(label(v), v, false, v === chosen)));
  select.title = field.description || "";
}

async function loadOptions() {
  const response = await fetch("openapi.json", { headers: authHeaders() });
  if (!response.ok) {  // 401 until the API key is typed, when the server has keys: say so, as a scoring call would
    const body = await response.json().catch(() => ({}));
    const reason = body.error || "could not read the options from openapi.json";
    throw new Error(`${response.status} ${body.error_type || ""}: ${reason}`);
  }
  const fields = (await response.json()).components.schemas.TokenRewardsRequest.properties;
  fillMenu("strategy", fields.redistribution);
  fillMenu("baseline", fields.baseline);
}

function loadOptionsQuietly() {  // on page load and key entry; a failure shows when the user scores
  loadOptions().catch(() => {});
}

async function tokenRewards(item, opts) {
  const headers = authHeaders({ "content-type": "application/json" });
  const response = await fetch(API, {
    method: "POST", headers, body: JSON.stringify({ items: [item], return_tokens: true, ...opts }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status} ${body.error_type || ""}: ${body.error || response.statusText}`);
  return body;
}

function isCurveRequest(opts) {
  return Object.entries(DEFAULT_CURVE_OPTIONS).every(([key, value]) => opts[key] === value);
}

async function run() {
  $("error").hidden = true;
  $("score-button").disabled = true;
  try {
    if (!$("strategy").options.length) await loadOptions();
    const item = currentItem();
    const opts = options();
    // The prefix-score curve is R(x, y<=t) = prompt score + running sum of plain r3hf rewards; any other strategy
    // needs a second request for it.
    const [shown, curve] = await Promise.all([
      tokenRewards(item, opts),
      isCurveRequest(opts) ? null : tokenRewards(item, DEFAULT_CURVE_OPTIONS),
    ]);
    render(shown, (curve || shown).results[0], responseText(item));
  } catch (error) {
    $("error").textContent = String(error.message || error);
    $("error").hidden = false;
  } finally {
    $("score-button").disabled = false;
  }
}

// ---- results ------------------------------------------------------------------------------------------------

function render(body, curveResult, response) {
  const result = body.results[0];
  const rewards = result.token_rewards;
  $("model-line").textContent = `model ${body.model} · fingerprint ${body.fingerprint}`;
  $("score").textContent = fmt(result.score);
  $("prompt-score").textContent = fmt(result.prompt_score);
  $("reward-sum").textContent = fmt(rewards.reduce((a, b) => a + b, 0));
  $("token-count").textContent = String(result.num_response_tokens);
  const prefix = prefixScores(curveResult);
  renderHeatmap(result, response, prefix);
  renderCurve(prefix, rewards);
  $("results").hidden = false;
}

function prefixScores(result) {
  const scores = [result.prompt_score];
  for (const reward of result.token_rewards) scores.push(scores[scores.length - 1] + reward);
  return scores;
}

function tokenTexts(result, response) {
  // Offsets index the response string, except when a chat template rewrote it; then show the raw tokens.
  const useOffsets = result.offsets && !result.template_changed_response;
  let cursor = 0;
  return result.token_rewards.map((_, i) => {
    if (!useOffsets) return cleanToken(result.tokens ? result.tokens[i] : `#${i}`);
    const [start, end] = result.offsets[i];
    const from = Math.max(start, cursor);  // byte-level tokens inside one character report overlapping spans
    const gap = response.slice(cursor, Math.min(from, end));
    cursor = Math.max(cursor, end);
    return gap + response.slice(from, end);
  });
}

function cleanToken(token) {
  return token.replace(/Ġ/g, " ").replace(/▁/g, " ").replace(/Ċ/g, "\n").replace(/ĉ/g, "\t");
}

function renderHeatmap(result, response, prefix) {
  const rewards = result.token_rewards;
  const scale = Math.max(1e-12, ...rewards.map(Math.abs));
  const texts = tokenTexts(result, response);
  const box = $("heatmap");
  box.replaceChildren();
  rewards.forEach((reward, i) => {
    const span = document.createElement("span");
    span.className = "tok" + (texts[i] === "" ? " empty" : "");
    span.textContent = texts[i] === "" ? "·" : texts[i];
    span.dataset.index = String(i);
    span.dataset.reward = String(reward);  // shortest round-trip form: parses back to the API's exact value
    span.dataset.prefixScore = String(prefix[i + 1]);
    if (result.tokens) span.dataset.token = result.tokens[i];
    const [background, foreground] = colours(reward / scale);
    span.style.backgroundColor = background;
    span.style.color = foreground;
    span.title = `token ${i}${result.tokens ? " " + JSON.stringify(result.tokens[i]) : ""}: reward ${fmt(reward)}`;
    span.addEventListener("mouseenter", () => hover(i, span));
    box.append(span);
  });
  $("legend-scale").textContent = `full colour at ±${scale.toFixed(4)}`;
}

function colours(signed) {
  const strength = Math.min(1, Math.abs(signed));
  const target = signed >= 0 ? POSITIVE : NEGATIVE;
  const mix = target.map((c) => Math.round(255 + (c - 255) * strength));
  return [`rgb(${mix.join(", ")})`, strength > 0.55 ? "#fff" : "#111"];
}

function hover(index, span) {
  const token = span.dataset.token !== undefined ? ` ${JSON.stringify(span.dataset.token)}` : "";
  $("hover-info").textContent =
    `token ${index}${token} · reward ${fmt(Number(span.dataset.reward))} · prefix score after it ` +
    fmt(Number(span.dataset.prefixScore));
  document.querySelectorAll("#curve circle.rm").forEach((dot) => {
    dot.classList.toggle("focus", dot.dataset.index === String(index + 1));
  });
}

// ---- chart --------------------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";  // a namespace name, never fetched

function svg(tag, attributes, parent) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  parent.append(element);
  return element;
}

function renderCurve(prefix, rewards) {
  const credit = [0];
  for (const reward of rewards) credit.push(credit[credit.length - 1] + reward);
  const chart = $("curve");
  chart.replaceChildren();
  const box = { left: 56, right: 704, top: 14, bottom: 190 };
  const values = prefix.concat(credit, [0]);
  let low = Math.min(...values), high = Math.max(...values);
  if (high - low < 1e-9) { low -= 1; high += 1; }
  const x = (i) => box.left + (prefix.length > 1 ? (i * (box.right - box.left)) / (prefix.length - 1) : 0);
  const y = (v) => box.bottom - ((v - low) * (box.bottom - box.top)) / (high - low);
  svg("line", { x1: box.left, x2: box.right, y1: y(0), y2: y(0), class: "zero" }, chart);
  for (const v of [low, 0, high]) {
    svg("text", { x: box.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, chart).textContent = fmt(v, 2);
  }
  svg("text", { x: box.left, y: 210, class: "tick" }, chart).textContent = "prompt";
  svg("text", { x: box.right, y: 210, "text-anchor": "end", class: "tick" }, chart).textContent =
    `token ${rewards.length}`;
  const line = (series, cls) => svg("polyline", {
    points: series.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "), class: cls,
  }, chart);
  line(credit, "credit");
  line(prefix, "rm");
  prefix.forEach((v, i) => {
    const dot = svg("circle", { cx: x(i), cy: y(v), r: 3, class: "rm", "data-index": i }, chart);
    svg("title", {}, dot).textContent = i === 0 ? `prompt score ${fmt(v)}` : `after token ${i - 1}: ${fmt(v)}`;
  });
}

function fmt(value, digits = 4) {
  return (value >= 0 ? "+" : "") + value.toFixed(digits);
}

// ---- wiring -------------------------------------------------------------------------------------------------

function rerunIfShown() {
  if (!$("results").hidden) run();
}

$("mode-text").addEventListener("click", () => setMode("text"));
$("mode-chat").addEventListener("click", () => setMode("chat"));
$("add-message").addEventListener("click", () => {
  const last = state.messages[state.messages.length - 1];
  state.messages.push({ role: last && last.role === "user" ? "assistant" : "user", content: "" });
  renderMessages();
});
$("score-button").addEventListener("click", run);
$("beta").addEventListener("input", () => { $("beta-value").textContent = Number($("beta").value).toFixed(2); });
for (const id of ["beta", "strategy", "baseline"]) $(id).addEventListener("change", rerunIfShown);
$("api-key").addEventListener("change", () => { if (!$("strategy").options.length) loadOptionsQuietly(); });
renderMessages();
loadOptionsQuietly();
