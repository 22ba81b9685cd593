/* Namespaces: documents, chunks, text size and last change of each namespace the key reaches. */
"use strict";
Engram.page(async (ctx) => {
  const { el, clear, when, size, api, pageUrl } = Engram;
  const data = await api("GET", "/v1/overview");
  const body = clear(document.querySelector("#ns-table tbody"));
  for (const n of data.namespaces) {
    body.append(el("tr", { "data-ns": n.name },
      el("td", {}, el("a", { href: pageUrl("documents", { ns: n.name }) }, n.name)),
      el("td", { class: "num" }, n.documents),
      el("td", { class: "num" }, n.chunks),
      el("td", { class: "num" }, size(n.text_chars)),
      el("td", { class: "when" }, when(n.updated_at)),
      el("td", { class: "when" }, when(n.created_at))));
  }
  if (!data.namespaces.length) {
    body.append(el("tr", {}, el("td", { colspan: 6, class: "hint" }, "This key reaches no namespace yet.")));
  }
  const total = data.namespaces.reduce((a, n) => ({
    documents: a.documents + n.documents, chunks: a.chunks + n.chunks, chars: a.chars + n.text_chars,
  }), { documents: 0, chunks: 0, chars: 0 });
  const stats = clear(document.getElementById("store-stats"));
  const rows = [
    ["namespaces", data.namespaces.length],
    ["documents", total.documents],
    ["chunks", total.chunks],
    ["text", size(total.chars)],
    ["embedding model", data.store.embedding_model || "-"],
    ["embedding dimensions", data.store.embedding_dim || "-"],
  ];
  if (data.store.size_bytes !== undefined) {
    rows.push(["store file", (data.store.size_bytes / 1048576).toFixed(2) + " MiB"]);
    rows.push(["changes", data.store.changes]);
    rows.push(["schema version", data.store.schema_version]);
  }
  for (const [k, v] of rows) stats.append(el("dt", {}, k), el("dd", {}, String(v)));
});
