// Show only the settings of the chosen answer kind. Without JS every group shows, each saying
// which kinds it is for, and the server ignores settings that do not belong to the chosen kind.
(function () {
  "use strict";
  function sync() {
    var select = document.getElementById("id_input_type");
    if (!select) return;
    document.querySelectorAll("fieldset.kind-group").forEach(function (group) {
      var kinds = (group.getAttribute("data-input-kinds") || "").split(" ");
      var match = kinds.indexOf(select.value) !== -1;
      group.hidden = !match;
      // The max-count box only makes sense for lists of texts.
      var count = group.querySelector("#id_max_count");
      if (count) count.closest(".field").hidden = select.value !== "text_list";
    });
  }
  document.addEventListener("change", function (e) { if (e.target && e.target.id === "id_input_type") sync(); });
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", sync); } else { sync(); }
})();
