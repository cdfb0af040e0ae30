// Show only what the chosen judge kind and output use. Without JS everything shows, each group saying
// what it is for, and the server keeps only the settings of the chosen kind and output.
(function () {
  "use strict";
  function sync() {
    var kind = document.querySelector("input[name=kind]:checked");
    var output = document.getElementById("id_output_kind");
    document.querySelectorAll("fieldset[data-judge-kind]").forEach(function (group) {
      group.hidden = !!kind && group.getAttribute("data-judge-kind") !== kind.value;
    });
    if (!output) return;
    var categories = document.getElementById("id_categories");
    if (categories) categories.closest(".field").hidden = output.value !== "categories";
    var scale = document.querySelector(".scale-fields");
    if (scale) scale.hidden = output.value !== "scale";
  }
  document.addEventListener("change", function (e) {
    if (e.target && (e.target.name === "kind" || e.target.id === "id_output_kind")) sync();
  });
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", sync); } else { sync(); }
})();
