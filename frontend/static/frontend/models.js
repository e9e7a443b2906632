// The runs page: "Use as backbone" puts a listed model directory into the reward-model form.
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest(".use-backbone");
    if (!button) return;
    var input = document.querySelector('#run-form input[name="base_model"]');
    if (!input) return;
    input.value = button.dataset.path;
    input.scrollIntoView({ block: "center" });
    input.focus();
  });
})();
