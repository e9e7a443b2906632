// Ranking: order 3-8 responses best first, by keyboard or by dragging, with ties.
// The list's state is written to the hidden #order input as "C>A=D>B" (letters as shown; "="
// ties a response with the one above it), which is what the server validates and stores.
(function () {
  "use strict";

  function list() { return document.getElementById("rank-list"); }
  function cards() { var l = list(); return l ? Array.prototype.slice.call(l.querySelectorAll(".rank-card")) : []; }
  function selected() { var l = list(); return l && l.querySelector(".rank-card.selected"); }

  function sync() {
    var all = cards(), order = "", rank = 0;
    all.forEach(function (card, i) {
      if (i === 0) card.dataset.tied = "0"; // the top response has nothing above to tie with
      var tied = card.dataset.tied === "1";
      if (i > 0) order += tied ? "=" : ">";
      if (!tied) rank += 1;
      order += card.dataset.label;
      card.querySelector(".rank-pos").textContent = "#" + rank;
      var toggle = card.querySelector(".tie-toggle");
      toggle.setAttribute("aria-pressed", tied ? "true" : "false");
      toggle.disabled = i === 0;
      card.classList.toggle("tied", tied);
    });
    var input = document.getElementById("order"), out = document.getElementById("order-text");
    if (input) input.value = order;
    if (out) out.textContent = order;
    document.dispatchEvent(new CustomEvent("ps:changed"));
  }

  function select(card) {
    cards().forEach(function (c) { c.classList.remove("selected"); c.setAttribute("aria-current", "false"); });
    if (!card) return;
    card.classList.add("selected");
    card.setAttribute("aria-current", "true");
    card.focus({ preventScroll: false });
  }

  // Arrange the cards as an order string says (a restored draft, or the server's echo after a
  // refused submit). An order that does not name every card exactly once leaves the list alone.
  function arrange(order) {
    var l = list(); if (!l || !order) return;
    var byLabel = {}, all = cards(), plan = [];
    all.forEach(function (c) { byLabel[c.dataset.label] = c; });
    order.split(">").forEach(function (tier) {
      tier.split("=").forEach(function (label, j) { plan.push([byLabel[label], j > 0]); });
    });
    var distinct = plan.filter(function (p, i) { return p[0] && plan.findIndex(function (q) { return q[0] === p[0]; }) === i; });
    if (plan.length !== all.length || distinct.length !== all.length) return;
    plan.forEach(function (p) { p[0].dataset.tied = p[1] ? "1" : "0"; l.appendChild(p[0]); });
    sync();
  }

  function init() {
    var l = list(); if (!l || l.dataset.ready) return;
    l.dataset.ready = "1";
    var input = document.getElementById("order");
    arrange(input && input.value);
    sync();
    select(cards()[0]);
  }

  function move(card, delta) {
    var all = cards(), i = all.indexOf(card), j = i + delta;
    if (i < 0 || j < 0 || j >= all.length) return;
    // A moved response leaves its tie behind: ties are re-declared where it lands.
    card.dataset.tied = "0";
    if (delta < 0) list().insertBefore(card, all[j]); else list().insertBefore(card, all[j].nextSibling);
    sync();
    select(card);
  }

  function toggleTie(card) {
    if (!card || cards().indexOf(card) === 0) return;
    card.dataset.tied = card.dataset.tied === "1" ? "0" : "1";
    sync();
  }

  document.addEventListener("htmx:afterSettle", init);
  document.addEventListener("ps:draft-restored", function () {
    var input = document.getElementById("order");
    if (list()) { arrange(input && input.value); }
  });
  document.addEventListener("DOMContentLoaded", init);

  document.addEventListener("keydown", function (e) {
    var l = list(); if (!l) return;
    if (e.target.matches("textarea, input[type=text], select") || e.ctrlKey || e.metaKey || e.altKey) return;
    var card = selected() || cards()[0], all = cards(), i = all.indexOf(card);
    var key = e.key;
    var down = key === "ArrowDown" || key === "j" || key === "J";
    var up = key === "ArrowUp" || key === "k" || key === "K";
    if ((down || up) && e.shiftKey) { e.preventDefault(); move(card, down ? 1 : -1); }
    else if (down) { e.preventDefault(); select(all[Math.min(i + 1, all.length - 1)]); }
    else if (up) { e.preventDefault(); select(all[Math.max(i - 1, 0)]); }
    else if (key === "=") { e.preventDefault(); toggleTie(card); }
  });

  document.addEventListener("click", function (e) {
    var toggle = e.target.closest && e.target.closest(".tie-toggle");
    var card = e.target.closest && e.target.closest(".rank-card");
    if (toggle && card) { e.preventDefault(); toggleTie(card); select(card); }
    else if (card) select(card);
  });

  // Dragging with the mouse: the card follows the pointer; dropping keeps the new place.
  var dragged = null;
  document.addEventListener("dragstart", function (e) {
    var card = e.target.closest && e.target.closest(".rank-card");
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.dataset.label);
  });
  document.addEventListener("dragover", function (e) {
    var over = e.target.closest && e.target.closest(".rank-card");
    if (!dragged || !over || over === dragged) return;
    e.preventDefault();
    var box = over.getBoundingClientRect();
    var after = e.clientY > box.top + box.height / 2;
    list().insertBefore(dragged, after ? over.nextSibling : over);
  });
  document.addEventListener("dragend", function () {
    if (!dragged) return;
    dragged.classList.remove("dragging");
    dragged.dataset.tied = "0";
    var card = dragged;
    dragged = null;
    sync();
    select(card);
  });
  document.addEventListener("drop", function (e) { if (dragged) e.preventDefault(); });
})();
