// Markdown → DOM nodes. Never HTML: model output is untrusted, so every piece of it becomes a
// text node (or an element whose text is one); raw HTML in the answer is shown as text. Links
// keep only http(s) and mailto targets; images are shown as links (the page loads no images).
// Covers what chat models write: headings, paragraphs, lists, quotes, fenced code, tables,
// rules, and inline code, bold, italic, strike-through, links. An unclosed fence (a streaming
// answer) is a code block up to the end.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>/;
const ITEM = /^(\s*)([-*+]|(\d{1,9})[.)])\s+(.*)$/;
const BLANK = /^\s*$/;
const TABLE_RULE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

// Inline syntax, tried left to right; the first group that matched says which.
const INLINE = new RegExp(
  [
    /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/, // 1, 2: code span (literal)
    /!\[([^\]]*)\]\(([^\s)]+)(?:\s+"[^"]*")?\)/, // 3, 4: image, shown as a link
    /\[([^\]]+)\]\(([^\s)]+)(?:\s+"[^"]*")?\)/, // 5, 6: link
    /\*\*(?=\S)([\s\S]*?\S)\*\*/, // 7: bold
    /(?<![\w])__(?=\S)([\s\S]*?\S)__(?![\w])/, // 8: bold
    /\*(?=[^\s*])([\s\S]*?[^\s*])\*/, // 9: italic
    /(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])/, // 10: italic
    /~~(?=\S)([\s\S]*?\S)~~/, // 11: strike-through
    /(https?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]])/, // 12: bare URL
  ]
    .map((re) => re.source)
    .join("|"),
  "g",
);

function el(tag, ...children) {
  const node = document.createElement(tag);
  node.append(...children); // strings become text nodes
  return node;
}

export function safeUrl(href) {
  try {
    const url = new URL(href, "https://invalid.example/");
    if (["http:", "https:", "mailto:"].includes(url.protocol) && url.host !== "invalid.example") return url.href;
  } catch {
    // not a URL
  }
  return null;
}

function link(text, href) {
  const url = safeUrl(href);
  if (url === null) return document.createTextNode(text);
  const a = el("a", text);
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

export function inline(text) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    frag.append(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[1] !== undefined) frag.append(el("code", m[2]));
    else if (m[3] !== undefined) frag.append(link(m[3] || m[4], m[4]));
    else if (m[5] !== undefined) frag.append(link(m[5], m[6]));
    else if (m[7] !== undefined || m[8] !== undefined) frag.append(el("strong", inline(m[7] ?? m[8])));
    else if (m[9] !== undefined || m[10] !== undefined) frag.append(el("em", inline(m[9] ?? m[10])));
    else if (m[11] !== undefined) frag.append(el("del", inline(m[11])));
    else frag.append(link(m[12], m[12]));
  }
  frag.append(text.slice(last));
  return frag;
}

function inlineLines(lines) {
  const frag = document.createDocumentFragment();
  lines.forEach((line, i) => {
    if (i) frag.append(el("br"));
    frag.append(inline(line.trim()));
  });
  return frag;
}

function codeBlock(code, language) {
  const pre = el("pre");
  const block = el("code", code);
  if (language) block.className = "language-" + language;
  const bar = el("div", language || "code");
  bar.className = "code-bar";
  if (navigator.clipboard) {
    const copy = el("button", "Copy");
    copy.type = "button";
    copy.className = "copy";
    copy.addEventListener("click", () => navigator.clipboard.writeText(code).then(() => (copy.textContent = "Copied")));
    bar.append(copy);
  }
  pre.append(block);
  const wrap = el("div", bar, pre);
  wrap.className = "code";
  return wrap;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function cells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((cell) => cell.trim());
}

function table(lines, i) {
  const head = el("tr", ...cells(lines[i]).map((cell) => el("th", inline(cell))));
  const body = el("tbody");
  i += 2;
  while (i < lines.length && lines[i].includes("|") && !BLANK.test(lines[i])) {
    body.append(el("tr", ...cells(lines[i]).map((cell) => el("td", inline(cell)))));
    i++;
  }
  return [el("table", el("thead", head), body), i];
}

function list(lines, i) {
  const first = lines[i].match(ITEM);
  const ordered = first[3] !== undefined;
  const node = el(ordered ? "ol" : "ul");
  if (ordered && Number(first[3]) !== 1) node.start = Number(first[3]);
  const indent = first[1].length;
  let item = null;
  const flush = () => item && node.append(el("li", render(item.join("\n"))));
  while (i < lines.length) {
    const line = lines[i];
    const m = line.match(ITEM);
    if (m && m[1].length <= indent + 1 && (m[3] !== undefined) === ordered) {
      flush();
      item = [m[4]];
    } else if (m && m[1].length <= indent + 1) {
      break; // a list of the other kind
    } else if (BLANK.test(line)) {
      const next = lines[i + 1];
      if (next === undefined || (!/^\s{2,}/.test(next) && !ITEM.test(next))) break;
      item.push("");
    } else if (/^\s{2,}/.test(line) || !startsBlock(line)) {
      item.push(line.replace(new RegExp("^ {0," + (indent + 4) + "}"), "")); // dedented into the item
    } else {
      break;
    }
    i++;
  }
  flush();
  return [node, i];
}

export function render(text) {
  const root = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      const close = new RegExp("^ {0,3}" + (fence[1][0] === "`" ? "`" : "~") + "{" + fence[1].length + ",}\\s*$");
      const body = [];
      for (i++; i < lines.length && !close.test(lines[i]); i++) body.push(lines[i]);
      i++;
      root.append(codeBlock(body.join("\n"), fence[2]));
    } else if (BLANK.test(line)) {
      i++;
    } else if (HEADING.test(line)) {
      const m = line.match(HEADING);
      root.append(el("h" + m[1].length, inline(m[2])));
      i++;
    } else if (RULE.test(line)) {
      root.append(el("hr"));
      i++;
    } else if (QUOTE.test(line)) {
      const quoted = [];
      for (; i < lines.length && QUOTE.test(lines[i]); i++) quoted.push(lines[i].replace(/^ {0,3}>\s?/, ""));
      root.append(el("blockquote", render(quoted.join("\n"))));
    } else if (ITEM.test(line)) {
      let node;
      [node, i] = list(lines, i);
      root.append(node);
    } else if (line.includes("|") && TABLE_RULE.test(lines[i + 1] || "") && lines[i + 1].includes("-")) {
      let node;
      [node, i] = table(lines, i);
      root.append(node);
    } else {
      const para = [line];
      for (i++; i < lines.length && !BLANK.test(lines[i]) && !startsBlock(lines[i]); i++) para.push(lines[i]);
      root.append(el("p", inlineLines(para)));
    }
  }
  return root;
}
