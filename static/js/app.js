// Show only the authentication fields that the chosen auth kind uses.
(function () {
  function syncAuthFields() {
    var select = document.getElementById("id_auth_kind");
    if (!select) return;
    document.querySelectorAll(".auth-field").forEach(function (el) {
      var kinds = (el.dataset.authKinds || "").split(" ");
      el.hidden = kinds.indexOf(select.value) === -1;
    });
  }
  document.addEventListener("change", function (e) {
    if (e.target && e.target.id === "id_auth_kind") syncAuthFields();
  });
  document.addEventListener("DOMContentLoaded", syncAuthFields);
})();
