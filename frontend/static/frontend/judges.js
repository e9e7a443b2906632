// The AI judges page: each judge's agreement with people's majority and its pre-label overturn
// rate, each a floating bar for the 95% interval with a dot for the rate. Data from json_script.
(function () {
  "use strict";
  const source = document.getElementById("judges-data");
  const canvas = document.getElementById("chart-judges");
  if (!source || !canvas || !window.Chart) return;
  const rows = JSON.parse(source.textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  const bar = (key) => rows.map((r) => (r[key] ? [r[key][0], r[key][2]] : null));
  const dot = (key) => rows.map((r, i) => (r[key] ? { x: r[key][1], y: i } : null)).filter(Boolean);
  new Chart(canvas, {
    type: "bar",
    data: { labels: rows.map((r) => r.name), datasets: [
      { label: "agrees with people (95% interval)", data: bar("agreement"), backgroundColor: "rgba(23,92,211,0.25)", borderColor: "#175cd3", borderWidth: 1 },
      { label: "pre-labels overturned (95% interval)", data: bar("overturn"), backgroundColor: "rgba(217,45,32,0.2)", borderColor: "#d92d20", borderWidth: 1 },
      { label: "agreement", type: "scatter", data: dot("agreement"), backgroundColor: "#175cd3", pointRadius: 5 },
      { label: "overturn rate", type: "scatter", data: dot("overturn"), backgroundColor: "#d92d20", pointRadius: 5 },
    ] },
    options: { indexAxis: "y", scales: { x: { min: 0, max: 1, title: { display: true, text: "share" } }, y: { ticks: { autoSkip: false } } } },
  });
  canvas.dataset.drawn = "true";
})();
