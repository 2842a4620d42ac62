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
  // "Copy link" and "Copy as text": without a clipboard they stay plain links to the twins.
  function say(link, text) {
    var bar = link.closest(".sharebar");
    var out = bar && bar.querySelector(".copied");
    if (out) out.textContent = text;
  }
  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest && event.target.closest("a[data-copy]");
    if (!link || !navigator.clipboard || !window.isSecureContext) return;
    event.preventDefault();
    var url = new URL(link.getAttribute("href"), window.location.href).href;
    var text = link.getAttribute("data-copy") === "text"
      ? fetch(url).then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      : Promise.resolve(url);
    text.then(function (t) { return navigator.clipboard.writeText(t); })
      .then(function () { say(link, link.getAttribute("data-copy") === "text" ? "Text copied." : "Link copied."); })
      .catch(function () { window.location.href = url; });
  });
})();
