// baimo console: draws the charts whose data the server put in the page, and
// asks before destructive forms. No other script runs (CSP: script-src 'self').
(function () {
  "use strict";
  var palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9333ea", "#ea580c", "#475569"];
  var body = document.body;
  var zone = body.getAttribute("data-zone") || "UTC";
  var noData = body.getAttribute("data-nodata") || "no data";
  var charts = [];

  function fmt(v, unit) {
    if (v == null) return noData;
    var a = Math.abs(v), s;
    if (a >= 100 || a === 0) s = Math.round(v).toLocaleString();
    else if (a >= 1) s = (Math.round(v * 100) / 100).toLocaleString();
    else s = Number(v.toPrecision(3)).toString();
    if (!unit) return s;
    return unit === "ms" ? s + " ms" : unit + s;
  }

  function draw(el, spec) {
    var n = spec.series.length;
    var data = [spec.x];
    var orig = [];
    var running = spec.x.map(function () { return null; });
    for (var i = 0; i < n; i++) {
      var vals = spec.series[i].values;
      orig.push(vals);
      if (spec.stack) {
        running = vals.map(function (v, j) {
          if (v == null) return running[j];
          return (running[j] || 0) + v;
        });
        data.push(running.slice());
      } else {
        data.push(vals);
      }
    }
    var series = [{ value: function (u, ts) { return ts == null ? "" : uPlot.tzDate(new Date(ts * 1e3), zone).toLocaleString(); } }];
    var stepped = uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : null;
    var bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 40] }) : null;
    for (var k = 0; k < n; k++) {
      var color = palette[k % palette.length];
      var s = {
        label: spec.series[k].label,
        stroke: color,
        width: spec.kind === "bars" ? 0 : 2,
        spanGaps: false,
        points: { show: spec.x.length < 40 },
        value: (function (idx) { return function (u, v, si, di) { return di == null ? "" : fmt(orig[idx][di], spec.unit); }; })(k)
      };
      if (spec.kind === "bars") { s.fill = color + "cc"; s.paths = bars; }
      if (spec.kind === "step") { s.paths = stepped; }
      series.push(s);
    }
    if (spec.stack) {
      // Draw the tallest (cumulative) first so each part shows on top of it.
      var order = series.slice(1).map(function (s, i) { return i; }).reverse();
      var d2 = [data[0]], s2 = [series[0]];
      order.forEach(function (i) { d2.push(data[i + 1]); s2.push(series[i + 1]); });
      data = d2; series = s2;
    }
    var opts = {
      width: Math.max(280, el.clientWidth || 600),
      height: 220,
      series: series,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), zone); },
      axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return fmt(v, spec.unit === "ms" ? "" : spec.unit); }); }, size: 70 }],
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [Math.min(0, min || 0), (max || 1) * 1.1]; } } },
      legend: { live: true },
      cursor: { drag: { x: true, y: false } }
    };
    if (!spec.x.length) {
      el.textContent = noData;
      el.className += " empty";
      return;
    }
    charts.push({ el: el, plot: new uPlot(opts, data, el) });
  }

  function init() {
    var nodes = document.querySelectorAll("script.chart-data");
    for (var i = 0; i < nodes.length; i++) {
      var spec;
      try { spec = JSON.parse(nodes[i].textContent); } catch (e) { continue; }
      var el = document.getElementById(nodes[i].getAttribute("data-for"));
      if (el && window.uPlot) draw(el, spec);
    }
    document.addEventListener("submit", function (e) {
      var f = e.target;
      if (f.classList && f.classList.contains("confirm") && !window.confirm(f.getAttribute("data-confirm"))) {
        e.preventDefault();
      }
    });
    window.addEventListener("resize", function () {
      charts.forEach(function (c) { c.plot.setSize({ width: Math.max(280, c.el.clientWidth), height: 220 }); });
    });
    body.setAttribute("data-ready", "1");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
