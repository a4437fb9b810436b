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
