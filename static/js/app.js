// Spreadsheet-like keyboard moves in the grade table: Enter goes to the next student,
// Shift+Enter to the previous one; Tab keeps its native order (next cell in the row).
// No inline script anywhere, so a strict Content-Security-Policy can apply.
(function () {
  "use strict";

  function inputsOfColumn(table, column) {
    return Array.from(table.querySelectorAll('input[data-col="' + column + '"]'));
  }

  document.addEventListener("keydown", function (event) {
    const input = event.target;
    if (event.key !== "Enter" || !(input instanceof HTMLInputElement) || !input.dataset.col) {
      return;
    }
    const table = input.closest("table");
    if (!table) return;
    event.preventDefault();
    const column = inputsOfColumn(table, input.dataset.col);
    const index = column.indexOf(input);
    const next = column[index + (event.shiftKey ? -1 : 1)];
    if (next) {
      next.focus();
      next.select();
    } else {
      // Last student: leave the cell so its value is saved (change fires on blur).
      input.blur();
    }
  });

  // A cell swapped by htmx after an error: put the focus back so the teacher can correct it.
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    if (target && target.classList && target.classList.contains("invalid")) {
      const input = target.querySelector("input");
      if (input && document.activeElement === document.body) input.focus();
    }
  });
})();

// Review page: live word/character counts, time spent on each draft, Ctrl+Enter to validate
// and move to the next student.
(function () {
  "use strict";

  function updateCounts(textarea) {
    const form = textarea.closest("form");
    const counts = form && form.querySelector("[data-counts]");
    if (!counts) return;
    const text = textarea.value.trim();
    const words = text ? text.split(/\s+/).length : 0;
    const max = parseInt(textarea.dataset.maxChars || "0", 10);
    const over = max && textarea.value.length > max;
    counts.textContent = words + " mot(s) · " + textarea.value.length + " / " + max + " caractères" +
      (over ? " — au-delà de la limite du bulletin" : "");
    counts.classList.toggle("over", Boolean(over));
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-review]")) {
      updateCounts(event.target);
    }
  });

  document.addEventListener("focusin", function (event) {
    const textarea = event.target;
    if (!(textarea.matches && textarea.matches("textarea[data-review]"))) return;
    if (!textarea.dataset.startedAt) textarea.dataset.startedAt = String(Date.now());
  });

  document.addEventListener("htmx:configRequest", function (event) {
    const form = event.detail.elt.closest ? event.detail.elt.closest("form") : null;
    const textarea = form && form.querySelector("textarea[data-review]");
    if (textarea && textarea.dataset.startedAt) {
      const seconds = Math.round((Date.now() - Number(textarea.dataset.startedAt)) / 1000);
      event.detail.parameters["seconds_spent"] = String(seconds);
    }
  });

  let focusAfterSwap = null;
  document.addEventListener("keydown", function (event) {
    const textarea = event.target;
    if (!(textarea.matches && textarea.matches("textarea[data-review]"))) return;
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    event.preventDefault();
    const all = Array.from(document.querySelectorAll("textarea[data-review]"));
    const next = all[all.indexOf(textarea) + 1];
    focusAfterSwap = next ? next.id : null;
    const form = textarea.closest("form");
    if (form && window.htmx) window.htmx.trigger(form, "submit");
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (!focusAfterSwap) return;
    const next = document.getElementById(focusAfterSwap);
    focusAfterSwap = null;
    if (next) {
      next.focus();
      next.scrollIntoView({ block: "center" });
    }
  });

  // Quick draft sliders: show the value beside the label.
  document.addEventListener("input", function (event) {
    const input = event.target;
    if (input.type !== "range") return;
    const output = document.querySelector('output[data-for="' + input.id + '"]');
    if (output) output.textContent = input.value;
  });
})();
