// The project's tabs scroll sideways on a narrow screen: bring the current one into view.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var current = document.querySelector('.tabs a[aria-current="page"]');
    if (current && current.scrollIntoView) current.scrollIntoView({ block: "nearest", inline: "center" });
  });
})();
