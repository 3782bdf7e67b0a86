/* The report's behaviour: filter, sort and page the rows held in #report-data; only the rows of the
   current page are in the DOM and their thumbnails load lazily. State lives in the URL's hash
   (#class=3&sort=probability&dir=desc&page=2&methods=gradcam,scorecam), so a link or a test opens
   the page in a given view. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var cols = data.columns;  // ["file", "class", "name", "probability", score names...]
  var col = {};
  cols.forEach(function (c, i) { col[c] = i; });
  var defaults = { cls: "", sort: "index", dir: "asc", minp: "", maxp: "", q: "", page: 1, size: data.page_size,
                   methods: data.methods.slice(), audit: false };
  var state = {};
  var $ = function (id) { return document.getElementById(id); };

  function readHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    Object.keys(defaults).forEach(function (k) { state[k] = defaults[k]; });
    if (h.has("class")) state.cls = h.get("class");
    if (h.has("sort")) state.sort = h.get("sort");
    if (h.has("dir")) state.dir = h.get("dir") === "desc" ? "desc" : "asc";
    if (h.has("minp")) state.minp = h.get("minp");
    if (h.has("maxp")) state.maxp = h.get("maxp");
    if (h.has("q")) state.q = h.get("q");
    if (h.has("page")) state.page = Math.max(1, parseInt(h.get("page"), 10) || 1);
    if (h.has("size")) state.size = Math.max(1, parseInt(h.get("size"), 10) || data.page_size);
    if (h.has("audit")) state.audit = true;
    if (h.has("methods")) state.methods = h.get("methods").split(",").filter(function (m) { return data.methods.indexOf(m) >= 0; });
  }

  function writeHash() {
    var h = new URLSearchParams();
    if (state.cls !== "") h.set("class", state.cls);
    if (state.sort !== "index") { h.set("sort", state.sort); h.set("dir", state.dir); }
    if (state.minp !== "") h.set("minp", state.minp);
    if (state.maxp !== "") h.set("maxp", state.maxp);
    if (state.q) h.set("q", state.q);
    if (state.page > 1) h.set("page", state.page);
    if (state.size !== data.page_size) h.set("size", state.size);
    if (state.methods.length !== data.methods.length) h.set("methods", state.methods.join(","));
    if (state.audit) h.set("audit", "1");
    var text = h.toString();
    history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
  }

  function selected() {
    var lo = state.minp === "" ? -Infinity : parseFloat(state.minp);
    var hi = state.maxp === "" ? Infinity : parseFloat(state.maxp);
    var q = state.q.toLowerCase();
    var idx = [];
    for (var i = 0; i < data.rows.length; i++) {
      var r = data.rows[i];
      if (state.cls !== "" && String(r[col["class"]]) !== state.cls) continue;
      var p = r[col.probability];
      if (p === null ? (state.minp !== "" || state.maxp !== "") : (p < lo || p > hi)) continue;
      if (q && r[col.file].toLowerCase().indexOf(q) < 0) continue;
      idx.push(i);
    }
    if (state.sort !== "index" && col.hasOwnProperty(state.sort)) {
      var c = col[state.sort], sign = state.dir === "desc" ? -1 : 1;
      idx.sort(function (a, b) {
        var x = data.rows[a][c], y = data.rows[b][c];
        if (x === null || x === undefined) return 1;  // missing scores last
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : x > y ? 1 : a - b) * sign;
      });
    } else if (state.dir === "desc") {
      idx.reverse();
    }
    return idx;
  }

  function cell(tr, cls, text) {
    var td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function picture(tr, src, alt, method) {
    var td = document.createElement("td");
    td.className = "pic";
    if (method) td.dataset.method = method;
    var img = document.createElement("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.src = src;
    img.alt = alt;
    td.appendChild(img);
    tr.appendChild(td);
  }

  function fmt(v) { return v === null || v === undefined ? "" : (Math.round(v * 10000) / 10000).toString(); }

  function render() {
    var idx = selected();
    var pages = Math.max(1, Math.ceil(idx.length / state.size));
    state.page = Math.min(state.page, pages);
    var start = (state.page - 1) * state.size, shown = idx.slice(start, start + state.size);
    var head = $("head"), body = $("rows");
    head.textContent = "";
    body.textContent = "";
    var htr = document.createElement("tr");
    ["#", "image", "file", "prediction", "probability"].concat(data.scores).concat(state.methods.map(function (m) {
      return data.titles[m] || m; })).forEach(function (t) {
      var th = document.createElement("th"); th.textContent = t; htr.appendChild(th); });
    head.appendChild(htr);
    shown.forEach(function (i) {
      var r = data.rows[i], tr = document.createElement("tr");
      tr.dataset.index = i;
      tr.dataset.file = r[col.file];
      tr.dataset["class"] = r[col["class"]];
      tr.dataset.probability = r[col.probability];
      cell(tr, "num", String(i + 1));
      picture(tr, data.thumbs + "/" + Math.floor(i / 1000) + "/" + i + ".0.jpg", r[col.file], "");
      cell(tr, "file", r[col.file]);
      cell(tr, "pred", r[col.name] ? r[col["class"]] + " " + r[col.name] : String(r[col["class"]]));
      var td = cell(tr, "num prob", fmt(r[col.probability]));
      var bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = Math.round(40 * (r[col.probability] || 0)) + "px";
      td.appendChild(bar);
      data.scores.forEach(function (s) { cell(tr, "num score", fmt(r[col[s]])); });
      state.methods.forEach(function (m) {
        var k = data.methods.indexOf(m) + 1;
        picture(tr, data.thumbs + "/" + Math.floor(i / 1000) + "/" + i + "." + k + ".jpg", m, m);
      });
      body.appendChild(tr);
    });
    $("empty").hidden = shown.length > 0;
    $("count").textContent = idx.length ? (start + 1) + "\u2013" + (start + shown.length) + " of " + idx.length +
      (idx.length < data.rows.length ? " (filtered from " + data.rows.length + ")" : "") : "0 of " + data.rows.length;
    $("page").value = state.page;
    $("page").max = pages;
    $("pages").textContent = pages;
    writeHash();
    if (state.audit) report();
  }

  function report() {  /* for tests: every resource the page loaded and any CSP violation, into #audit */
    var urls = performance.getEntriesByType("resource").map(function (e) { return e.name; });
    var paint = performance.getEntriesByType("paint").map(function (e) { return [e.name, e.startTime]; });
    $("audit").textContent = JSON.stringify({ resources: urls, violations: window.cspViolations || [],
                                              rows: data.rows.length, paint: paint });
  }

  function sync() {  /* the controls show the state */
    $("class").value = state.cls; $("sort").value = state.sort; $("dir").value = state.dir;
    $("minp").value = state.minp; $("maxp").value = state.maxp; $("q").value = state.q; $("size").value = state.size;
    Array.prototype.forEach.call($("methods").querySelectorAll("input"), function (c) {
      c.checked = state.methods.indexOf(c.value) >= 0; });
  }

  function controls() {
    var sel = $("class");
    data.classes.forEach(function (c) {
      var o = document.createElement("option");
      o.value = String(c[0]);
      o.textContent = c[1] ? c[0] + " " + c[1] + " (" + c[2] + ")" : c[0] + " (" + c[2] + ")";
      sel.appendChild(o);
    });
    var sort = $("sort");
    ["probability"].concat(data.scores).forEach(function (s) {
      var o = document.createElement("option"); o.value = s; o.textContent = s; sort.appendChild(o); });
    var box = $("methods");
    data.methods.forEach(function (m) {
      var l = document.createElement("label"), c = document.createElement("input");
      c.type = "checkbox"; c.value = m; c.checked = state.methods.indexOf(m) >= 0;
      c.addEventListener("change", function () {
        state.methods = data.methods.filter(function (n) {
          return box.querySelector('input[value="' + n + '"]').checked; });
        render();
      });
      l.appendChild(c); l.appendChild(document.createTextNode(" " + (data.titles[m] || m))); box.appendChild(l);
    });
    sync();
    function on(id, ev, fn) { $(id).addEventListener(ev, function () { fn(this.value); state.page = 1; render(); }); }
    on("class", "change", function (v) { state.cls = v; });
    on("sort", "change", function (v) { state.sort = v; });
    on("dir", "change", function (v) { state.dir = v; });
    on("minp", "input", function (v) { state.minp = v; });
    on("maxp", "input", function (v) { state.maxp = v; });
    on("q", "input", function (v) { state.q = v; });
    on("size", "change", function (v) { state.size = Math.max(1, parseInt(v, 10) || data.page_size); });
    $("page").addEventListener("change", function () { state.page = Math.max(1, parseInt(this.value, 10) || 1); render(); });
    $("prev").addEventListener("click", function () { state.page = Math.max(1, state.page - 1); render(); });
    $("next").addEventListener("click", function () { state.page += 1; render(); });
  }

  readHash();
  controls();
  render();
  window.addEventListener("load", function () { if (state.audit) report(); });
  window.addEventListener("hashchange", function () { readHash(); sync(); render(); });
})();
