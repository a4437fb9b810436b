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

// Review page while a class generation runs: the progress poll brings, out of band, the rows
// whose draft just arrived. A row whose textarea holds unsaved typing (its value differs from
// the text the server last rendered, data-saved-text) is never replaced: the teacher is told
// « Nouveau brouillon disponible » and chooses to use the draft or keep her text. Keeping it
// also takes the arrived row's version, so that « Valider » then saves HER text instead of
// answering that someone changed the appréciation meanwhile.
(function () {
  "use strict";

  const arrivedDrafts = new WeakMap(); // row (article) -> the arrived row, not yet shown
  let refocusId = null;

  function normalized(text) {
    return (text || "").replace(/\r\n?/g, "\n").trim();
  }

  function reviewTextarea(row) {
    return row.querySelector("textarea[data-review]");
  }

  function hasUnsavedTyping(row, textarea) {
    // A refused validation shows her text beside the textarea (details.conflict): unsaved too.
    return (
      normalized(textarea.value) !== normalized(textarea.dataset.savedText) ||
      Boolean(row.querySelector("details.conflict"))
    );
  }

  function versionOf(row) {
    const input = row.querySelector('input[name="version"]');
    return input ? parseInt(input.value || "0", 10) : 0;
  }

  function studentName(row) {
    const heading = row.querySelector("h3, h2");
    return heading ? heading.textContent.trim() : "";
  }

  function button(label, name, action) {
    const element = document.createElement("button");
    element.type = "button";
    element.dataset.draftAction = action;
    element.append(label);
    if (name) {
      // Several rows may show the notice at once: the button says whose draft it is.
      const hidden = document.createElement("span");
      hidden.className = "visually-hidden";
      hidden.textContent = " (" + name + ")";
      element.append(hidden);
    }
    return element;
  }

  function clearNotice(row, message) {
    const notice = row.querySelector("[data-draft-notice]");
    if (!notice) return;
    notice.classList.remove("shown");
    Array.from(notice.children).forEach(function (child) {
      if (!child.matches("[data-draft-status]")) child.remove();
    });
    const status = notice.querySelector("[data-draft-status]");
    if (status) status.textContent = message || "";
  }

  function showNotice(row, arrived) {
    const notice = row.querySelector("[data-draft-notice]");
    const status = notice && notice.querySelector("[data-draft-status]");
    if (!status) return false;
    clearNotice(row);
    const arrivedTextarea = reviewTextarea(arrived);
    const name = studentName(row);
    // The live region (present, empty, since the page loaded) announces the news only; the
    // buttons sit beside it.
    status.textContent =
      "Nouveau brouillon disponible" + (name ? " pour " + name : "") +
      " : votre texte n'a pas été remplacé.";
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "Voir le brouillon";
    const quote = document.createElement("blockquote");
    quote.textContent = arrivedTextarea ? arrivedTextarea.value : "";
    details.append(summary, quote);
    const actions = document.createElement("p");
    actions.className = "draft-notice-actions";
    actions.append(
      button("Utiliser ce brouillon", name, "use"),
      " ",
      button("Garder mon texte", name, "keep")
    );
    notice.append(details, actions);
    notice.classList.add("shown");
    return true;
  }

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    const row = event.detail.target;
    const fragment = event.detail.fragment;
    if (!(row && row.matches && row.matches("article.review-row")) || !fragment) return;
    const textarea = reviewTextarea(row);
    const arrived = fragment.querySelector("article.review-row");
    if (!textarea || !arrived || !reviewTextarea(arrived)) return;
    if (!hasUnsavedTyping(row, textarea)) {
      // Replaced as usual; a teacher who was in the textarea stays there.
      if (row.contains(document.activeElement)) refocusId = document.activeElement.id || null;
      return;
    }
    if (versionOf(arrived) <= versionOf(row)) {
      // The same appréciation sent again (a poll's window may overlap): nothing new.
      event.detail.shouldSwap = false;
      return;
    }
    const kept = arrived.cloneNode(true);
    if (!showNotice(row, kept)) return;
    event.detail.shouldSwap = false;
    arrivedDrafts.set(row, kept);
  });

  document.addEventListener("htmx:oobAfterSwap", function () {
    if (!refocusId) return;
    const element = document.getElementById(refocusId);
    refocusId = null;
    if (element) element.focus();
  });

  document.addEventListener("click", function (event) {
    const choice = event.target.closest && event.target.closest("button[data-draft-action]");
    if (!choice) return;
    const row = choice.closest("article.review-row");
    const arrived = row && arrivedDrafts.get(row);
    if (!arrived) return;
    arrivedDrafts.delete(row);
    if (choice.dataset.draftAction === "use") {
      // The arrived row as the server rendered it: its draft, version, flags and history.
      row.replaceWith(arrived);
      if (window.htmx) window.htmx.process(arrived);
      const textarea = reviewTextarea(arrived);
      if (textarea) textarea.focus();
      return;
    }
    keepOwnText(row, arrived);
    clearNotice(row, "Votre texte est conservé ; validez-le quand il est prêt.");
    reviewTextarea(row).focus();
  });

  // Keep her text: the server's text and version are now the arrived draft's.
  function keepOwnText(row, arrived) {
    const version = row.querySelector('input[name="version"]');
    const arrivedVersion = arrived.querySelector('input[name="version"]');
    if (version && arrivedVersion) version.value = arrivedVersion.value;
    reviewTextarea(row).dataset.savedText = reviewTextarea(arrived).dataset.savedText || "";
    return version ? version.value : null;
  }

  // « Valider » (or Ctrl+Enter) while the notice waits is her choice: her text, validated
  // against the arrived draft's version. A change by a person since that draft still
  // bumps the version, and the server still refuses it.
  document.addEventListener("htmx:configRequest", function (event) {
    const form = event.detail.elt.closest ? event.detail.elt.closest("form.validate-form") : null;
    const row = form && form.closest("article.review-row");
    const arrived = row && arrivedDrafts.get(row);
    if (!arrived || event.detail.elt !== form) return;
    arrivedDrafts.delete(row);
    const version = keepOwnText(row, arrived);
    if (version !== null) event.detail.parameters["version"] = version;
    clearNotice(row);
  });
})();

// Polled boxes (the generation progress, a quick draft's result) are replaced every 2 s, and
// a screen reader does not read a live region that is replaced whole. Each such box names a
// live region that stays in place (data-announcer) and the sentence to read there
// (data-announce), read only when it changes. A keyboard user on a button of the box
// (« Annuler ») keeps the focus there.
(function () {
  "use strict";

  const lastAnnounced = {};
  let focused = null; // [box id, index of the focused control]

  function focusables(root) {
    return Array.from(root.querySelectorAll("a[href], button, input, select, textarea, summary"));
  }

  // What is already on screen when the page loads is not read out again.
  document.querySelectorAll("[data-announcer]").forEach(function (box) {
    lastAnnounced[box.dataset.announcer] = box.dataset.announce || "";
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    const box = event.detail.target;
    focused = null;
    if (box && box.id && box.dataset.announcer && box.contains(document.activeElement)) {
      focused = [box.id, focusables(box).indexOf(document.activeElement)];
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (focused) {
      const box = document.getElementById(focused[0]);
      const again = box && focused[1] >= 0 ? focusables(box)[focused[1]] : null;
      if (again) again.focus();
      focused = null;
    }
    document.querySelectorAll("[data-announcer]").forEach(function (box) {
      const region = document.getElementById(box.dataset.announcer);
      const message = box.dataset.announce || "";
      if (!region || !message || message === lastAnnounced[box.dataset.announcer]) return;
      region.textContent = message;
      lastAnnounced[box.dataset.announcer] = message;
    });
  });
})();

// The teachers' panel: after a choice, the next pair replaces the form. The live region that
// stays in place says the choice was saved (a region swapped in whole is not read), and the
// focus moves to the new pair's heading so the reading starts there.
(function () {
  "use strict";
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    if (!target || target.id !== "panel-item") return;
    const section = document.getElementById("panel-item");
    const region = document.getElementById("panel-status");
    if (section && region) region.textContent = section.dataset.panelNotice || "";
    const heading = section && section.querySelector("h2[tabindex='-1']");
    if (heading) heading.focus();
  });
})();
