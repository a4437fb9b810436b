// Review page: put an earlier or offered text into a student's box, on the teacher's click
// only (« Restaurer », « Utiliser ce brouillon »). Nothing is saved before « Valider »; the
// hidden `draft` input tells the server which draft the text comes from, for the feedback.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    const button = event.target.closest ? event.target.closest("[data-fill-target]") : null;
    if (!button) return;
    const textarea = document.getElementById(button.dataset.fillTarget);
    if (!textarea) return;
    textarea.value = button.dataset.fillText || "";
    const form = textarea.closest("form");
    const draft = form && form.querySelector("input[data-draft]");
    if (draft && button.dataset.fillDraft !== undefined && button.dataset.fillDraft !== "") {
      draft.value = button.dataset.fillDraft;
    }
    // The live counts follow, as if typed.
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
    textarea.focus();
  });
})();
