// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // Mark the span whose details are shown, so the tree shows where you are.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.span-link");
    if (!link) return;
    document.querySelectorAll("a.span-link.selected").forEach(function (el) { el.classList.remove("selected"); });
    link.classList.add("selected");
  });
})();
