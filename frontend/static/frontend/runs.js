// Training pages: a run's loss chart (redrawn from the JSON each htmx poll swaps in), and a reward
// model's reliability diagram and accuracy per category. Data comes from json_script: read as
// data, never executed. Chart.js is vendored under static/vendor.
(function () {
  "use strict";
  if (!window.Chart) return;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  const blue = "#175cd3", orange = "#f79009", grey = "#98a2b3";

  let lossChart = null;
  function drawLoss() {
    const source = document.getElementById("run-metrics");
    const canvas = document.getElementById("chart-loss");
    if (!source || !canvas) return;
    const points = JSON.parse(source.dataset.metrics || "[]").filter((p) => p.loss !== null).map((p) => ({ x: p.step, y: p.loss }));
    if (!lossChart) {
      lossChart = new Chart(canvas, {
        type: "line",
        data: { datasets: [{ label: "training loss", data: points, borderColor: blue, pointRadius: 0, borderWidth: 2 }] },
        options: { parsing: false, scales: { x: { type: "linear", title: { display: true, text: "step" } }, y: { title: { display: true, text: "loss" } } } },
      });
    } else {
      lossChart.data.datasets[0].data = points;
      lossChart.update();
    }
    canvas.dataset.points = String(points.length);
  }

  function drawModel() {
    const source = document.getElementById("model-data");
    if (!source) return;
    const data = JSON.parse(source.textContent);
    const rel = document.getElementById("chart-reliability");
    if (rel) {
      new Chart(rel, {
        type: "scatter",
        data: {
          datasets: [
            { label: "observed", data: data.reliability.map((b) => ({ x: b.predicted, y: b.observed, n: b.count })), backgroundColor: blue, pointRadius: 5 },
            { label: "perfect calibration", type: "line", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: grey, borderDash: [4, 4], pointRadius: 0 },
          ],
        },
        options: {
          scales: { x: { min: 0, max: 1, title: { display: true, text: "predicted P(chosen wins)" } }, y: { min: 0, max: 1, title: { display: true, text: "observed" } } },
          plugins: { tooltip: { callbacks: { afterLabel: (c) => (c.raw.n ? `${c.raw.n} comparisons` : "") } } },
        },
      });
      rel.dataset.drawn = "true";
    }
    const cat = document.getElementById("chart-categories");
    if (cat) {
      const rows = [];
      for (const [dimension, list] of Object.entries(data.categories || {})) for (const r of list) rows.push({ name: `${dimension}: ${r.name}`, ...r });
      new Chart(cat, {
        type: "bar",
        data: { labels: rows.map((r) => r.name), datasets: [{ label: "accuracy", data: rows.map((r) => r.accuracy), backgroundColor: rows.map((r) => (r.accuracy < data.per_category ? orange : blue)) }] },
        options: { indexAxis: "y", scales: { x: { min: 0, max: 1 } }, plugins: { tooltip: { callbacks: { afterLabel: (c) => `${rows[c.dataIndex].pairs} pairs` } } } },
      });
      cat.dataset.drawn = "true";
    }
  }

  drawLoss();
  drawModel();
  document.body.addEventListener("htmx:afterSettle", drawLoss);
})();
