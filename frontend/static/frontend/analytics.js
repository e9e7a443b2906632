// Draws the analytics dashboard's charts from the JSON the page embeds (json_script: escaped
// data, never executed). Chart.js and the matrix plugin are vendored under static/vendor.
(function () {
  "use strict";
  const source = document.getElementById("analytics-data");
  if (!source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  const blue = "#175cd3", grey = "#98a2b3", red = "#d92d20";

  function chart(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return null;
    const made = new Chart(canvas, config);
    canvas.dataset.drawn = "true";
    return made;
  }

  // Krippendorff's alpha per time window, with its bootstrap interval as a band.
  const weeks = data.time || [];
  chart("chart-alpha-time", {
    type: "line",
    data: {
      labels: weeks.map((w) => w.start),
      datasets: [
        { label: "95% interval (high)", data: weeks.map((w) => w.alpha.high), borderWidth: 0, pointRadius: 0, fill: "+1", backgroundColor: "rgba(23,92,211,0.12)" },
        { label: "95% interval (low)", data: weeks.map((w) => w.alpha.low), borderWidth: 0, pointRadius: 0, fill: false },
        { label: "α nominal", data: weeks.map((w) => w.alpha.value), borderColor: blue, backgroundColor: blue },
        { label: "α ordinal", data: weeks.map((w) => w.alpha_ordinal && w.alpha_ordinal.value), borderColor: grey, backgroundColor: grey, borderDash: [4, 3] },
      ],
    },
    options: {
      scales: { y: { suggestedMin: 0, suggestedMax: 1, title: { display: true, text: "Krippendorff's α" } } },
      plugins: { legend: { labels: { filter: (item) => !item.text.startsWith("95%") } },
                 tooltip: { callbacks: { afterBody: (items) => { const w = weeks[items[0].dataIndex]; return `${w.judgments} judgments, ${w.units} items`; } } } },
    },
  });

  // Cohen's kappa heatmap.
  const k = data.kappa || { annotators: [] };
  const cells = [];
  k.annotators.forEach((a, i) => k.annotators.forEach((b, j) => {
    if (i !== j && k.kappa[i][j] !== null) {
      cells.push({ x: b, y: a, v: k.kappa[i][j], n: k.n[i][j], low: k.low[i][j], high: k.high[i][j] });
    }
  }));
  const size = Math.max(k.annotators.length, 1);
  function kappaText(c) {
    return `${c.y} × ${c.x}: κ = ${c.v} (95% interval ${c.low} to ${c.high}) on ${c.n} shared items`;
  }
  function kappaColour(v) {
    // -1..0 red, 0..1 white to blue.
    if (v < 0) return `rgba(217,45,32,${Math.min(1, -v)})`;
    return `rgba(23,92,211,${0.08 + 0.92 * Math.min(1, v)})`;
  }
  chart("chart-kappa", {
    type: "matrix",
    data: { datasets: [{
      label: "Cohen's κ", data: cells,
      backgroundColor: (c) => (c.raw ? kappaColour(c.raw.v) : "transparent"),
      width: ({ chart }) => (chart.chartArea || {}).width / size - 1,
      height: ({ chart }) => (chart.chartArea || {}).height / size - 1,
    }] },
    options: {
      // Hover does not exist on a phone: a tap (or click) writes the cell into the readout below.
      onClick: (event, elements, made) => {
        const readout = document.getElementById("kappa-readout");
        if (!readout || !elements.length) return;
        readout.textContent = kappaText(made.data.datasets[0].data[elements[0].index]);
      },
      plugins: { legend: { display: false }, tooltip: { callbacks: {
        title: () => "", label: (c) => kappaText(c.raw) } } },
      scales: {
        x: { type: "category", labels: k.annotators, offset: true, grid: { display: false }, ticks: { autoSkip: true } },
        y: { type: "category", labels: k.annotators, offset: true, grid: { display: false }, ticks: { autoSkip: true } },
      },
    },
  });

  // Length bias: the annotator's rate against the pool's on the same items.
  const people = (data.length || []).filter((p) => p.rate !== null && p.pool !== null);
  chart("chart-length", {
    type: "scatter",
    data: { datasets: [
      // Flagged: red and a triangle (colour is never the only signal).
      { label: "annotators (flagged: red triangles)", data: people.map((p) => ({ x: p.pool, y: p.rate, name: p.username, n: p.n })),
        pointBackgroundColor: people.map((p) => (p.flagged ? red : blue)),
        pointStyle: people.map((p) => (p.flagged ? "triangle" : "circle")),
        pointRadius: people.map((p) => (p.flagged ? 7 : 5)) },
      { label: "no bias", type: "line", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: grey, borderDash: [4, 3], pointRadius: 0 },
    ] },
    options: {
      scales: { x: { min: 0, max: 1, title: { display: true, text: "others chose the longer response" } },
                y: { min: 0, max: 1, title: { display: true, text: "this annotator chose it" } } },
      plugins: { tooltip: { callbacks: { label: (c) => c.raw.name ? `${c.raw.name}: ${c.raw.y} vs ${c.raw.x} (n=${c.raw.n})` : "" } } },
    },
  });

  // Flip rate per annotator on swapped re-asks: a floating bar for the 95% interval, a dot for the rate.
  const flips = data.consistency || [];
  chart("chart-consistency", {
    type: "bar",
    data: { labels: flips.map((r) => r.username), datasets: [
      { label: "95% interval", data: flips.map((r) => [r.low, r.high]), backgroundColor: "rgba(23,92,211,0.25)", borderColor: blue, borderWidth: 1 },
      { label: "flip rate", type: "scatter", data: flips.map((r, i) => ({ x: r.rate, y: i })), backgroundColor: blue, pointRadius: 5 },
    ] },
    options: {
      indexAxis: "y",
      scales: { x: { min: 0, suggestedMax: 0.5, title: { display: true, text: "share of re-asks answered differently" } },
                y: { ticks: { autoSkip: false } } },
      plugins: { tooltip: { callbacks: { label: (c) => { const r = flips[c.dataIndex]; return `${r.username}: ${r.rate} (${r.low}–${r.high}), n=${r.n}`; } } } },
    },
  });

  // Chosen minus rejected length.
  const hist = data.histogram || { edges: [], counts: [] };
  chart("chart-length-hist", {
    type: "bar",
    data: { labels: hist.counts.map((_, i) => `${hist.edges[i]}…${hist.edges[i + 1]}`),
            datasets: [{ label: "pairs", data: hist.counts, backgroundColor: hist.counts.map((_, i) => (hist.edges[i] >= 0 ? blue : grey)) }] },
    options: { plugins: { title: { display: true, text: "Chosen minus rejected length (characters)" }, legend: { display: false } } },
  });

  function coverage(id, rows, title) {
    // A "target" series (and its legend entry) only where a target is set.
    const hasTarget = rows.some((r) => r.target !== null && r.target !== undefined);
    chart(id, {
      type: "bar",
      data: { labels: rows.map((r) => r.name), datasets: [
        { label: "share", data: rows.map((r) => r.share), backgroundColor: blue },
      ].concat(hasTarget ? [{ label: "target", data: rows.map((r) => r.target), backgroundColor: grey }] : []) },
      options: { plugins: { title: { display: true, text: title } }, scales: { y: { min: 0, suggestedMax: 1 } } },
    });
  }
  coverage("chart-coverage", data.domains || [], "Domains: share of judged items against target");
  coverage("chart-difficulty", data.difficulty || [], "Difficulty: share against target");
})();
