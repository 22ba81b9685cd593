/* Search: hybrid, keyword or vector, with alpha and a where filter; each result shows the keyword
   and vector parts of its score; results are grouped by cluster under the cluster's label. */
"use strict";
Engram.page(async (ctx) => {
  const { el, clear, num, api, nsPath, where, notice, pageUrl } = Engram;
  const form = document.getElementById("search-form");

  function part(label, value, rank) {
    if (value === undefined) return el("span", { class: "part none" }, label + " -");
    return el("span", { class: "part" }, label + " " + num(value) + (rank ? " (#" + rank + ")" : ""));
  }

  function hitCard(h) {
    const s = h.scores || {};
    return el("li", { class: "hit", "data-hit": h.id, "data-doc": h.doc_id },
      el("div", { class: "hit-head" },
        el("a", { href: pageUrl("documents", { ns: h.namespace, doc: h.doc_id }) }, h.title || h.doc_id),
        el("span", { class: "score", title: "fused score" }, num(h.score)),
        el("span", { class: "ns" }, h.namespace)),
      el("div", { class: "scores" },
        part("keyword", s.keyword, s.keyword_rank),
        part("vector", s.vector, s.vector_rank),
        el("span", { class: "part" }, "fused " + num(s.fused !== undefined ? s.fused : h.score))),
      el("p", { class: "snippet" }, h.text));
  }

  async function run() {
    const ns = document.getElementById("all-ns").checked ? "*" : ctx.ns;
    if (!ns) throw new Error("no namespace to search");
    const alpha = document.getElementById("alpha").value;
    const body = {
      query: document.getElementById("q").value,
      k: parseInt(document.getElementById("k").value || "10", 10),
      mode: document.getElementById("mode").value,
      clusters: true,
    };
    if (alpha !== "") body.alpha = parseFloat(alpha);
    const w = where(document.getElementById("where").value);
    if (w !== undefined) body.where = w;
    const data = await api("POST", nsPath(ns, "/search"), body);
    const out = clear(document.getElementById("clusters"));
    const byId = new Map(data.results.map((h) => [h.id, h]));
    const clusters = data.clusters || [];
    document.getElementById("search-summary").textContent =
      data.results.length + " results in " + clusters.length + " cluster" + (clusters.length === 1 ? "" : "s");
    const shown = new Set();
    clusters.forEach((c, i) => {
      const hits = c.ids.map((id) => byId.get(id)).filter(Boolean);
      hits.forEach((h) => shown.add(h.id));
      out.append(el("section", { class: "cluster card", "data-cluster": i },
        el("h2", {}, el("span", { class: "label" }, c.label),
          el("span", { class: "hint" }, " · " + hits.length + " hit" + (hits.length === 1 ? "" : "s") + " · score " + num(c.score))),
        el("p", { class: "keywords" }, (c.keywords || []).join(", ")),
        el("ol", { class: "hits" }, hits.map(hitCard))));
    });
    const rest = data.results.filter((h) => !shown.has(h.id));
    if (rest.length) out.append(el("section", { class: "cluster card" }, el("h2", {}, "Other results"), el("ol", { class: "hits" }, rest.map(hitCard))));
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    notice("");
    run().catch((e) => notice(e.message));
  });
});
