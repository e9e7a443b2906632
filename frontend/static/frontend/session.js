// The session panel ("Today"): counts a submitted task at once and shows the break reminder after
// a long stretch of work, without asking the server again (no request per minute per annotator).
// The server renders the stretch so far (data-stretch-start, data-last-done, in epoch seconds).
(function () {
  "use strict";
  function panel() { return document.getElementById("session"); }
  function num(el, name) { var v = el.dataset[name]; return v ? Number(v) : null; }
  function now() { return Date.now() / 1000; }

  function refresh() {
    var p = panel(); if (!p) return;
    var start = num(p, "stretchStart"), last = num(p, "lastDone");
    var gap = num(p, "breakGap"), after = num(p, "breakAfter");
    var reminder = document.getElementById("break-reminder");
    if (!reminder || start === null || last === null) return;
    var going = now() - last <= gap;
    reminder.hidden = !(going && last - start >= after);
    var minutes = reminder.querySelector(".stretch-minutes");
    if (minutes) minutes.textContent = String(Math.floor((last - start) / 60));
  }

  document.addEventListener("htmx:afterRequest", function (e) {
    var elt = e.detail.elt, p = panel();
    if (!p || !elt.classList || !elt.classList.contains("work-form") || e.detail.xhr.status !== 200) return;
    var t = now(), last = num(p, "lastDone"), gap = num(p, "breakGap");
    if (last === null || t - last > gap) p.dataset.stretchStart = String(t);
    p.dataset.lastDone = String(t);
    var done = document.getElementById("done-today");
    if (done) done.textContent = String(Number(done.textContent) + 1);
    var bar = document.getElementById("goal-progress");
    if (bar) bar.value = Number(bar.value) + 1;
    refresh();
  });
  document.addEventListener("DOMContentLoaded", refresh);
  setInterval(refresh, 60000);
})();
