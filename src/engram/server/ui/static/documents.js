/* Documents: a filtered list, one document with its chunks and metadata, delete with a reason,
   and the namespace's audit trail. */
"use strict";
Engram.page(async (ctx) => {
  const { el, clear, when, api, nsPath, docPath, where, notice, pageUrl } = Engram;
  const ns = ctx.ns;
  if (!ns) return;
  let offset = 0;

  function dayStart(value) { return value ? value + "T00:00:00Z" : undefined; }
  function dayEnd(value) {
    if (!value) return undefined;
    const d = new Date(value + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + 1);
    return d.toISOString();
  }

  function query() {
    const q = {
      where: where(document.getElementById("f-where").value),
      source: document.getElementById("f-source").value.trim() || undefined,
      since: dayStart(document.getElementById("f-since").value),
      until: dayEnd(document.getElementById("f-until").value),
      order: document.getElementById("f-order").value,
      limit: 50,
      offset,
    };
    return q;
  }

  function metaText(meta) {
    return Object.entries(meta || {}).map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(", ");
  }

  async function list(append) {
    if (!append) offset = 0;
    const data = await api("POST", nsPath(ns, "/documents/query"), query());
    const body = document.querySelector("#doc-table tbody");
    if (!append) clear(body);
    for (const d of data.documents) {
      body.append(el("tr", { "data-doc": d.id },
        el("td", {}, el("a", { href: pageUrl("documents", { ns, doc: d.id }), onclick: (ev) => { ev.preventDefault(); show(d.id); } }, d.title || d.id)),
        el("td", { class: "clip" }, d.source),
        el("td", { class: "clip" }, metaText(d.metadata)),
        el("td", { class: "num" }, d.chunks),
        el("td", { class: "when" }, when(d.created_at))));
    }
    offset = data.next_offset || 0;
    document.getElementById("doc-more").hidden = data.next_offset === null;
    document.getElementById("doc-count").textContent = data.total + " document" + (data.total === 1 ? "" : "s") + " match";
  }

  async function show(id) {
    const d = await api("GET", docPath(ns, id));
    const box = document.getElementById("doc-detail");
    box.hidden = false;
    box.dataset.doc = d.id;
    document.getElementById("d-title").textContent = d.title || d.id;
    const meta = clear(document.getElementById("d-meta"));
    const rows = [["id", d.id], ["source", d.source], ["created", when(d.created_at)], ["updated", when(d.updated_at)]];
    for (const [k, v] of Object.entries(d.metadata || {})) rows.push([k, typeof v === "object" ? JSON.stringify(v) : String(v)]);
    for (const [k, v] of rows) meta.append(el("dt", {}, k), el("dd", {}, v));
    const chunks = clear(document.getElementById("d-chunks"));
    for (const c of d.chunks) chunks.append(el("li", { "data-chunk": c.id }, el("span", { class: "hint" }, "#" + c.id + " "), c.text));
    history.replaceState(null, "", pageUrl("documents", { ns, doc: d.id }));
  }

  async function audit() {
    const data = await api("GET", nsPath(ns, "/audit?limit=100"));
    const body = clear(document.querySelector("#audit-table tbody"));
    for (const a of data.audit) {
      body.append(el("tr", {}, el("td", { class: "when" }, when(a.at)), el("td", {}, a.action), el("td", { class: "clip" }, a.target), el("td", {}, a.reason)));
    }
    if (!data.audit.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "hint" }, "Nothing deleted yet.")));
  }

  document.getElementById("doc-filter").addEventListener("submit", (ev) => {
    ev.preventDefault();
    list(false).catch((e) => notice(e.message));
  });
  document.getElementById("doc-more").addEventListener("click", () => list(true).catch((e) => notice(e.message)));
  document.getElementById("d-delete").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = document.getElementById("doc-detail");
    const reason = document.getElementById("d-reason").value.trim();
    try {
      const out = await api("POST", nsPath(ns, "/delete"), { ids: [box.dataset.doc], reason });
      box.hidden = true;
      document.getElementById("d-reason").value = "";
      history.replaceState(null, "", pageUrl("documents", { ns }));
      await list(false);
      await audit();
      notice("Deleted " + out.deleted_documents + " document (" + out.deleted_chunks + " chunks).", "ok");
    } catch (e) { notice(e.message); }
  });

  await list(false);
  await audit();
  const doc = ctx.params.get("doc");
  if (doc) await show(doc);
});
