// "Copier" buttons of the export pages: a button with data-copy="ID" copies the text of the
// element with that id (a textarea's value, else its text) for pasting into Pronote.
// navigator.clipboard needs a secure context (HTTPS or localhost): elsewhere the text is
// selected and copied the old way, or left selected for Ctrl+C.
// No inline script anywhere, so a strict Content-Security-Policy can apply.
(function () {
  "use strict";

  function sourceText(source) {
    if (source instanceof HTMLTextAreaElement || source instanceof HTMLInputElement) {
      return source.value;
    }
    return source.textContent.trim();
  }

  function selectSource(source) {
    if (source instanceof HTMLTextAreaElement || source instanceof HTMLInputElement) {
      source.focus();
      source.select();
      return;
    }
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function announce(button, message) {
    const status = document.getElementById("copy-status");
    if (status) {
      // Emptied first: the same message twice in a row is announced twice.
      status.textContent = "";
      window.setTimeout(function () {
        status.textContent = message;
      }, 50);
    }
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = message.startsWith("Copié") ? "Copié ✓" : button.dataset.label;
    window.clearTimeout(Number(button.dataset.timer || 0));
    button.dataset.timer = String(
      window.setTimeout(function () {
        button.textContent = button.dataset.label;
      }, 2000)
    );
  }

  function legacyCopy(source) {
    selectSource(source);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = sourceText(source);
    // The live region says what was copied: the student's name when one line was.
    const what = button.dataset.copied;
    const done = function () {
      announce(button, what ? "Copié : " + what + "." : "Copié dans le presse-papiers.");
    };
    const fallback = function () {
      if (legacyCopy(source)) {
        done();
      } else {
        announce(button, "Texte sélectionné : appuyez sur Ctrl+C pour le copier.");
      }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  });
})();
