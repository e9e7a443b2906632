// Training pages: a run's loss chart and, for a policy run, its reward, KL, length, hedging/list and
// entropy charts (redrawn from the JSON each htmx poll swaps in), and a reward
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

  // A policy run's charts: one line per series, redrawn from the same data attribute each poll.
  const palette = [blue, orange, "#12b76a", "#7a5af8", "#f04438", grey];
  const rlCharts = {};
  function series(points, key) {
    return points.filter((p) => p[key] !== null && p[key] !== undefined).map((p) => ({ x: p.step, y: p[key] }));
  }
  function lineChart(id, datasets, yTitle) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    datasets.forEach((d, i) => Object.assign(d, { borderColor: d.borderColor || palette[i % palette.length], pointRadius: 0, borderWidth: 2 }));
    if (!rlCharts[id]) {
      rlCharts[id] = new Chart(canvas, {
        type: "line",
        data: { datasets },
        options: { parsing: false, scales: { x: { type: "linear", title: { display: true, text: "step" } }, y: { title: { display: true, text: yTitle } } } },
      });
    } else {
      rlCharts[id].data.datasets = datasets;
      rlCharts[id].update();
    }
    canvas.dataset.points = String(datasets.reduce((n, d) => (d.isLimit ? n : Math.max(n, d.data.length)), 0));
  }
  function drawPolicyRun() {
    const source = document.getElementById("run-metrics");
    if (!source || !document.getElementById("chart-reward")) return;
    const points = JSON.parse(source.dataset.metrics || "[]");
    const keys = new Set();
    points.forEach((p) => Object.keys(p).forEach((k) => k.startsWith("reward/") && keys.add(k)));
    lineChart("chart-reward", [{ label: "total", data: series(points, "reward") },
      ...[...keys].sort().map((k) => ({ label: k.slice(7), data: series(points, k), borderDash: [4, 3] }))], "reward");
    const kl = series(points, "kl");
    const canvas = document.getElementById("chart-kl");
    const ceiling = parseFloat(canvas.dataset.ceiling);
    const limit = kl.length && ceiling ? [{ label: `ceiling ${ceiling} nats`, isLimit: true, borderColor: "#f04438", borderDash: [6, 4],
      data: [{ x: kl[0].x, y: ceiling }, { x: kl[kl.length - 1].x, y: ceiling }] }] : [];
    lineChart("chart-kl", [{ label: "KL", data: kl }, ...limit], "nats");
    lineChart("chart-length", [{ label: "mean length", data: series(points, "length") }], "tokens");
    lineChart("chart-style", [{ label: "hedge words per 100", data: series(points, "hedging") },
      { label: "list answers (%)", data: series(points, "list_rate").map((p) => ({ x: p.x, y: 100 * p.y })) }], "rate");
    lineChart("chart-entropy", [{ label: "entropy", data: series(points, "entropy") }], "nats per token");
  }

  drawLoss();
  drawPolicyRun();
  drawModel();
  document.body.addEventListener("htmx:afterSettle", () => { drawLoss(); drawPolicyRun(); });
})();
