// Written work: an expert rewrite (start from scratch, restore the bad response) and an
// adversarial negative (both lengths, live, so authors see whether their flawed answer is longer).
(function () {
  "use strict";

  function changed(el) { el.dispatchEvent(new Event("input", { bubbles: true })); }

  document.addEventListener("click", function (e) {
    var text = document.getElementById("rewrite-text");
    if (!text) return;
    if (e.target.id === "from-scratch-button") {
      e.preventDefault();
      text.value = "";
      document.getElementById("from-scratch").value = "1";
      changed(text);
      text.focus();
    } else if (e.target.id === "restore-button") {
      e.preventDefault();
      text.value = document.getElementById("original-text").textContent;
      document.getElementById("from-scratch").value = "0";
      changed(text);
      text.focus();
    }
  });

  function showLengths() {
    var text = document.getElementById("negative-text"), good = document.getElementById("good-length");
    var out = document.getElementById("variant-length");
    if (!text || !good || !out) return;
    var n = text.value.length, g = parseInt(good.dataset.length, 10), d = n - g;
    out.textContent = n + " characters (" + (d > 0 ? "+" + d + ", longer" : d < 0 ? d + ", shorter" : "same length") + ")";
    out.classList.toggle("longer", d > 0);
  }
  document.addEventListener("input", function (e) { if (e.target.id === "negative-text") showLengths(); });
  document.addEventListener("htmx:afterSettle", showLengths);
  document.addEventListener("ps:draft-restored", function () {
    showLengths();
    // A restored rewrite needs its diff redrawn (setting a value fires no input event).
    var text = document.getElementById("rewrite-text");
    if (text && window.htmx) window.htmx.trigger(text, "input");
  });
})();
