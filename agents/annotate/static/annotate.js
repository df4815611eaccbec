// Keyboard shortcuts for the labelling page. The page works without this file: the buttons are plain form submits.
(function () {
  "use strict";
  var KEYS = {
    "1": "choose-a", "a": "choose-a",
    "2": "choose-b", "b": "choose-b",
    "3": "choose-tie", "t": "choose-tie",
    "4": "choose-both-unsafe", "x": "choose-both-unsafe"
  };
  var sent = false;

  function submitWith(form, button) {
    if (sent || !form || !button || button.disabled) return;
    sent = true; // one label per page: a second key press before the next page loads does nothing
    document.body.classList.add("sending");
    if (form.requestSubmit) form.requestSubmit(button); else button.click();
  }

  // Clicking twice quickly must not send two labels either.
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (form.dataset.sent) { ev.preventDefault(); return; }
      form.dataset.sent = "1";
      sent = true;
    });
  });

  // A page restored from the back/forward cache must accept input again.
  window.addEventListener("pageshow", function (ev) {
    if (!ev.persisted) return;
    sent = false;
    document.body.classList.remove("sending");
    document.querySelectorAll("form").forEach(function (form) { delete form.dataset.sent; });
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var target = ev.target;
    var typing = target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT");
    if (typing) {
      if (ev.key === "Escape") target.blur(); // leave the note, keep its text
      return;
    }
    var key = ev.key.toLowerCase();
    if (key === "n") {
      var note = document.getElementById("note");
      if (note) { ev.preventDefault(); note.focus(); }
      return;
    }
    if (key === "u") {
      var undo = document.getElementById("undo");
      if (undo && !undo.disabled) { ev.preventDefault(); submitWith(document.getElementById("undo-form"), undo); }
      return;
    }
    var id = KEYS[key];
    if (id) {
      ev.preventDefault();
      submitWith(document.getElementById("label-form"), document.getElementById(id));
    }
  });
})();
