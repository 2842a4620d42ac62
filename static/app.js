// mremap-viz: keys and the scrubber. No inline scripts; htmx does the requests.
(function () {
  "use strict";

  var KEYS = { ArrowLeft: "prev", ArrowRight: "next", Home: "first", End: "last" };

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    var rel = KEYS[event.key];
    if (!rel) return;
    var target = event.target;
    if (target && target.closest && target.closest("input, textarea, select, [contenteditable]")) {
      return; // the scrubber and the editor keep their own keys
    }
    var link = document.querySelector('#stepnav a[data-nav="' + rel + '"], #stmtnav a[data-nav="' + rel + '"]');
    if (!link) return;
    event.preventDefault();
    link.click();
  });

  // Keep the scrubber on the step the state panel shows (after a swap or Back).
  function syncScrubber() {
    var state = document.getElementById("state");
    var range = document.getElementById("step-range");
    var out = document.getElementById("step-out");
    if (!state || !range) return;
    var step = Number(state.getAttribute("data-step"));
    var total = Number(state.getAttribute("data-total"));
    if (document.activeElement !== range || Number(range.value) === step) {
      range.value = String(step);
      range.setAttribute("value", String(step));
    }
    range.setAttribute("aria-valuetext", "step " + (step + 1) + " of " + total);
    if (out) out.textContent = (step + 1) + " / " + total;
  }

  document.addEventListener("htmx:afterSettle", syncScrubber);
  document.addEventListener("htmx:historyRestore", syncScrubber);
  document.addEventListener("input", function (event) {
    if (event.target && event.target.id === "step-range") {
      var out = document.getElementById("step-out");
      var range = event.target;
      if (out) out.textContent = (Number(range.value) + 1) + " / " + (Number(range.max) + 1);
    }
  });
})();
