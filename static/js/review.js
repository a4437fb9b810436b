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

// Grammalecte's suggestions (« Grammaire », « Orthographe », « Typographie »): a click
// replaces that passage in the student's box, and only that; nothing is saved before
// « Valider ». The offsets were computed on the checked text: if the teacher typed since,
// the passage is looked for nearby, and a passage no longer there is left alone.
(function () {
  "use strict";

  function nearest(value, original, around) {
    let best = -1;
    let from = value.indexOf(original);
    while (from !== -1) {
      if (best === -1 || Math.abs(from - around) < Math.abs(best - around)) best = from;
      from = value.indexOf(original, from + 1);
    }
    return best;
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest ? event.target.closest("[data-replace-target]") : null;
    if (!button) return;
    const textarea = document.getElementById(button.dataset.replaceTarget);
    if (!textarea) return;
    const original = button.dataset.replaceOriginal || "";
    const replacement = button.dataset.replaceWith || "";
    const value = textarea.value;
    // Python counts characters (code points), JavaScript UTF-16 units: convert.
    const start = Array.from(value).slice(0, Number(button.dataset.replaceStart) || 0).join("").length;
    const at = value.substr(start, original.length) === original ? start : nearest(value, original, start);
    if (!original || at === -1) {
      button.disabled = true;
      button.title = "Le texte a changé : ce passage n'y est plus.";
      return;
    }
    textarea.value = value.slice(0, at) + replacement + value.slice(at + original.length);
    // The live counts follow, as if typed.
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
    textarea.focus();
    textarea.setSelectionRange(at, at + replacement.length);
    // This problem is fixed: its other suggestions no longer apply.
    const group = button.closest("[data-suggestions]");
    (group ? group.querySelectorAll("button") : [button]).forEach(function (other) {
      other.disabled = true;
    });
  });
})();
