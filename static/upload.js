// The new-build page's file forms: send the file with a progress bar.
// Without this script (or without XMLHttpRequest) the form posts as it is;
// the server answers the same either way: 303 to the new build, or the form
// again with one line of error.
(function () {
  "use strict";
  if (!window.XMLHttpRequest || !window.FormData) return;

  function show(form, text) {
    var status = form.querySelector(".upload-status");
    if (status) status.textContent = text;
  }

  function errorLine(xhr) {
    // The answer is the form page again, or an error page: show its one line.
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var line = doc.querySelector("[role=alert], .error-message");
      if (line && line.textContent) return line.textContent.trim();
    } catch (e) { /* fall through */ }
    return "The upload was refused (HTTP " + xhr.status + ").";
  }

  function send(form, event) {
    var input = form.querySelector("input[type=file]");
    var file = input && input.files && input.files[0];
    var max = Number(form.getAttribute("data-max")) || 0;
    if (!file) return; // the browser's own check says what is missing
    event.preventDefault();
    if (max && file.size > max) {
      show(form, "The file is larger than this server takes (" + Math.floor(max / 1048576) + " MiB).");
      return;
    }
    var progress = form.querySelector(".upload-progress");
    var button = form.querySelector("button[type=submit]");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "text/html");
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable || !progress) return;
      progress.max = e.total;
      progress.value = e.loaded;
      show(form, Math.floor((100 * e.loaded) / e.total) + "% sent");
    };
    xhr.onload = function () {
      if (button) button.disabled = false;
      if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL) {
        // The 303 was followed: this is the new build's page (or the builds list).
        window.location.assign(xhr.responseURL);
        return;
      }
      if (progress) progress.hidden = true;
      show(form, errorLine(xhr));
    };
    xhr.onerror = function () {
      if (button) button.disabled = false;
      if (progress) progress.hidden = true;
      show(form, "The upload was interrupted; try again.");
    };
    if (progress) { progress.hidden = false; progress.value = 0; }
    if (button) button.disabled = true;
    show(form, "Sending...");
    xhr.send(new FormData(form));
  }

  var forms = document.querySelectorAll("form[data-upload]");
  Array.prototype.forEach.call(forms, function (form) {
    form.addEventListener("submit", function (event) { send(form, event); });
  });
})();
