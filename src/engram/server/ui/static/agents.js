/* Agents: an agent's memories on a timeline (importance up, recency as opacity), pinned items,
   reflections with the memories they cite, and forgetting with the audit trail. */
"use strict";
Engram.page(async (ctx) => {
  const { el, clear, when, num, api, nsPath, notice } = Engram;
  const SVG = "http://www.w3.org/2000/svg";
  const ns = ctx.ns;
  if (!ns) return;

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children) node.append(c);
    return node;
  }

  function timeline(data) {
    const box = clear(document.getElementById("timeline"));
    const items = data.memories.filter((m) => !m.pinned);
    if (!items.length) { box.append(el("p", { class: "hint" }, "No memories yet.")); return; }
    const W = 960, H = 240, L = 40, R = 20, T = 16, B = 34;
    const times = items.map((m) => m.created_at);
    let lo = Math.min(...times), hi = Math.max(...times);
    if (hi - lo < 1) { lo -= 3600; hi += 3600; }
    const x = (t) => L + ((t - lo) / (hi - lo)) * (W - L - R);
    const y = (imp) => T + ((10 - imp) / 9) * (H - T - B);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "tl", role: "img", "aria-label": "memory timeline" });
    root.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    for (const imp of [1, 5, 10]) {
      root.append(svg("text", { x: L - 8, y: y(imp) + 4, class: "tick", "text-anchor": "end" }, String(imp)));
      root.append(svg("line", { x1: L, y1: y(imp), x2: W - R, y2: y(imp), class: "grid" }));
    }
    root.append(svg("text", { x: L, y: H - 10, class: "tick" }, when(lo)));
    root.append(svg("text", { x: W - R, y: H - 10, class: "tick", "text-anchor": "end" }, when(hi)));
    const pos = new Map();
    for (const m of items) for (const c of m.chunk_ids) pos.set(c, [x(m.created_at), y(m.importance)]);
    for (const r of data.reflections) {
      for (const c of r.cites || []) {
        const p = pos.get(c.chunk_id);
        if (p) root.append(svg("line", { x1: x(r.created_at), y1: y(r.importance), x2: p[0], y2: p[1], class: "cite" }));
      }
    }
    for (const m of items) {
      const cx = x(m.created_at), cy = y(m.importance);
      const title = svg("title", {});
      title.textContent = when(m.created_at) + " · importance " + m.importance + " · recency " + num(m.recency, 2) + "\n" + m.text;
      const opacity = (0.15 + 0.85 * m.recency).toFixed(3);
      const shape = m.kind === "reflection"
        ? svg("polygon", { points: `${cx},${cy - 8} ${cx + 8},${cy} ${cx},${cy + 8} ${cx - 8},${cy}`, class: "refl", "fill-opacity": opacity, "data-memory": m.id }, title)
        : svg("circle", { cx, cy, r: 6, class: "mem", "fill-opacity": opacity, "data-memory": m.id }, title);
      root.append(shape);
    }
    box.append(root);
  }

  function lists(data) {
    const pinned = clear(document.getElementById("pinned"));
    for (const p of data.pinned) pinned.append(el("li", { "data-memory": p.id }, el("span", { class: "badge" }, p.metadata.name || p.kind), " ", p.text));
    if (!data.pinned.length) pinned.append(el("li", { class: "hint" }, "Nothing pinned."));
    const refl = clear(document.getElementById("reflections"));
    for (const r of data.reflections) {
      refl.append(el("li", { "data-memory": r.id },
        el("p", {}, el("strong", {}, r.text), el("span", { class: "hint" }, " · " + when(r.created_at) + " · importance " + r.importance)),
        el("ul", { class: "cites" }, (r.cites || []).map((c) => el("li", { class: c.missing ? "missing" : "" },
          c.missing ? "(forgotten) chunk #" + c.chunk_id : c.text)))));
    }
    if (!data.reflections.length) refl.append(el("li", { class: "hint" }, "No reflections yet."));
    const body = clear(document.querySelector("#memories tbody"));
    for (const m of data.memories) {
      body.append(el("tr", { "data-memory": m.id, class: m.pinned ? "pinned" : m.kind },
        el("td", {}, el("input", { type: "checkbox", value: m.id, "aria-label": "select " + m.id })),
        el("td", { class: "when" }, when(m.created_at)),
        el("td", {}, m.kind !== "turn" ? el("span", { class: "badge" }, m.pinned ? "pinned" : m.kind) : null, " ", m.text),
        el("td", { class: "num", title: "from " + m.importance_from }, m.importance),
        el("td", { class: "num" }, num(m.recency, 2))));
    }
    const audit = clear(document.querySelector("#agent-audit tbody"));
    for (const a of data.audit) audit.append(el("tr", {}, el("td", { class: "when" }, when(a.at)), el("td", {}, a.action), el("td", {}, a.target), el("td", {}, a.reason)));
    if (!data.audit.length) audit.append(el("tr", {}, el("td", { colspan: 4, class: "hint" }, "Nothing forgotten yet.")));
  }

  async function load() {
    const ref = document.getElementById("reference").value;
    const days = parseFloat(document.getElementById("half-life").value || "7");
    const q = new URLSearchParams({ reference: ref, half_life: String(days * 86400) });
    const data = await api("GET", nsPath(ns, "/agent?" + q.toString()));
    timeline(data);
    lists(data);
  }

  document.getElementById("agent-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    load().catch((e) => notice(e.message));
  });
  document.getElementById("forget-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const ids = [...document.querySelectorAll("#memories tbody input:checked")].map((i) => i.value);
    if (!ids.length) { notice("Check the memories to forget first."); return; }
    const reason = document.getElementById("forget-reason").value.trim();
    try {
      const out = await api("POST", nsPath(ns, "/forget"), { ids, reason });
      document.getElementById("forget-reason").value = "";
      await load();
      notice("Forgot " + out.audit.length + " memor" + (out.audit.length === 1 ? "y" : "ies") + " (" + out.forgotten_chunks + " chunks).", "ok");
    } catch (e) { notice(e.message); }
  });
  await load();
});
