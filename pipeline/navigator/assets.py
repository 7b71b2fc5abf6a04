"""The navigator's one style sheet and one small script (sorting and filtering tables in the
browser; nothing else runs client-side). Served as /static/nav.css and /static/nav.js."""

CSS = """
:root { --ink: #1d2330; --muted: #5b6472; --line: #dfe3ea; --bg: #f5f6f8; --card: #fff; --accent: #1f5fa8;
  --behavior: #2e7d32; --tracking: #7b1fa2; --ephys: #1565c0; --histology: #d84315; --computed: #00838f; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { display: flex; align-items: center; gap: 18px; padding: 9px 22px; background: #1f2a3a; color: #dce3ee; }
header.top a { color: #fff; }
header.top .brand { font-weight: 700; letter-spacing: .02em; white-space: nowrap; }
header.top nav { flex: 1; font-size: 13px; }
header.top nav .sep { color: #8a97aa; margin: 0 6px; }
header.top .db { font-size: 12px; color: #9fb0c6; white-space: nowrap; }
main { max-width: 1480px; margin: 0 auto; padding: 18px 22px 40px; }
h1 { font-size: 22px; margin: 4px 0 2px; }
h2 { font-size: 16px; margin: 26px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 14px; }
.stats { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0 4px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.stat b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
.stat span { color: var(--muted); font-size: 12px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 14px 22px; align-items: start; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 0;
  overflow-x: auto; }
.card table.data th, .card table.data td { padding: 3px 8px; white-space: normal; }
.card h3 { margin: 0 0 6px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0; }
dl.kv dt { color: var(--muted); }
dl.kv.two { grid-template-columns: max-content 1fr max-content 1fr; }
dl.kv dd { margin: 0; font-variant-numeric: tabular-nums; }
.tablewrap { overflow: auto; max-height: 78vh; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
table.data { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.data th, table.data td { padding: 4px 10px; border-bottom: 1px solid #edf0f4; text-align: left; white-space: nowrap; }
table.data th { position: sticky; top: 0; background: #eef1f6; font-weight: 600; font-size: 12.5px; z-index: 1;
  border-bottom: 1px solid var(--line); }
table.data td.n, table.data th.n, table.data td[data-v] { text-align: right; }
table.data td[data-v=""] { color: #a5acb8; }
table.data tbody tr:nth-child(even) { background: #fafbfc; }
table.data tbody tr:hover { background: #eaf2fd; }
table.sortable th { cursor: pointer; user-select: none; }
/* a long table shows its first rows at once and the rest right after the first paint (nav.js) */
table.partial tbody tr:nth-child(n+41) { display: none; }
table.sortable th:hover { background: #e2e8f1; }
table.sortable th.asc::after { content: " \\25B2"; font-size: 10px; color: var(--accent); }
table.sortable th.desc::after { content: " \\25BC"; font-size: 10px; color: var(--accent); }
td.none { color: #a5acb8; }
.badge { display: inline-block; padding: 0 7px; margin-right: 3px; border-radius: 9px; font-size: 11.5px; line-height: 18px;
  border: 1px solid #cfd5de; color: #b3bac5; background: #fff; }
.badge.on { color: #fff; border-color: transparent; }
.badge.on.behavior { background: var(--behavior); } .badge.on.tracking { background: var(--tracking); }
.badge.on.ephys { background: var(--ephys); } .badge.on.histology { background: var(--histology); }
.badge.on.computed { background: var(--computed); }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; background: #eef1f6; }
.tag.yes { background: #e3f4e4; color: #1b5e20; } .tag.no { background: #f1f2f5; color: #6b7380; }
.tag.on { background: #e3eefb; color: #0d47a1; }
.tag.hit { background: #e3f4e4; color: #1b5e20; } .tag.miss { background: #fdecea; color: #9b1c1c; }
.tag.ignore { color: var(--muted); }
.tag.contra-selective { background: #e3eefb; color: #0d47a1; } .tag.ipsi-selective { background: #fdeaea; color: #a31515; }
form.filters { display: flex; flex-wrap: wrap; align-items: end; gap: 8px 14px; margin: 0 0 10px; padding: 8px 12px;
  background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
form.filters input, form.filters select { font: inherit; padding: 3px 6px; border: 1px solid #c9d0da; border-radius: 4px;
  background: #fff; color: var(--ink); }
form.filters input[type=search] { width: 230px; }
form.filters input[type=number] { width: 90px; }
form.filters .count { margin-left: auto; color: var(--muted); font-size: 12.5px; align-self: center; }
button { font: inherit; padding: 3px 10px; border: 1px solid #c9d0da; border-radius: 4px; background: #fff; cursor: pointer; }
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; align-items: start; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
figure img { display: block; width: 100%; height: auto; background: #fafafa; }
figure figcaption { font-size: 12.5px; color: var(--muted); margin-top: 4px; }
figure.wide { grid-column: 1 / -1; }
figure.main img { max-width: 1000px; }
figure.condition { max-width: 840px; }
.unit-top { display: grid; grid-template-columns: minmax(0, 1fr) 360px; gap: 14px; align-items: start; margin-bottom: 14px; }
.side { display: flex; flex-direction: column; gap: 14px; }
@media (max-width: 1100px) { .unit-top { grid-template-columns: 1fr; } }
.pager { display: flex; gap: 12px; align-items: center; margin: 8px 0; color: var(--muted); }
.neighbours { display: flex; justify-content: space-between; margin: 6px 0 8px; }
.note { color: var(--muted); font-size: 12.5px; }
ul.legend { list-style: none; padding: 0; margin: 10px 0; display: flex; flex-wrap: wrap; gap: 4px 18px; }
ul.legend .badge { margin-right: 6px; }
.error { max-width: 640px; margin: 60px auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 24px 30px; }
.error .code { font-size: 44px; font-weight: 700; color: #b0b8c4; line-height: 1; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 10px; }
""".strip()

JS = """
"use strict";
// Sort tables (click a header) and filter them (the form before a table) in the browser.
(function () {
  function cellValue(row, index) {
    var td = row.cells[index];
    if (!td) return "";
    var v = td.getAttribute("data-v");
    if (v !== null) return v;
    v = td.textContent.trim().toLowerCase();
    return v === "\u2014" ? "" : v;  // an em dash: no value
  }
  function columns(table) {
    var out = {};
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (th.dataset.key) out[th.dataset.key] = i;
    });
    return out;
  }
  function sortTable(table, index, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.classList.contains("asc") ? -1 : 1;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.classList.remove("asc", "desc");
      h.removeAttribute("aria-sort");
    });
    th.classList.add(dir === 1 ? "asc" : "desc");
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var numeric = th.dataset.type === "num";
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      if (x === "" || y === "") return x === y ? 0 : (x === "" ? 1 : -1);  // empty cells last
      if (numeric) return (parseFloat(x) - parseFloat(y)) * dir;
      return x.localeCompare(y, undefined, { numeric: true }) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function filterTable(form, table) {
    var cols = columns(table);
    var controls = form.querySelectorAll("[data-filter]");
    var rows = table.tBodies[0].rows;
    var shown = 0;
    for (var r = 0; r < rows.length; r++) {
      var row = rows[r], ok = true;
      for (var c = 0; c < controls.length && ok; c++) {
        var el = controls[c], want = el.value.trim(), kind = el.dataset.filter;
        if (want === "") continue;
        if (kind === "text") {
          ok = row.textContent.toLowerCase().indexOf(want.toLowerCase()) >= 0;
        } else if (kind === "equals") {
          ok = cellValue(row, cols[el.dataset.key]) === want.toLowerCase();
        } else if (kind === "min" || kind === "max") {
          var v = cellValue(row, cols[el.dataset.key]);
          var x = parseFloat(v), limit = parseFloat(want);
          ok = v !== "" && !isNaN(limit) && (kind === "min" ? x >= limit : x <= limit);
        }
      }
      row.hidden = !ok;
      if (ok) shown++;
    }
    var count = form.querySelector(".count");
    if (count) count.textContent = shown + " of " + rows.length + " shown";
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.title = th.title || "sort";
      th.addEventListener("click", function () { sortTable(table, i, th); });
    });
  });
  var partial = document.querySelectorAll("table.partial");
  requestAnimationFrame(function () {
    setTimeout(function () {
      partial.forEach(function (t) { t.classList.remove("partial"); });
      document.body.dataset.ready = "1";
    }, 0);
  });
  document.querySelectorAll("form.filters[data-table]").forEach(function (form) {
    var table = document.getElementById(form.dataset.table);
    if (!table) return;
    var run = function () { filterTable(form, table); };
    form.addEventListener("input", run);
    form.addEventListener("change", run);
    form.addEventListener("submit", function (e) { e.preventDefault(); run(); });
    form.addEventListener("reset", function () { setTimeout(run, 0); });
    run();
  });
})();
""".strip()
