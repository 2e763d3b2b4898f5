// Conversations, kept in this browser (localStorage), and their exports (JSON, Markdown).
// Every change reads the stored list again and replaces one conversation in it, so two tabs
// only overwrite each other when they change the same conversation.

const KEY = "mlxcli.conversations";
export const FORMAT = "mlxcli.ui.conversation";

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12)); // randomUUID needs a secure context
  return "chat_" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function now() {
  return Date.now() / 1000;
}

export function load() {
  const raw = localStorage.getItem(KEY);
  if (raw === null) return [];
  try {
    const list = JSON.parse(raw);
    if (Array.isArray(list)) return list.filter((c) => c && typeof c.id === "string" && Array.isArray(c.messages));
  } catch {
    // fall through: never overwrite what we cannot read
  }
  localStorage.setItem(`${KEY}.unreadable-${Date.now()}`, raw);
  localStorage.removeItem(KEY);
  return [];
}

function write(list) {
  localStorage.setItem(KEY, JSON.stringify(list)); // throws when the browser's quota is full
}

export function sorted(list) {
  return [...list].sort((a, b) => b.updated_at - a.updated_at);
}

export function create(system = "") {
  const t = now();
  return { id: newId(), title: "New chat", system, created_at: t, updated_at: t, messages: [] };
}

export function put(conversation) {
  const list = load().filter((c) => c.id !== conversation.id);
  write([...list, conversation]);
}

export function remove(id) {
  write(load().filter((c) => c.id !== id));
}

export function toJSON(conversation) {
  return JSON.stringify({ format: FORMAT, version: 1, ...conversation }, null, 2) + "\n";
}

function stats(message) {
  const parts = [];
  if (message.usage) parts.push(`${message.usage.completion_tokens} tokens`);
  if (message.tokens_per_second) parts.push(`${message.tokens_per_second.toFixed(1)} tok/s`);
  if (message.stopped) parts.push("stopped");
  if (message.error) parts.push(`error: ${message.error}`);
  return parts.join(" · ");
}

export function toMarkdown(conversation) {
  const out = [`# ${conversation.title}`, ""];
  out.push(`_Exported from mlxcli on ${new Date().toISOString()}_`, "");
  if (conversation.system) out.push("**System prompt:**", "", conversation.system, "");
  for (const message of conversation.messages) {
    if (message.role === "user") {
      out.push("## You", "", message.content, "");
      continue;
    }
    out.push(`## Assistant${message.model ? ` (${message.model})` : ""}`, "");
    if (message.reasoning) out.push(...message.reasoning.split("\n").map((line) => "> " + line), "");
    out.push(message.image ? `![${message.prompt || "generated image"}](${message.image})` : message.content, "");
    const line = stats(message);
    if (line) out.push(`_${line}_`, "");
  }
  return out.join("\n");
}

export function fileName(conversation, extension) {
  const slug = conversation.title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
  return `${slug || "conversation"}.${extension}`;
}

export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
