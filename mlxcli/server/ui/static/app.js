// The chat page: conversations in the sidebar, the open one in the middle, answers streamed from
// the server's Chat Completions API. Every piece of model text reaches the page through text
// nodes (markdown.js builds elements, never HTML).

import { generateImage, listModels, streamChat } from "/ui/api.js";
import * as store from "/ui/conversations.js";
import { askKey, withKey } from "/ui/key.js";
import { imageStats, picture } from "/ui/images.js";
import { render } from "/ui/markdown.js";

const PREFS_STORE = "mlxcli.prefs";
const $ = (id) => document.getElementById(id);

const state = {
  conversations: store.load(),
  current: null, // the open conversation
  controller: null, // aborts the answer streaming now
  prefs: readPrefs(),
  kinds: {}, // model id → "chat" or "image" (an image model answers with an image)
};

function readPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_STORE)) || {};
  } catch {
    return {};
  }
}

function savePrefs() {
  localStorage.setItem(PREFS_STORE, JSON.stringify(state.prefs));
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function persist(conversation) {
  conversation.updated_at = store.now();
  try {
    store.put(conversation);
  } catch (err) {
    status(`Could not save the conversation in this browser: ${err.message}`, true);
  }
  state.conversations = store.load();
  renderSidebar();
}

// ---- models --------------------------------------------------------------------

async function loadModels() {
  try {
    const models = await withKey((key) => listModels(key));
    state.kinds = Object.fromEntries(models.map((m) => [m.id, m.kind]));
    const select = $("model");
    select.replaceChildren(...models.map((m) => new Option(m.kind === "image" ? `${m.id} (image)` : m.id, m.id)));
    if (models.some((m) => m.id === state.prefs.model)) select.value = state.prefs.model;
    showKind();
    status("");
  } catch (err) {
    status(`Cannot list the models: ${err.message}`, true);
  }
}

function showKind() {
  const image = state.kinds[$("model").value] === "image";
  $("size-label").hidden = !image;
  $("input").placeholder = image ? "Describe the image to generate (Enter sends)" : "Message (Enter sends, Shift+Enter: new line)";
}

// ---- the sidebar ---------------------------------------------------------------

function renderSidebar() {
  const list = $("conversations");
  list.replaceChildren(
    ...store.sorted(state.conversations).map((conversation) => {
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open";
      open.textContent = conversation.title;
      open.title = conversation.title;
      open.addEventListener("click", () => openConversation(conversation.id));
      const rename = button("✎", "Rename", "rename", () => startRename(item, conversation));
      const remove = button("✕", "Delete", "delete", () => deleteConversation(conversation));
      const item = document.createElement("li");
      item.dataset.id = conversation.id;
      item.classList.toggle("current", conversation.id === state.current?.id);
      item.append(open, rename, remove);
      return item;
    }),
  );
}

function button(symbol, label, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = symbol;
  b.title = label;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function startRename(item, conversation) {
  const input = document.createElement("input");
  input.className = "rename-input";
  input.value = conversation.title;
  input.setAttribute("aria-label", "Conversation title");
  let finished = false;
  const finish = (keep) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    if (keep && title) {
      conversation.title = title;
      persist(conversation);
    } else {
      renderSidebar();
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") finish(true);
    if (event.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
  item.replaceChildren(input);
  input.focus();
  input.select();
}

function deleteConversation(conversation) {
  if (state.controller) return status("Stop the answer first.", true);
  if (!confirm(`Delete "${conversation.title}"? It is kept nowhere else.`)) return;
  store.remove(conversation.id);
  state.conversations = store.load();
  if (state.current?.id === conversation.id) {
    const next = store.sorted(state.conversations)[0];
    next ? openConversation(next.id) : newConversation();
  }
  renderSidebar();
}

// ---- conversations ---------------------------------------------------------------

function newConversation() {
  if (state.current && state.current.messages.length === 0) return $("input").focus();
  state.current = store.create($("system").value);
  renderConversation();
}

function openConversation(id) {
  if (state.controller) return status("An answer is streaming: stop it first.", true);
  const found = state.conversations.find((c) => c.id === id);
  if (!found) return;
  state.current = found;
  renderConversation();
}

function renderConversation() {
  $("system").value = state.current.system || "";
  $("messages").replaceChildren(...state.current.messages.map(messageView));
  renderSidebar();
  status("");
  $("input").focus();
}

function messageView(message) {
  const article = document.createElement("article");
  article.className = `message ${message.role}`;
  const role = document.createElement("div");
  role.className = "role";
  role.textContent = message.role === "user" ? "You" : message.model || "Assistant";
  article.append(role);
  if (message.role === "user") {
    const content = document.createElement("div");
    content.className = "content";
    content.textContent = message.content;
    article.append(content);
    return article;
  }
  const reasoning = document.createElement("details");
  reasoning.className = "reasoning";
  const summary = document.createElement("summary");
  summary.textContent = "Reasoning";
  const thoughts = document.createElement("div");
  thoughts.className = "reasoning-text";
  reasoning.append(summary, thoughts);
  const content = document.createElement("div");
  content.className = message.kind === "image" ? "content image" : "content markdown";
  const stats = document.createElement("div");
  stats.className = "stats";
  article.append(reasoning, content, stats);
  updateView(article, message);
  return article;
}

function updateView(article, message) {
  const reasoning = article.querySelector(".reasoning");
  reasoning.hidden = !message.reasoning;
  reasoning.querySelector(".reasoning-text").textContent = message.reasoning || "";
  article.querySelector(".content").replaceChildren(message.kind === "image" ? picture(message) : render(message.content));
  article.querySelector(".stats").textContent = statsLine(message);
  article.dataset.state = message.state;
}

function statsLine(message) {
  if (message.state === "streaming") return "…";
  if (message.kind === "image") return imageStats(message);
  const parts = [];
  const usage = message.usage;
  if (usage) {
    const cached = usage.prompt_tokens_details?.cached_tokens;
    parts.push(`${usage.completion_tokens} tokens`);
    if (message.tokens_per_second) parts.push(`${message.tokens_per_second.toFixed(1)} tok/s`);
    if (message.ttft_s !== undefined) parts.push(`${message.ttft_s.toFixed(2)} s to first token`);
    parts.push(`prompt ${usage.prompt_tokens} tokens${cached ? ` (${cached} cached)` : ""}`);
  }
  if (message.finish_reason === "length") parts.push("cut off at max tokens");
  if (message.stopped) parts.push("stopped");
  if (message.error) parts.push(`error: ${message.error}`);
  return parts.join(" · ");
}

// ---- sending -----------------------------------------------------------------------

function requestBody(conversation, model) {
  const messages = [];
  if (conversation.system) messages.push({ role: "system", content: conversation.system });
  conversation.messages.forEach((m, i) => {
    const failed = m.error || conversation.messages[i + 1]?.error; // a failed exchange: as if never asked
    if (!failed && m.state !== "streaming" && m.kind !== "image") messages.push({ role: m.role, content: m.content });
  });
  const body = { model, messages };
  const temperature = parseFloat($("temperature").value);
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (Number.isFinite(temperature)) body.temperature = temperature;
  if (Number.isFinite(maxTokens) && maxTokens > 0) body.max_tokens = maxTokens;
  return body;
}

async function send(text) {
  const conversation = state.current;
  const model = $("model").value;
  if (!model) return status("No model to ask: is the server reachable?", true);
  if (state.kinds[model] === "image") return sendImage(conversation, model, text);
  conversation.messages.push({ role: "user", content: text, created_at: store.now() });
  if (conversation.title === "New chat") conversation.title = text.replace(/\s+/g, " ").trim().slice(0, 60) || "New chat";
  const answer = { role: "assistant", model, content: "", reasoning: "", state: "streaming", created_at: store.now() };
  const body = requestBody(conversation, model);
  conversation.messages.push(answer);
  persist(conversation);
  $("messages").append(messageView({ role: "user", content: text }));
  const view = messageView(answer);
  $("messages").append(view);
  view.scrollIntoView({ block: "end" });

  state.controller = new AbortController();
  setStreaming(true);
  const started = performance.now();
  let first = null;
  let last = null;
  let pending = false;
  const redraw = () => {
    pending = false;
    const list = $("messages");
    const following = list.scrollHeight - list.scrollTop - list.clientHeight < 60; // not if the reader scrolled up
    updateView(view, answer);
    if (following) view.scrollIntoView({ block: "end" });
  };
  try {
    const result = await withKey((key) =>
      streamChat(body, key, state.controller.signal, (delta) => {
        last = performance.now();
        first ??= last;
        answer.content += delta.content;
        answer.reasoning += delta.reasoning;
        if (!pending) {
          pending = true;
          requestAnimationFrame(redraw);
        }
      }),
    );
    answer.usage = result.usage;
    answer.finish_reason = result.finishReason;
    answer.ttft_s = ((first ?? performance.now()) - started) / 1000;
    const tokens = result.usage?.completion_tokens || 0;
    if (tokens > 1 && last > first) answer.tokens_per_second = (tokens - 1) / ((last - first) / 1000);
  } catch (err) {
    if (err.name === "AbortError") answer.stopped = true;
    else answer.error = err.message;
  } finally {
    answer.state = answer.error ? "error" : answer.stopped ? "stopped" : "done";
    state.controller = null;
    setStreaming(false);
    updateView(view, answer);
    persist(conversation);
  }
}

// An image model answers with one image (Stop cancels it on the server); requestBody leaves both out.
async function sendImage(conversation, model, prompt) {
  const answer = { role: "assistant", kind: "image", model, prompt, content: "", state: "streaming", created_at: store.now() };
  conversation.messages.push({ role: "user", kind: "image", content: prompt, created_at: store.now() }, answer);
  if (conversation.title === "New chat") conversation.title = prompt.replace(/\s+/g, " ").trim().slice(0, 60);
  persist(conversation);
  $("messages").append(messageView({ role: "user", content: prompt }));
  const view = messageView(answer);
  $("messages").append(view);
  state.controller = new AbortController();
  setStreaming(true);
  const started = performance.now();
  try {
    const image = await withKey((key) => generateImage(model, prompt, $("size").value, key, state.controller.signal));
    Object.assign(answer, { image: image.url, size: image.size, seconds: (performance.now() - started) / 1000 });
  } catch (err) {
    if (err.name === "AbortError") answer.stopped = true;
    else answer.error = err.message;
  } finally {
    answer.state = answer.error ? "error" : answer.stopped ? "stopped" : "done";
    state.controller = null;
    setStreaming(false);
    updateView(view, answer);
    persist(conversation);
  }
}

function setStreaming(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
}

// ---- wiring ------------------------------------------------------------------------

function init() {
  if (state.prefs.temperature !== undefined) $("temperature").value = state.prefs.temperature;
  if (state.prefs.max_tokens !== undefined) $("max-tokens").value = state.prefs.max_tokens;
  // An answer cut off by a closed tab is what arrived: say so rather than keep it "streaming".
  for (const c of state.conversations) {
    for (const m of c.messages) if (m.state === "streaming") Object.assign(m, { state: "stopped", stopped: true });
  }
  const recent = store.sorted(state.conversations)[0];
  recent ? openConversation(recent.id) : newConversation();

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("input").value.trim();
    if (!text || state.controller) return;
    $("input").value = "";
    send(text);
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("new-chat").addEventListener("click", () => (state.controller ? status("Stop the answer first.", true) : newConversation()));
  $("system-toggle").addEventListener("click", () => {
    const panel = $("system-panel");
    panel.hidden = !panel.hidden;
    $("system-toggle").setAttribute("aria-expanded", String(!panel.hidden));
  });
  $("system").addEventListener("input", () => {
    state.current.system = $("system").value;
    if (state.current.messages.length) persist(state.current);
  });
  $("model").addEventListener("change", () => {
    state.prefs.model = $("model").value;
    savePrefs();
    showKind();
  });
  for (const [id, pref] of [["temperature", "temperature"], ["max-tokens", "max_tokens"]]) {
    $(id).addEventListener("input", () => {
      if ($(id).value === "") delete state.prefs[pref];
      else state.prefs[pref] = Number($(id).value);
      savePrefs();
    });
  }
  $("export-json").addEventListener("click", () =>
    store.download(store.fileName(state.current, "json"), store.toJSON(state.current), "application/json"),
  );
  $("export-md").addEventListener("click", () =>
    store.download(store.fileName(state.current, "md"), store.toMarkdown(state.current), "text/markdown"),
  );
  $("key-button").addEventListener("click", async () => {
    if (await askKey("The API key this page sends (empty: none).")) loadModels();
  });
  window.addEventListener("storage", (event) => {
    if (event.key !== "mlxcli.conversations" || state.controller) return;
    state.conversations = store.load();
    state.current = state.conversations.find((c) => c.id === state.current?.id) || state.current;
    renderConversation();
  });
  loadModels();
}

init();
