/* Engram web UI: shared helpers. The API key lives in sessionStorage and is sent only in the
   Authorization header; it never goes into a URL, a form submission or the console. */
"use strict";
(function () {
  const KEY = "engram.key";
  const NS = "engram.namespace";
  const pageInits = [];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function when(epoch) {
    if (epoch === null || epoch === undefined) return "-";
    const d = new Date(epoch * 1000);
    return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
  }

  function size(chars) {
    if (chars < 1000) return chars + " chars";
    if (chars < 1e6) return (chars / 1000).toFixed(1) + " k chars";
    return (chars / 1e6).toFixed(2) + " M chars";
  }

  function num(x, digits) {
    return typeof x === "number" ? x.toFixed(digits === undefined ? 3 : digits) : "-";
  }

  function notice(message, kind) {
    const box = document.getElementById("notice");
    if (!box) return;
    box.textContent = message || "";
    box.className = "notice " + (kind || "error");
    box.hidden = !message;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    const key = sessionStorage.getItem(KEY);
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  async function request(method, path, body, extra) {
    const init = { method, headers: headers(extra), cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    return fetch(path, init);
  }

  async function api(method, path, body) {
    const res = await request(method, path, body);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 401 && document.body.dataset.page !== "signin") {
        sessionStorage.removeItem(KEY);
        location.assign("/ui/signin");
      }
      throw new ApiError(res.status, err.code || "error", err.message || res.statusText);
    }
    return data;
  }

  function nsPath(ns, rest) {
    return "/v1/namespaces/" + encodeURIComponent(ns) + rest;
  }

  function docPath(ns, id) {
    return nsPath(ns, "/documents/" + id.split("/").map(encodeURIComponent).join("/"));
  }

  /* A filter box: JSON when it starts with "{", else the short text form; empty: none. */
  function where(text) {
    const t = (text || "").trim();
    if (!t) return undefined;
    if (t.startsWith("{")) {
      try { return JSON.parse(t); } catch (e) { throw new Error("where: not valid JSON: " + e.message); }
    }
    return t;
  }

  function pageUrl(page, params) {
    const q = new URLSearchParams(params || {});
    const s = q.toString();
    return "/ui/" + page + (s ? "?" + s : "");
  }

  async function signinPage() {
    const form = document.getElementById("signin-form");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = document.getElementById("key");
      sessionStorage.setItem(KEY, input.value.trim());
      input.value = "";
      try {
        await api("GET", "/v1/me");
        location.assign("/ui");
      } catch (e) {
        sessionStorage.removeItem(KEY);
        notice("Sign-in failed: " + e.message);
      }
    });
    try {  // no keys configured (loopback): the API answers without one
      sessionStorage.removeItem(KEY);
      await api("GET", "/v1/me");
      document.getElementById("open-mode").hidden = false;
      document.getElementById("enter-open").addEventListener("click", () => location.assign("/ui"));
    } catch (e) { /* keys exist: sign in */ }
  }

  async function start() {
    const page = document.body.dataset.page;
    if (page === "signin") return signinPage();
    let me;
    try {
      me = await api("GET", "/v1/me");
    } catch (e) {
      if (e.status !== 401) notice(e.message);
      return;
    }
    document.getElementById("whoami").textContent = me.open
      ? "no keys configured (open on loopback)"
      : "key " + me.id + (me.name ? " (" + me.name + ")" : "") + " · " + me.scope;
    document.getElementById("signout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      location.assign("/ui/signin");
    });
    const list = (await api("GET", "/v1/namespaces")).namespaces;
    const names = list.map((n) => n.name);
    const params = new URLSearchParams(location.search);
    let ns = params.get("ns") || sessionStorage.getItem(NS) || "";
    if (!names.includes(ns)) ns = names.includes("default") ? "default" : names[0] || "";
    if (ns) sessionStorage.setItem(NS, ns);
    const select = document.getElementById("ns-select");
    for (const name of names) select.append(el("option", { value: name, selected: name === ns }, name));
    if (!names.length) select.append(el("option", { value: "" }, "(none)"));
    select.addEventListener("change", () => {
      sessionStorage.setItem(NS, select.value);
      const p = new URLSearchParams(location.search);
      p.set("ns", select.value);
      p.delete("doc");
      location.assign(location.pathname + "?" + p.toString());
    });
    for (const a of document.querySelectorAll("nav a[data-nav]")) {
      a.href = pageUrl(a.dataset.nav, ns ? { ns } : {});
    }
    const ctx = { me, ns, namespaces: list, params };
    for (const init of pageInits) {
      try { await init(ctx); } catch (e) { notice(e.message); }
    }
  }

  window.Engram = {
    el, clear, when, size, num, notice, api, request, nsPath, docPath, where, pageUrl, ApiError,
    page(init) { pageInits.push(init); },
  };
  document.addEventListener("DOMContentLoaded", start);
})();
