/* Ask: the answer streams in (server-sent events over fetch, so the key stays in a header),
   with the cited sources, the evidence given to the model and, on request, the exact prompt. */
"use strict";
Engram.page(async (ctx) => {
  const { el, clear, num, api, request, nsPath, where, notice, pageUrl, ApiError } = Engram;
  const ns = ctx.ns;
  let last = null;

  function source(s, cited) {
    return el("li", { value: s.number, class: cited ? "cited" : "", "data-doc": s.doc_id },
      el("div", { class: "hit-head" },
        el("a", { href: pageUrl("documents", { ns: s.namespace || ns, doc: s.doc_id }) }, s.title || s.doc_id),
        s.scores && s.scores.similarity !== undefined ? el("span", { class: "score", title: "cosine similarity" }, num(s.scores.similarity)) : null,
        cited ? el("span", { class: "badge" }, "cited") : null),
      el("p", { class: "snippet" }, s.text));
  }

  function body() {
    const b = { question: document.getElementById("question").value };
    const k = document.getElementById("ask-k").value;
    if (k) b.k = parseInt(k, 10);
    const w = where(document.getElementById("ask-where").value);
    if (w !== undefined) b.where = w;
    return b;
  }

  async function* events(res) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        yield { event, data: data.length ? JSON.parse(data.join("\n")) : null };
      }
    }
  }

  function showAnswer(a) {
    document.getElementById("answer").textContent = a.answer;
    const list = clear(document.getElementById("citations"));
    for (const c of a.citations || []) list.append(source(c, true));
    if (!(a.citations || []).length) list.append(el("li", { class: "hint" }, a.no_answer ? "Memory holds no answer." : "No source cited."));
    const quote = document.getElementById("quote");
    const said = (a.evidence || [])[0];
    quote.hidden = !said || a.no_answer;
    quote.textContent = said && !a.no_answer ? `[${said.number}] “${said.text}”` : "";
    const how = a.reader ? `confidence ${Number(a.confidence || 0).toFixed(2)}, ${a.reader} reader` : "";
    const state = a.no_answer ? "no answer in memory" : [how, a.attributed ? "sources attributed by overlap" : ""].filter(Boolean).join("; ");
    document.getElementById("ask-state").textContent = state ? `(${state})` : "";
  }

  async function evidence(b, cited) {
    const data = await api("POST", nsPath(ns, "/prompt"), b);
    const list = clear(document.getElementById("evidence"));
    const citedIds = new Set(cited.map((c) => c.id));
    for (const s of data.sources) list.append(source(s, citedIds.has(s.id)));
    if (!data.sources.length) list.append(el("li", { class: "hint" }, "Nothing relevant enough was recalled."));
    return data;
  }

  async function ask() {
    const b = body();
    document.getElementById("answer").textContent = "";
    clear(document.getElementById("citations"));
    clear(document.getElementById("evidence"));
    document.getElementById("prompt").hidden = true;
    document.getElementById("show-prompt").disabled = true;
    document.getElementById("ask-state").textContent = "(thinking...)";
    const res = await request("POST", nsPath(ns, "/ask"), Object.assign({ stream: true }, b), { Accept: "text/event-stream" });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      const err = data.error || {};
      throw new ApiError(res.status, err.code, err.message || res.statusText);
    }
    const out = document.getElementById("answer");
    let answer = null;
    for await (const ev of events(res)) {
      if (ev.event === "token") out.textContent += ev.data.text;
      else if (ev.event === "answer") answer = ev.data;
      else if (ev.event === "error") throw new Error(ev.data.error.message);
    }
    if (!answer) throw new Error("the answer stream ended early");
    showAnswer(answer);
    last = await evidence(b, answer.citations || []);
    document.getElementById("show-prompt").disabled = false;
    document.getElementById("answer").dataset.done = "1";
  }

  document.getElementById("ask-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    notice("");
    delete document.getElementById("answer").dataset.done;
    ask().catch((e) => { document.getElementById("ask-state").textContent = ""; notice(e.message); });
  });
  document.getElementById("show-prompt").addEventListener("click", () => {
    const pre = document.getElementById("prompt");
    pre.textContent = (last && last.prompt) || "(no evidence recalled: the model would not be called)";
    pre.hidden = !pre.hidden;
  });
  const q = ctx.params.get("q");
  if (q) document.getElementById("question").value = q;
});
