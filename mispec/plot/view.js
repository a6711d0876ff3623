// mispec view: draws the JSON in #view-data (mispec/plot/view_data.py) with SVG and HTML.
// No library, nothing fetched: the page works from a file:// URL on a machine with no network.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("view-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const tip = document.getElementById("tooltip");
  const hiddenSeeds = new Set();

  function el(tag, attrs, parent, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) { return v === null ? "no value" : Number(v).toPrecision(4); }
  // viridis, 9 anchors; t in [0, 1]
  const VIR = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
  function viridis(t) {
    t = Math.min(1, Math.max(0, t)) * (VIR.length - 1);
    const i = Math.min(VIR.length - 2, Math.floor(t)), f = t - i;
    const c = VIR[i].map((a, j) => Math.round(a + f * (VIR[i + 1][j] - a)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  function diverging(t) { // t in [-1, 1]: blue, white, red
    const a = Math.min(1, Math.abs(t)), w = Math.round(255 * (1 - a));
    return t < 0 ? `rgb(${w},${w},255)` : `rgb(255,${w},${w})`;
  }
  function scale(values) { // colour of a value, over every finite value given
    const flat = values.flat(Infinity).filter((v) => v !== null);
    const lo = Math.min(...flat), hi = Math.max(...flat);
    if (lo < 0 && hi > 0) { const b = Math.max(-lo, hi); return (v) => diverging(v / b); }
    return (v) => viridis(hi > lo ? (v - lo) / (hi - lo) : 0.5);
  }
  const SEED_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
  function seedColour(seeds, s) { return SEED_COLOURS[seeds.indexOf(s) % SEED_COLOURS.length]; }
  function showTip(evt, text) {
    tip.textContent = text; tip.style.display = "block";
    tip.style.left = evt.pageX + 12 + "px"; tip.style.top = evt.pageY + 12 + "px";
  }
  function hover(node, text) {
    node.addEventListener("mouseenter", (e) => showTip(e, text));
    node.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  }
  function seeded(node, seed) { node.classList.add("seeded"); node.dataset.seed = seed; return node; }

  // --- a chart: x = step on a log(1 + step) axis, or any linear axis
  const W = 420, H = 240, PAD = { l: 70, r: 24, t: 10, b: 34 };
  function axes(svg, xs, ys, xlabel, ylabel, logx) {
    const fs = logx ? (s) => String(s) : fmt;
    const fx = logx ? (s) => Math.log1p(s) : (s) => s;
    const x0 = Math.min(...xs.map(fx)), x1 = Math.max(...xs.map(fx));
    const y0 = Math.min(...ys), y1 = Math.max(...ys);
    const X = (s) => PAD.l + (x1 > x0 ? (fx(s) - x0) / (x1 - x0) : 0.5) * (W - PAD.l - PAD.r);
    const Y = (v) => H - PAD.b - (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5) * (H - PAD.t - PAD.b);
    el("svg:rect", { x: PAD.l, y: PAD.t, width: W - PAD.l - PAD.r, height: H - PAD.t - PAD.b, class: "frame" }, svg);
    for (const v of [y0, (y0 + y1) / 2, y1]) el("svg:text", { x: PAD.l - 4, y: Y(v) + 4, "text-anchor": "end" }, svg, fmt(v));
    const xt = logx ? [xs[0], xs[Math.floor(xs.length / 2)], xs[xs.length - 1]] : [Math.min(...xs), Math.max(...xs)];
    for (const s of xt) el("svg:text", { x: X(s), y: H - PAD.b + 14, "text-anchor": "middle" }, svg, fs(s));
    el("svg:text", { x: (W + PAD.l) / 2, y: H - 4, "text-anchor": "middle" }, svg, xlabel);
    el("svg:text", { x: 10, y: H / 2, transform: `rotate(-90 10 ${H / 2})`, "text-anchor": "middle" }, svg, ylabel);
    return { X, Y };
  }
  function figure(parent, cls, title, caption) {
    const f = el("figure", { class: cls }, parent);
    el("figcaption", {}, f, title);
    if (caption) el("p", { class: "desc" }, f, caption);
    return f;
  }

  function drawCurve(parent, c, model) {
    const f = figure(parent, "curve", c.title + (c.units ? ` [${c.units}]` : ""), c.description);
    f.dataset.metric = c.name;
    const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` }, f);
    const ys = c.values.flat().filter((v) => v !== null);
    if (!ys.length) { el("p", {}, f, "no values (all NaN)"); return; }
    const { X, Y } = axes(svg, c.steps, ys, "step (log scale)", c.units || c.name, true);
    const cursor = el("svg:line", { class: "cursor", y1: PAD.t, y2: H - PAD.b }, svg);
    model.cursors.push({ line: cursor, X });
    c.seeds.forEach((seed, i) => {
      const g = seeded(el("svg:g", { class: "series" }, svg), seed);
      const colour = seedColour(DATA.seeds, seed);
      const pts = c.steps.map((s, j) => [s, c.values[i][j]]).filter((p) => p[1] !== null);
      el("svg:polyline", { points: pts.map(([s, v]) => `${X(s)},${Y(v)}`).join(" "), stroke: colour }, g);
      for (const [s, v] of pts) {
        const dot = el("svg:circle", { cx: X(s), cy: Y(v), r: 3.5, fill: colour, class: "point", "data-step": s, "data-value": v }, g);
        hover(dot, `${c.name} · seed ${seed} · step ${s}: ${fmt(v)}`);
      }
    });
  }

  function drawMap(parent, m, model) {
    const f = figure(parent, "headmap", m.title + (m.units ? ` [${m.units}]` : ""), m.description);
    f.dataset.metric = m.name;
    const colour = scale(m.values);
    const row = el("div", { class: "seedrow" }, f);
    const cells = [];
    m.seeds.forEach((seed, i) => {
      const box = seeded(el("div", { class: "mapbox" }, row), seed);
      el("div", { class: "label" }, box, `seed ${seed}`);
      const t = el("table", { class: "map" }, box);
      const head = el("tr", {}, t);
      el("th", {}, head, "L \\ H");
      for (const h of m.heads) el("th", {}, head, h);
      m.layers.forEach((layer, li) => {
        const tr = el("tr", {}, t);
        el("th", {}, tr, layer);
        m.heads.forEach((h, hi) => {
          const td = el("td", { "data-layer": layer, "data-head": h }, tr);
          td.addEventListener("click", () => model.pickHead(li, hi));
          cells.push({ td, i, li, hi });
        });
      });
    });
    model.onStep.push((k) => {
      for (const { td, i, li, hi } of cells) {
        const v = m.values[i][k][li][hi];
        td.dataset.value = v === null ? "" : v;
        td.textContent = v === null ? "–" : Number(v).toFixed(2);
        td.style.background = v === null ? "#eee" : colour(v);
        td.title = `${m.name} seed ${m.seeds[i]} L${m.layers[li]}H${m.heads[hi]} step ${m.steps[k]}: ${fmt(v)}`;
      }
    });
  }

  function drawPatterns(parent, p, model) {
    const [nSeed, nStep, nL, nH, nB, nQ, nK] = p.shape;
    const bytes = Uint8Array.from(atob(p.bytes), (ch) => ch.charCodeAt(0));
    const miss = Uint8Array.from(atob(p.missing), (ch) => ch.charCodeAt(0));
    const f = figure(parent, "patterns", `${p.name}: attention pattern A[query, key]`, p.description);
    f.dataset.metric = p.name;
    const ctl = el("div", { class: "controls" }, f);
    const pick = (label, n, cls) => {
      el("span", {}, ctl, ` ${label} `);
      const s = el("select", { class: cls }, ctl);
      for (let i = 0; i < n; i++) el("option", { value: i }, s, i);
      return s;
    };
    const selL = pick("layer", nL, "pick-layer"), selH = pick("head", nH, "pick-head"), selB = pick("prompt", nB, "pick-prompt");
    el("span", { class: "hint" }, ctl, " (or click a head in a map)");
    const row = el("div", { class: "seedrow" }, f);
    const C = Math.max(4, Math.floor(260 / nQ));
    const grids = [];
    for (let i = 0; i < nSeed; i++) {
      const box = seeded(el("div", { class: "mapbox" }, row), p.seeds[i]);
      el("div", { class: "label" }, box, `seed ${p.seeds[i]}`);
      const svg = el("svg:svg", { width: nK * C + 2, height: nQ * C + 2, class: "pattern" }, box);
      const rects = [];
      for (let q = 0; q < nQ; q++) for (let k = 0; k < nK; k++) {
        const r = el("svg:rect", { x: 1 + k * C, y: 1 + q * C, width: C, height: C, "data-q": q, "data-k": k }, svg);
        r.addEventListener("mouseenter", (e) => showTip(e, `seed ${p.seeds[i]} query ${q} key ${k}: ${r.dataset.value || "no value"}`));
        r.addEventListener("mouseleave", () => { tip.style.display = "none"; });
        rects.push(r);
      }
      grids.push(rects);
    }
    let step = 0;
    function redraw() {
      const l = +selL.value, h = +selH.value, b = +selB.value;
      for (let i = 0; i < nSeed; i++) {
        const base = ((((i * nStep + step) * nL + l) * nH + h) * nB + b) * nQ * nK;
        grids[i].forEach((r, j) => {
          const at = base + j, none = (miss[at >> 3] >> (7 - (at & 7))) & 1;
          const v = bytes[at] / 255, g = Math.round(255 * (1 - v));
          r.dataset.value = none ? "" : v.toFixed(3);
          r.setAttribute("fill", none ? "#ddd" : `rgb(${g},${g},255)`);
        });
      }
    }
    for (const s of [selL, selH, selB]) s.addEventListener("change", redraw);
    model.onStep.push((k) => { step = k; redraw(); });
    model.heads.push((li, hi) => { selL.value = li; selH.value = hi; redraw(); });
  }

  function drawTrajectory(parent, t) {
    const ev = t.explained_ratio ? ` (explained variance ratio: ${t.seeds.map((s, i) => `seed ${s} ${t.explained_ratio[i].slice(0, 2).map(fmt).join(", ")}`).join("; ")})` : "";
    const f = figure(parent, "trajectory", `${t.name}: PC1 against PC2, coloured by step`, ev);
    f.dataset.metric = t.name;
    const pts = t.points.flat().filter((p) => p[0] !== null && p[1] !== null);
    if (!pts.length) { el("p", {}, f, "no values (all NaN)"); return; }
    const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` }, f);
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const { X, Y } = axes(svg, xs, ys, "PC1", "PC2", false);
    const lo = Math.log1p(Math.min(...t.steps)), hi = Math.log1p(Math.max(...t.steps));
    t.seeds.forEach((seed, i) => {
      const g = seeded(el("svg:g", { class: "series" }, svg), seed);
      const ok = t.points[i].map((p, j) => [t.steps[j], p]).filter(([, p]) => p[0] !== null && p[1] !== null);
      el("svg:polyline", { points: ok.map(([, p]) => `${X(p[0])},${Y(p[1])}`).join(" "), stroke: seedColour(DATA.seeds, seed) }, g);
      for (const [s, p] of ok) {
        const colour = viridis(hi > lo ? (Math.log1p(s) - lo) / (hi - lo) : 0.5);
        const dot = el("svg:circle", { cx: X(p[0]), cy: Y(p[1]), r: 4, fill: colour, class: "point", "data-step": s, "data-pc1": p[0], "data-pc2": p[1] }, g);
        hover(dot, `${t.name} · seed ${seed} · step ${s}: PC1 ${fmt(p[0])}, PC2 ${fmt(p[1])}`);
      }
    });
    el("div", { class: "legend" }, f, `step ${t.steps[0]}`).appendChild(el("span", { class: "ramp" }));
    f.lastChild.append(` step ${t.steps[t.steps.length - 1]} (log colour scale)`);
  }

  function drawModel(m) {
    const sec = el("section", { class: "model", "data-model": m.name }, document.getElementById("models"));
    el("h2", {}, sec, `model ${m.name}`);
    const model = { cursors: [], onStep: [], heads: [], pickHead: (l, h) => model.heads.forEach((f) => f(l, h)) };
    if (m.steps.length && (m.maps.length || m.patterns.length)) {
      const bar = el("div", { class: "stepbar" }, sec);
      el("label", {}, bar, "step ");
      const slider = el("input", { type: "range", class: "step-slider", min: 0, max: m.steps.length - 1, value: m.steps.length - 1 }, bar);
      const label = el("span", { class: "step-label" }, bar);
      const set = () => {
        const k = +slider.value, s = m.steps[k];
        label.textContent = `${s} (${k + 1} of ${m.steps.length})`;
        sec.dataset.step = s;
        model.onStep.forEach((f) => f(k));
        model.cursors.forEach(({ line, X }) => { line.setAttribute("x1", X(s)); line.setAttribute("x2", X(s)); });
      };
      slider.addEventListener("input", set);
      model.set = set;
    }
    if (m.maps.length) { el("h3", {}, sec, "Head maps (layer × head)"); const d = el("div", { class: "grid" }, sec); m.maps.forEach((x) => drawMap(d, x, model)); }
    if (m.patterns.length) { el("h3", {}, sec, "Attention patterns"); const d = el("div", { class: "grid" }, sec); m.patterns.forEach((x) => drawPatterns(d, x, model)); }
    else el("p", { class: "note" }, sec, "No attention patterns in this run: add a metric {fn: attention_patterns, prompts: NAME, args: {n_prompts: 2}} to see them here.");
    if (m.trajectories.length) { el("h3", {}, sec, "PCA trajectories"); const d = el("div", { class: "grid" }, sec); m.trajectories.forEach((x) => drawTrajectory(d, x)); }
    if (m.curves.length) { el("h3", {}, sec, "Over training"); const d = el("div", { class: "grid" }, sec); m.curves.forEach((x) => drawCurve(d, x, model)); }
    if (m.skipped.length) el("p", { class: "note" }, sec, "Not drawn here: " + m.skipped.join("; "));
    if (model.set) model.set();
  }

  DATA.seeds = [...new Set(DATA.models.flatMap((m) => [...m.curves, ...m.maps, ...m.patterns, ...m.trajectories].flatMap((x) => x.seeds)))];
  const bar = document.getElementById("seeds");
  for (const s of DATA.seeds) {
    const lab = el("label", { class: "seed-toggle" }, bar);
    const box = el("input", { type: "checkbox", checked: "", "data-seed": s }, lab);
    el("span", { style: `color:${seedColour(DATA.seeds, s)}` }, lab, ` seed ${s} `);
    box.addEventListener("change", () => {
      if (box.checked) hiddenSeeds.delete(s); else hiddenSeeds.add(s);
      document.querySelectorAll(".seeded").forEach((n) => { n.style.display = hiddenSeeds.has(n.dataset.seed) ? "none" : ""; });
    });
  }
  DATA.models.forEach(drawModel);
})();
