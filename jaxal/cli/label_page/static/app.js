// The labeling page of `jaxal label`: plain JS, no build step. Every name and
// path from the server is inserted as text (textContent), never as HTML.
"use strict";

const KEYS = "1234567890qwertyiopadfghjklzxcvbnm";  // class shortcuts; s, u are commands
const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const $ = (id) => document.getElementById(id);
let annotator = localStorage.getItem("jaxal-annotator") || "";
let classes = [];
let current = null;  // the image on screen
let busy = false;
let lastProgress = null;

function headers() {
  const h = {"Content-Type": "application/json", "X-Jaxal": "1"};
  if (token) h["X-Jaxal-Token"] = token;
  return h;
}

async function call(path, body) {
  const init = body === undefined ? {headers: headers()}
      : {method: "POST", headers: headers(), body: JSON.stringify(body)};
  const r = await fetch(path, init);
  let data = {};
  try { data = await r.json(); } catch (e) { data = {error: r.statusText}; }
  return {status: r.status, data};
}

function say(text) { $("message").textContent = text || ""; }

function buildClasses() {
  const box = $("classes");
  box.replaceChildren();
  classes.forEach((name, k) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.label = name;
    if (k < KEYS.length) b.dataset.key = KEYS[k];
    const kbd = document.createElement("kbd");
    kbd.textContent = k < KEYS.length ? KEYS[k] : "";
    const span = document.createElement("span");
    span.textContent = " " + name;
    if (k < KEYS.length) b.append(kbd);
    b.append(span);
    b.addEventListener("click", () => answer(name));
    box.append(b);
  });
  $("filter").hidden = classes.length <= 10;
}

function showProgress(p) {
  if (!p) return;
  $("labeled").textContent = p.labeled;
  $("budget").textContent = p.budget;
  $("found").textContent = p.classes_found;
  $("nclasses").textContent = p.classes;
  $("ir").textContent = p.imbalance_ratio === null ? "-" : p.imbalance_ratio.toFixed(3);
  $("conflicts").textContent = p.conflicts;
  lastProgress = p;
  if (!current || current.rank !== "search") $("mode").textContent = modeText(p);
  $("bar-fill").style.width = (100 * p.labeled / Math.max(1, p.budget)) + "%";
  const most = Math.max(1, ...p.counts.map((c) => c[1]));
  const table = $("counts");
  table.replaceChildren();
  for (const [name, n] of p.counts) {
    const tr = document.createElement("tr");
    if (n === 0) tr.className = "zero";
    const a = document.createElement("td"); a.className = "name"; a.textContent = name;
    a.title = name;
    const b = document.createElement("td"); b.textContent = n;
    const c = document.createElement("td"); c.style.width = "50%";
    const bar = document.createElement("div"); bar.className = "count-bar";
    bar.style.width = (100 * n / most) + "%";
    c.append(bar);
    tr.append(a, b, c);
    table.append(tr);
  }
}

function showDone(p) {
  current = null;
  $("work").hidden = true;
  $("done").hidden = false;
  showProgress(p);
}

function modeText(p) {
  if (!p) return "";
  return p.mode === "balancing" ? "the balancing step (Eq. 9)"
      : p.method + " (acquisition order)";
}

function showImage(img) {
  current = img;
  $("mode").textContent = img.rank === "search" ? "your search" : modeText(lastProgress);
  $("rank").textContent = img.rank;
  $("batch").textContent = img.batch;
  $("guess").textContent = img.guess;
  $("path").textContent = img.path;
  const q = new URLSearchParams({path: img.path});
  if (token) q.set("token", token);
  $("image").src = "image?" + q.toString();
  $("image").dataset.path = img.path;
  document.body.dataset.state = "image";
}

async function next() {
  busy = true;
  // Ask with a short wait first (the next batch is usually chosen within it),
  // so that "waiting" shows soon when the others hold the rest of the batch;
  // then long-poll.
  for (let wait = 0.3; ; wait = 5) {
    const {status, data} = await call("api/next", {annotator, wait});
    if (status !== 200) { say(data.error); busy = false; return; }
    showProgress(data.progress);
    if (data.done) { showDone(data.progress); busy = false; return; }
    if (data.image) { showImage(data.image); busy = false; return; }
    current = null;
    document.body.dataset.state = "waiting";
    $("image").removeAttribute("src");
    $("path").textContent = "";
    say("Waiting: " + data.wait + ".");
  }
}

async function answer(label) {
  if (busy || !current) return;
  busy = true;
  const shown = current;
  const {status, data} = await call("api/answer", {annotator, path: shown.path, label});
  if (status === 200) {
    say(data.saved ? "" : "Already labeled the same by " + data.same_as + ".");
  } else {
    say(data.error);
    if (status !== 409) { busy = false; return; }
  }
  await next();
}

async function skip() {
  if (busy || !current) return;
  busy = true;
  await call("api/skip", {annotator, path: current.path});
  say("Skipped " + current.path + "; it comes back when the rest of the batch is done.");
  await next();
}

async function undo() {
  if (busy) return;
  busy = true;
  const {status, data} = await call("api/undo", {annotator});
  if (status !== 200) { say(data.error); busy = false; return; }
  say("Undid " + data.undone + " (" + data.label + ").");
  $("done").hidden = true;
  $("work").hidden = false;
  await next();
}

async function find(body) {
  // the matches wait in this annotator's queue, leased to them as they come
  const {status, data} = await call("api/search", {annotator, top: 12, ...body});
  if (status !== 200) { say(data.error); return; }
  say(data.queued.length + " image(s) of your search queued; they come next.");
  if (!current && !busy) await next();
}

function visibleButtons() {
  return [...$("classes").querySelectorAll("button:not(.hidden)")];
}

function onKey(e) {
  if ($("work").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  const filter = $("filter");
  if (document.activeElement === filter) {
    if (e.key === "Enter") {
      const first = visibleButtons()[0];
      if (first) { e.preventDefault(); answer(first.dataset.label); }
      filter.value = ""; filterClasses(); filter.blur();
    } else if (e.key === "Escape") {
      filter.value = ""; filterClasses(); filter.blur();
    }
    return;
  }
  if (document.activeElement && document.activeElement.tagName === "INPUT") return;
  if (e.key === "/" && !filter.hidden) { e.preventDefault(); filter.focus(); return; }
  if (e.key === "s") { e.preventDefault(); skip(); return; }
  if (e.key === "u") { e.preventDefault(); undo(); return; }
  const b = $("classes").querySelector(`button[data-key="${CSS.escape(e.key)}"]`);
  if (b) { e.preventDefault(); answer(b.dataset.label); }
}

function filterClasses() {
  const q = $("filter").value.toLowerCase();
  for (const b of $("classes").children) {
    b.classList.toggle("hidden", q !== "" && !b.dataset.label.toLowerCase().includes(q));
  }
}

async function start() {
  $("login").hidden = true;
  $("work").hidden = false;
  $("who").textContent = "annotator: " + annotator;
  const {status, data} = await call("api/state");
  if (status !== 200) { say(data.error); return; }
  classes = data.classes;
  $("selection").textContent = data.selection ? "selection " + data.selection : "";
  const cmds = data.commands || {};
  $("commands").textContent = Object.values(cmds).join("\n");
  buildClasses();
  showProgress(data.progress);
  await next();
}

document.addEventListener("DOMContentLoaded", () => {
  if (token) $("map-link").href = "map?token=" + encodeURIComponent(token);
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("name").value.trim();
    if (!name) return;
    annotator = name;
    localStorage.setItem("jaxal-annotator", name);
    start();
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("search-text").value.trim();
    if (text) find({text});
  });
  $("more-like").addEventListener("click", () => {
    if (current) find({path: current.path});
  });
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("filter").addEventListener("input", filterClasses);
  document.addEventListener("keydown", onKey);
  window.addEventListener("pagehide", () => {
    fetch("api/release", {method: "POST", headers: headers(),
        body: JSON.stringify({annotator}), keepalive: true});
  });
  if (annotator) start(); else { $("login").hidden = false; $("name").focus(); }
});
