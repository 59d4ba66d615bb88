// The run page. The poll replaces only the header (#run-live); it carries one letter per
// scenario (data-codes). A scenario shown on the page whose letter changed is fetched again on
// its own; one that starts failing while you watch opens itself. Steps of a scenario that was
// not sent open load when it is opened. Opened and closed scenarios stay as the reader left them.
(function () {
  var CODES = { queued: "q", running: "r", passed: "p", failed: "f", error: "e",
                cancelled: "c", unevaluated: "u" };
  var FAILING = "feu";
  var pending = {};

  function loadSteps(details) {
    var body = details.querySelector(":scope > .scenario-body[data-steps-url]");
    if (!body) return;
    var url = body.getAttribute("data-steps-url");
    body.removeAttribute("data-steps-url");
    body.setAttribute("aria-busy", "true");
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.text();
      })
      .then(function (html) {
        body.innerHTML = html;
        body.removeAttribute("aria-busy");
        if (window.htmx) window.htmx.process(body);
      })
      .catch(function () {
        body.setAttribute("data-steps-url", url); // try again on the next opening
        body.removeAttribute("aria-busy");
        body.innerHTML = '<p class="error">The steps could not be loaded; close and open again.</p>';
      });
  }

  function refresh(details, code) {
    var index = details.getAttribute("data-index");
    var list = document.getElementById("run-scenarios");
    if (!list || pending[index]) return;
    pending[index] = true;
    var url = list.getAttribute("data-scenario-url") + "?index=" + encodeURIComponent(index);
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.text();
      })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        var current = document.getElementById(details.id);
        if (!fresh || !current) return;
        var newCode = CODES[fresh.getAttribute("data-status")] || "";
        var oldCode = CODES[current.getAttribute("data-status")] || "";
        var startsFailing = FAILING.indexOf(newCode) >= 0 && FAILING.indexOf(oldCode) < 0;
        var keepFocus = current.contains(document.activeElement);
        if (!startsFailing) fresh.open = current.open;
        current.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
        if (fresh.open) loadSteps(fresh);
        if (keepFocus) fresh.querySelector("summary").focus();
      })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { delete pending[index]; });
  }

  function sync() {
    var head = document.getElementById("run-live");
    if (!head) return;
    var codes = head.getAttribute("data-codes") || "";
    document.querySelectorAll("#run-scenarios details.scenario[data-index]").forEach(function (d) {
      var code = codes.charAt(parseInt(d.getAttribute("data-index"), 10));
      if (code && code !== CODES[d.getAttribute("data-status")]) refresh(d, code);
    });
  }

  document.addEventListener("htmx:afterSettle", function (e) {
    if (e.target && e.target.id === "run-live") sync();
  });
  // `toggle` does not bubble: listen in the capture phase.
  document.addEventListener("toggle", function (e) {
    var d = e.target;
    if (d.matches && d.matches("details.scenario") && d.open) loadSteps(d);
  }, true);
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#run-scenarios details.scenario[open]").forEach(loadSteps);
    sync();
  });
})();
