// Keyboard-first labelling, time on item, and drafts that survive a failed submit or a reload.
// Every kind of work (comparison, ranking, rewrite, adversarial, rubric) is a `form.work-form` in #work;
// rank.js and author.js add what is particular to rankings and to written work.
(function () {
  "use strict";
  var CHOICE_KEYS = { a: "left", b: "right", t: "tie", x: "both_bad" };
  var STRENGTH_KEYS = { "1": "slight", "2": "clear", "3": "strong" };
  var shownAt = Date.now();

  function form() { return document.querySelector("#work form.work-form"); }
  function isWorkForm(el) { return !!(el && el.classList && el.classList.contains("work-form")); }
  function draftKey(f) { return "ps-draft-" + f.dataset.draft; }
  function pick(name, value) {
    var input = form().querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); }
  }

  function saveDraft() {
    var f = form(); if (!f) return;
    var data = {};
    // Repeated names (the flaw check boxes) keep every value.
    new FormData(f).forEach(function (v, k) {
      if (k === "time_spent_ms") return;
      if (k in data) data[k] = [].concat(data[k], v); else data[k] = v;
    });
    try { localStorage.setItem(draftKey(f), JSON.stringify(data)); } catch (e) { /* storage full: ignore */ }
  }

  function restoreDraft() {
    var f = form(); if (!f) return;
    var raw = null;
    try { raw = localStorage.getItem(draftKey(f)); } catch (e) { return; }
    if (!raw || f.querySelector("#rationale").value) return; // the server already sent our text back
    var data = JSON.parse(raw);
    f.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      if (box.name in data) box.checked = [].concat(data[box.name]).indexOf(box.value) >= 0;
    });
    Object.keys(data).forEach(function (k) {
      var field = f.elements[k];
      if (!field) return;
      if (field instanceof RadioNodeList || field.type === "radio" || field.type === "checkbox") {
        if (!(field instanceof RadioNodeList) || field[0].type === "radio") pick(k, data[k]);
      } else field.value = data[k];
    });
    f.dispatchEvent(new CustomEvent("ps:draft-restored", { bubbles: true }));
  }

  document.addEventListener("input", function (e) { if (isWorkForm(e.target.form)) saveDraft(); });
  document.addEventListener("change", function (e) { if (isWorkForm(e.target.form)) saveDraft(); });
  document.addEventListener("ps:changed", saveDraft); // rank.js reordered the list

  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target.id !== "work") return;
    var f = form();
    if (e.detail.xhr.status === 200) {
      shownAt = Date.now();
      // htmx re-focuses the element with the same id (the new rationale box) during the swap,
      // just before this event and in the same task: a fresh item must start with the keyboard
      // on the page, or the next shortcuts ("B", "3") would be typed into the box. Blurring here,
      // not after settling, leaves no moment in between for a key to land in the box. After a
      // refused submit (422, 409) the same item comes back and the focus stays where it was.
      var active = document.activeElement;
      if (active && document.getElementById("work").contains(active)) active.blur();
    }
    if (f) restoreDraft();
  });

  document.addEventListener("htmx:configRequest", function (e) {
    if (isWorkForm(e.detail.elt)) {
      e.detail.parameters["time_spent_ms"] = String(Date.now() - shownAt);
    }
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    var elt = e.detail.elt;
    if (isWorkForm(elt) && e.detail.xhr.status === 200) {
      try { localStorage.removeItem(draftKey(elt)); } catch (err) { /* ignore */ }
    }
  });

  // A fast key can land before htmx has wired up freshly swapped content (it does so after
  // settling); an unwired form would then submit as a plain page load. Wiring is idempotent.
  function wired(el) {
    if (window.htmx) window.htmx.process(el);
    return el;
  }

  // The behaviour spec, one key (G) or tap (the action bar's "Spec") away: opened and focused.
  function openSpec() {
    var spec = document.getElementById("spec"); if (!spec) return;
    spec.open = true;
    var summary = spec.querySelector("summary");
    spec.scrollIntoView({ block: "start" });
    if (summary) summary.focus();
  }
  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest(".spec-link");
    if (link) { e.preventDefault(); openSpec(); }
  });

  // Per-dimension choices: D moves through the dimension rows (Shift+D back); while a row holds
  // the focus, A/B/T/X set that dimension; Esc goes back to the overall choice.
  function dimRows(f) { return Array.prototype.slice.call(f.querySelectorAll("tr[data-dim]")); }
  function focusDim(f, step, from) {
    var rows = dimRows(f); if (!rows.length) return;
    var i = from ? rows.indexOf(from) : -1;
    var row = rows[(i + step + rows.length) % rows.length];
    if (i < 0 && step < 0) row = rows[rows.length - 1];
    var radio = row.querySelector("input:checked") || row.querySelector("input");
    radio.focus();
  }
  function pickIn(row, value) {
    var input = row.querySelector('input[value="' + value + '"]');
    if (input) { input.checked = true; input.focus(); input.dispatchEvent(new Event("change", { bubbles: true })); }
  }

  // Rubric checks: J/K move between checks; P/F/N answer the focused one (else the first still
  // open) and move on to the next check still open (none left: the focus stays).
  var RUBRIC_KEYS = { p: "pass", f: "fail", n: "na" };
  function checkRows(f) { return Array.prototype.slice.call(f.querySelectorAll("tr[data-check]")); }
  function firstOpenCheck(f) {
    return checkRows(f).filter(function (r) { return !r.querySelector("input:checked"); })[0] || null;
  }
  function focusCheck(f, step, from, openOnly) {
    var rows = checkRows(f); if (!rows.length) return;
    var i = from ? rows.indexOf(from) : -1;
    var row = openOnly ? firstOpenCheck(f) : rows[(i + step + rows.length) % rows.length];
    if (!openOnly && i < 0 && step < 0) row = rows[rows.length - 1];
    if (!row) return;  // every check answered: R goes on to the rationale
    (row.querySelector("input:checked") || row.querySelector("input")).focus();
  }

  // Numbered controls of written work: 1-9 tick a flaw (rewrite) or choose the flaw (negative).
  function numbered(f, name, n) {
    var inputs = f.querySelectorAll('input[name="' + name + '"]');
    var input = inputs[n - 1]; if (!input) return false;
    input.checked = input.type === "checkbox" ? !input.checked : true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  function click(id) {
    var el = document.getElementById(id);
    if (el) { wired(el).click(); return true; }
    return false;
  }

  document.addEventListener("keydown", function (e) {
    var f = form();
    if (!f) {
      // Feedback after a calibration answer: Enter or N goes on.
      var next = document.getElementById("continue-button");
      var key0 = e.key.toLowerCase();
      if (next && !e.ctrlKey && !e.metaKey && !e.altKey && (key0 === "enter" || key0 === "n")) {
        e.preventDefault();
        wired(next).click();
      } else if (key0 === "g" && !e.ctrlKey && !e.metaKey && !e.altKey && !e.target.matches("textarea, input, select")) {
        e.preventDefault(); openSpec();
      }
      return;
    }
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); wired(f).requestSubmit(); return; }
    var typing = e.target.matches("textarea, input[type=text], input[type=number], input[type=file], select");
    if (typing) { if (e.key === "Escape") e.target.blur(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var key = e.key.toLowerCase();
    var dimRow = e.target.closest && e.target.closest("tr[data-dim]");
    if (key === "g") { e.preventDefault(); openSpec(); return; }
    if (key === "r") { e.preventDefault(); f.querySelector("#rationale").focus(); return; }
    if (key === "s") { if (click("skip-button")) e.preventDefault(); return; }
    if (f.id === "judgment-form") {
      if (key === "d") { e.preventDefault(); focusDim(f, e.shiftKey ? -1 : 1, dimRow); }
      else if (key === "escape" && dimRow) { e.preventDefault(); e.target.blur(); }
      else if (CHOICE_KEYS[key] && dimRow) { e.preventDefault(); pickIn(dimRow, CHOICE_KEYS[key]); }
      else if (CHOICE_KEYS[key]) { e.preventDefault(); pick("choice", CHOICE_KEYS[key]); }
      else if (STRENGTH_KEYS[key]) { e.preventDefault(); pick("strength", STRENGTH_KEYS[key]); }
    } else if (f.id === "rewrite-form") {
      if (key === "e") { e.preventDefault(); f.querySelector("#rewrite-text").focus(); }
      else if (key === "n") { if (click("from-scratch-button")) e.preventDefault(); }
      else if (key === "o") { if (click("restore-button")) e.preventDefault(); }
      else if (/^[1-9]$/.test(key) && numbered(f, "flaws", Number(key))) e.preventDefault();
    } else if (f.id === "rubric-form") {
      var checkRow = e.target.closest && e.target.closest("tr[data-check]");
      if (key === "j" || key === "k") { e.preventDefault(); focusCheck(f, key === "j" ? 1 : -1, checkRow); }
      else if (RUBRIC_KEYS[key]) {
        e.preventDefault();
        var row = checkRow || firstOpenCheck(f);
        if (row) { pickIn(row, RUBRIC_KEYS[key]); focusCheck(f, 1, row, true); }
      }
    } else if (f.id === "negative-form") {
      if (key === "e") { e.preventDefault(); f.querySelector("#negative-text").focus(); }
      else if (/^[1-9]$/.test(key) && numbered(f, "flaw_type", Number(key))) e.preventDefault();
    }
  });
})();
