// Endpoint form: show only the fields that the chosen endpoint kind and auth kind use.
(function () {
  // Which auth kinds each endpoint kind allows: written by the page from the one table in
  // certification/engine/auth_kinds.py (json_script), never repeated here.
  function authForKind() {
    var data = document.getElementById("auth-kinds-for");
    return data ? JSON.parse(data.textContent) : {};
  }
  function sync() {
    var auth = document.getElementById("id_auth_kind");
    var kind = document.getElementById("id_kind");
    if (!auth) return;
    if (kind) {
      var allowed = authForKind()[kind.value] || [];
      Array.prototype.forEach.call(auth.options, function (option) {
        option.hidden = allowed.indexOf(option.value) === -1;
      });
      if (allowed.indexOf(auth.value) === -1) auth.value = "none";
      var writable = document.getElementById("field-writable");
      if (writable) writable.hidden = kind.value !== "postgresql";
    }
    document.querySelectorAll(".auth-field").forEach(function (el) {
      var kinds = (el.dataset.authKinds || "").split(" ");
      el.hidden = kinds.indexOf(auth.value) === -1;
    });
  }
  document.addEventListener("change", function (e) {
    if (e.target && (e.target.id === "id_auth_kind" || e.target.id === "id_kind")) sync();
  });
  document.addEventListener("DOMContentLoaded", sync);
})();

// Live run page: the poll replaces the run section every second; keep the scenarios and
// exchanges the reader opened (or closed) as they were.
(function () {
  var state = null;
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (!e.detail.target || e.detail.target.id !== "run-live") return;
    state = {};
    e.detail.target.querySelectorAll("details[data-keep-open][id]").forEach(function (d) {
      state[d.id] = d.open;
    });
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!state) return;
    Object.keys(state).forEach(function (id) {
      var d = document.getElementById(id);
      if (d) d.open = state[id];
    });
    state = null;
  });
})();

// Endpoint form: hide the authentication box when the chosen kind needs no settings.
document.addEventListener("change", function () {
  var box = document.querySelector("fieldset.auth-box");
  if (!box) return;
  box.hidden = !box.querySelector(".auth-field:not([hidden])");
});
document.addEventListener("DOMContentLoaded", function () {
  document.dispatchEvent(new Event("change"));
});

// Times are shown in UTC (ISO 8601); the reader's local time is their tooltip. Runs again after
// every htmx swap, so live fragments get it too.
(function () {
  function localTimes(root) {
    (root || document).querySelectorAll("time.utc[datetime]:not([title])").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.title = "Your local time: " + d.toLocaleString();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  document.addEventListener("htmx:afterSettle", function (e) { localTimes(e.target); });
})();

// A form or button with data-confirm asks before it submits (Cancel run, and the like).
document.addEventListener("submit", function (e) {
  var form = e.target;
  var message = form.dataset.confirm || (e.submitter && e.submitter.dataset.confirm);
  if (message && !window.confirm(message)) e.preventDefault();
});
