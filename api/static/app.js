// Shared by the three pages: the API key, fetch with problem+json errors, small renderers.
"use strict";
const Hotline = (() => {
  const keyInput = () => document.getElementById("api-key");
  function key() { return (keyInput() && keyInput().value.trim()) || sessionStorage.getItem("hotline-key") || ""; }
  const NO_KEY = "请先在右上角粘贴 API Key（make demo 启动时打印在终端里，也存在 var/api-keys.json）";
  function remember() {
    const input = keyInput();
    if (!input) return;
    input.value = sessionStorage.getItem("hotline-key") || "";
    input.placeholder = "粘贴 API Key";
    const hint = document.createElement("span");
    hint.id = "key-hint";
    hint.className = "key-hint";
    hint.textContent = NO_KEY;
    hint.hidden = Boolean(input.value.trim());
    input.insertAdjacentElement("afterend", hint);
    input.addEventListener("input", () => { hint.hidden = Boolean(input.value.trim()); });
    input.addEventListener("change", () => sessionStorage.setItem("hotline-key", input.value.trim()));
  }
  // The case statuses as agents and supervisors say them (the API's values are English identifiers).
  const STATUS_NAMES = {received: "已受理", dispatched: "已派单", in_progress: "办理中", resolved: "已办结", closed: "已归档"};
  function statusName(status) { return STATUS_NAMES[status] || status || ""; }
  async function call(method, path, body) {
    if (!key()) throw new Error(NO_KEY);
    const options = {method, headers: {"X-API-Key": key()}};
    if (body !== undefined) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
    const response = await fetch(path, options);
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const message = (data && data.detail) || (data && data.title) || response.statusText;
      throw new Error(`${response.status} ${message}`);
    }
    return data;
  }
  // A file from the API (it needs the key header, so not a plain link): fetched, then saved or opened.
  async function download(path, filename, open) {
    const response = await fetch(path, {headers: {"X-API-Key": key()}});
    if (!response.ok) {
      const type = response.headers.get("content-type") || "";
      const data = type.includes("json") ? await response.json() : {};
      throw new Error(`${response.status} ${data.detail || data.title || response.statusText}`);
    }
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    if (open) link.target = "_blank"; else link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }
  function esc(text) {
    return String(text ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  }
  function pct(p) { return `${(100 * p).toFixed(0)}%`; }
  function bar(p) { return `<span class="bar" style="width:${Math.round(120 * p)}px"></span>`; }
  function table(rows, columns) {
    if (!rows.length) return "<p class='muted'>（无）</p>";
    const head = columns.map(c => `<th>${esc(c[0])}</th>`).join("");
    const body = rows.map(r => "<tr>" + columns.map(c => `<td>${c[1](r)}</td>`).join("") + "</tr>").join("");
    return `<table><tr>${head}</tr>${body}</table>`;
  }
  document.addEventListener("DOMContentLoaded", remember);
  return {call, download, esc, pct, bar, table, key, statusName};
})();
