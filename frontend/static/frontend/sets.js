// A preference set's coverage charts, drawn from the JSON the page embeds (json_script: data,
// never executed). Chart.js is vendored under static/vendor.
(function () {
  "use strict";
  const source = document.getElementById("set-data");
  if (!source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  const blue = "#175cd3", orange = "#f79009";

  function bars(id, rows, label, color) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: { labels: rows.map((r) => r.name), datasets: [{ label: label, data: rows.map((r) => r.count), backgroundColor: color }] },
      options: { plugins: { tooltip: { callbacks: { afterLabel: (c) => `${Math.round(100 * rows[c.dataIndex].share)}% of the set` } } } },
    });
    canvas.dataset.drawn = "true";
  }

  function histogram(id, bins, label, format) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: { labels: bins.map(format), datasets: [{ label: label, data: bins.map((b) => b.count), backgroundColor: blue }] },
    });
    canvas.dataset.drawn = "true";
  }

  bars("chart-domains", data.domains || [], "pairs", blue);
  bars("chart-tags", (data.tags || []).concat((data.flaw_types || []).map((f) => ({ ...f, name: "flaw: " + f.name }))), "pairs", orange);
  const edge = (v) => (Math.abs(v) >= 10000 ? (v < 0 ? "−∞" : "∞") : String(v));
  histogram("chart-gap", data.length_gap || [], "pairs", (b) => `${edge(b.low)} to ${edge(b.high)}`);
  histogram("chart-confidence", data.confidence || [], "pairs", (b) => `${b.low.toFixed(2)}–${Math.min(b.high, 1).toFixed(2)}`);
})();
