// The map of the pool (`jaxal label`'s /map): the pool's first two principal
// components drawn on a canvas. Every point is binned into the canvas' pixels
// (density in grey), so a million points cost one pass per redraw; answers
// (coloured by class) and the current batch (rings) are drawn over it and
// refreshed every 1.5 s. Names and paths go in as text, never as HTML.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const $ = (id) => document.getElementById(id);
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a",
  "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];
const colour = (k) => COLOURS[k % COLOURS.length];

let xy = null, flags = null, n = 0;   // the pool's coordinates and dedupe flags
let view = null;                      // pixel transform of the canvas
let base = null;                      // the density layer, redrawn on resize only
let state = {classes: [], labeled: [], pending: []};
let hidden = new Set();               // classes filtered out
let grid = null;                      // screen-space buckets for hover

function headers() {
  const h = {"X-Jaxal": "1"};
  if (token) h["X-Jaxal-Token"] = token;
  return h;
}

function withToken(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

async function load() {
  const r = await fetch("api/map/points", {headers: headers()});
  if (!r.ok) { $("map-count").textContent = "map unavailable: " + r.statusText; return; }
  const buf = await r.arrayBuffer();
  n = buf.byteLength / 9;
  xy = new Float32Array(buf, 0, 2 * n);
  flags = new Uint8Array(buf, 8 * n, n);
  $("map-count").textContent = n.toLocaleString() + " images";
  layout();
  await poll();
  setInterval(poll, 1500);
}

function layout() {
  const c = $("map");
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.max(200, Math.round(c.clientWidth * dpr));
  c.height = Math.max(200, Math.round(c.clientHeight * dpr));
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  const pad = 12 * dpr, w = c.width - 2 * pad, h = c.height - 2 * pad;
  const s = Math.min(w / Math.max(x1 - x0, 1e-12), h / Math.max(y1 - y0, 1e-12));
  view = {dpr, s, ox: pad + (w - s * (x1 - x0)) / 2 - s * x0,
          oy: pad + (h - s * (y1 - y0)) / 2 + s * y1};
  base = density(c.width, c.height);
  grid = buckets(c.width, c.height);
  draw();
}

const px = (i) => Math.round(view.ox + view.s * xy[2 * i]);
const py = (i) => Math.round(view.oy - view.s * xy[2 * i + 1]);

function density(w, h) {
  // counts per pixel, kept and set-aside images apart; log-shaded grey
  const kept = new Uint32Array(w * h), aside = new Uint32Array(w * h);
  for (let i = 0; i < n; i++) {
    const x = px(i), y = py(i);
    if (x < 0 || y < 0 || x >= w || y >= h) continue;
    (flags[i] ? aside : kept)[y * w + x]++;
  }
  let most = 1;
  for (let k = 0; k < w * h; k++) if (kept[k] > most) most = kept[k];
  const img = new ImageData(w, h), d = img.data, lm = Math.log(1 + Math.max(most, 4));
  const r = n > 20000 ? 0 : Math.max(1, Math.round(view.dpr));  // small pools: dots
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const k = y * w + x;
      if (!kept[k] && !aside[k]) continue;
      const g = kept[k] ? Math.round(190 - 150 * Math.log(1 + kept[k]) / lm) : 225;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const yy = y + dy, xx = x + dx;
          if (yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
          const q = 4 * (yy * w + xx);
          if (d[q + 3] && d[q] <= g) continue;  // keep the darker
          d[q] = d[q + 1] = d[q + 2] = g; d[q + 3] = 255;
        }
      }
    }
  }
  return img;
}

function buckets(w, h) {
  // points by 16-pixel cell (counting sort), for the nearest point under the pointer
  const cell = 16 * view.dpr, gw = Math.ceil(w / cell), gh = Math.ceil(h / cell);
  const count = new Uint32Array(gw * gh + 1), at = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const gx = Math.floor(px(i) / cell), gy = Math.floor(py(i) / cell);
    at[i] = gx < 0 || gy < 0 || gx >= gw || gy >= gh ? -1 : gy * gw + gx;
    if (at[i] >= 0) count[at[i] + 1]++;
  }
  for (let k = 1; k <= gw * gh; k++) count[k] += count[k - 1];
  const fill = count.slice(0, gw * gh), order = new Int32Array(count[gw * gh]);
  for (let i = 0; i < n; i++) if (at[i] >= 0) order[fill[at[i]]++] = i;
  return {cell, gw, gh, start: count, order};
}

function nearest(x, y) {
  const g = grid, gx = Math.floor(x / g.cell), gy = Math.floor(y / g.cell);
  let best = -1, bd = (10 * view.dpr) ** 2;
  for (let cy = gy - 1; cy <= gy + 1; cy++) {
    for (let cx = gx - 1; cx <= gx + 1; cx++) {
      if (cx < 0 || cy < 0 || cx >= g.gw || cy >= g.gh) continue;
      const k = cy * g.gw + cx;
      for (let m = g.start[k]; m < g.start[k + 1]; m++) {
        const i = g.order[m], dx = px(i) - x, dy = py(i) - y, dd = dx * dx + dy * dy;
        if (dd < bd) { bd = dd; best = i; }
      }
    }
  }
  return best;
}

function draw() {
  const c = $("map"), ctx = c.getContext("2d");
  ctx.putImageData(base, 0, 0);
  const who = $("who-filter").value, r = 3 * view.dpr;
  let drawn = 0;
  for (const [i, k, a] of state.labeled) {
    if (hidden.has(k) || (who && a !== who)) continue;
    ctx.fillStyle = colour(k);
    ctx.fillRect(px(i) - r, py(i) - r, 2 * r, 2 * r);
    drawn++;
  }
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 1.5 * view.dpr;
  for (const i of state.pending) {
    ctx.beginPath();
    ctx.arc(px(i), py(i), 6 * view.dpr, 0, 2 * Math.PI);
    ctx.stroke();
  }
  document.body.dataset.drawn = drawn + "/" + state.labeled.length;  // for tests
}

function legend() {
  const box = $("map-classes"), counts = new Map();
  for (const [, k] of state.labeled) counts.set(k, (counts.get(k) || 0) + 1);
  box.replaceChildren();
  state.classes.forEach((name, k) => {
    const label = document.createElement("label");
    const cb = document.createElement("input");
    cb.type = "checkbox"; cb.checked = !hidden.has(k); cb.dataset.k = k;
    cb.addEventListener("change", () => {
      if (cb.checked) hidden.delete(k); else hidden.add(k);
      draw();
    });
    const sw = document.createElement("span");
    sw.className = "swatch"; sw.style.background = colour(k);
    const text = document.createElement("span");
    text.textContent = name + " (" + (counts.get(k) || 0) + ")";
    label.title = name;
    label.append(cb, sw, text);
    box.append(label);
  });
  const sel = $("who-filter"), keep = sel.value;
  const names = [...new Set(state.labeled.map((l) => l[2]))].sort();
  sel.replaceChildren();
  const all = document.createElement("option");
  all.value = ""; all.textContent = "every annotator";
  sel.append(all);
  for (const a of names) {
    const o = document.createElement("option");
    o.value = a; o.textContent = a;
    sel.append(o);
  }
  sel.value = names.includes(keep) ? keep : "";
}

async function poll() {
  const r = await fetch("api/map/state", {headers: headers()});
  if (!r.ok) return;
  state = await r.json();
  const p = state.progress;
  $("map-progress").textContent = p.labeled + " / " + p.budget + " labeled, " +
      p.classes_found + " of " + p.classes + " classes found";
  legend();
  draw();
}

let hoverAt = -1;
async function hover(e) {
  const c = $("map"), rect = c.getBoundingClientRect();
  const x = (e.clientX - rect.left) * view.dpr, y = (e.clientY - rect.top) * view.dpr;
  const i = nearest(x, y), tip = $("tip");
  if (i < 0) { tip.hidden = true; hoverAt = -1; return; }
  tip.style.left = (e.clientX - rect.left + 14) + "px";
  tip.style.top = (e.clientY - rect.top + 14) + "px";
  if (i === hoverAt) return;
  hoverAt = i;
  const r = await fetch("api/map/point?i=" + i, {headers: headers()});
  if (!r.ok || hoverAt !== i) return;
  const p = await r.json();
  $("tip-img").src = withToken("image?" + new URLSearchParams({path: p.path}));
  $("tip-text").textContent = p.path + (p.label ? " · " + p.label + " by " + p.annotator
      : " · guess: " + p.guess) + (p.set_aside ? " · near-copy set aside" : "");
  tip.hidden = false;
  tip.dataset.index = String(i);
}

document.addEventListener("DOMContentLoaded", () => {
  $("back").href = withToken("./");
  $("who-filter").addEventListener("change", draw);
  $("map").addEventListener("mousemove", hover);
  $("map").addEventListener("mouseleave", () => { $("tip").hidden = true; hoverAt = -1; });
  window.addEventListener("resize", () => { if (xy) layout(); });
  load();
});
