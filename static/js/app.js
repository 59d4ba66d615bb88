// Endpoint form: show only the fields that the chosen endpoint kind and auth kind use.
(function () {
  var AUTH_FOR_KIND = {
    http: ["none", "api_key", "bearer", "oauth2_client_credentials", "hmac", "mtls"],
    postgresql: ["none", "db_password"]
  };
  function sync() {
    var auth = document.getElementById("id_auth_kind");
    var kind = document.getElementById("id_kind");
    if (!auth) return;
    if (kind) {
      var allowed = AUTH_FOR_KIND[kind.value] || [];
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
