/* A Copy button beside each once-shown API key secret (without script the secret is plain, selectable text). */
(function () {
  "use strict";

  function select(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Where the Clipboard API is missing or refused (a page served over plain HTTP to another host): the old way.
  function copyBySelection(element) {
    select(element);
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(element) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(element.textContent).catch(function () {
        return copyBySelection(element);
      });
    }
    return copyBySelection(element);
  }

  function addButton(secret) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button copy-secret";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      copy(secret).then(
        function () {
          button.textContent = "Copied";
        },
        function () {
          select(secret);
          button.textContent = "Selected: press Ctrl+C";
        }
      );
    });
    secret.after(" ", button);
  }

  function init() {
    document.querySelectorAll("code.once-shown-secret").forEach(addButton);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
