// Keyboard-first review: digits pick options, Esc moves to the next question (Shift+Esc back),
// Ctrl+Enter submits from anywhere, j/k move between items, s skips, ? helps.
// Everything here is an enhancement: without it, the forms post and the links navigate.
(function () {
  "use strict";
  var active = 0; // index of the highlighted question

  function questions() { return Array.prototype.slice.call(document.querySelectorAll("#answer-form fieldset.question")); }
  function isTyping(el) {
    if (!el || !el.tagName) return false;
    var tag = el.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || el.isContentEditable) return true;
    return tag === "input" && ["text", "number", "search", "email", "url", "password"].indexOf(el.type) !== -1;
  }
  function answered(q) {
    if (q.querySelector("input:checked")) return true;
    var field = q.querySelector("textarea:not([name^='c-']), input[type=number]");
    return !!(field && field.value.trim());
  }
  function highlight(index) {
    var qs = questions();
    if (!qs.length) return;
    active = Math.max(0, Math.min(index, qs.length - 1));
    qs.forEach(function (q, i) { q.classList.toggle("active", i === active); });
  }
  // The field that takes the keyboard in a question: the picked option, else its first option or box.
  function fieldOf(q) {
    return q.querySelector("input:checked:not(:disabled)") ||
      q.querySelector("input:not([type=hidden]):not(:disabled), textarea:not(:disabled), select:not(:disabled)");
  }
  function submitButton() {
    return document.querySelector("button[type=submit][form=answer-form]") || document.querySelector("#answer-form button[type=submit]");
  }
  // Highlight question `index` and put the keyboard focus in it; past the last question, on Submit.
  function goTo(index) {
    var qs = questions();
    if (index >= qs.length) {
      var button = submitButton();
      if (button && !button.disabled) { button.focus(); return; }
    }
    if (!qs.length) return;
    highlight(index);
    var field = fieldOf(qs[active]);
    if (!field) return;
    field.focus();
    if (field.tagName.toLowerCase() === "textarea") field.setSelectionRange(field.value.length, field.value.length);
  }
  function questionIndexOf(el) {
    var q = el && el.closest && el.closest("fieldset.question");
    return q ? questions().indexOf(q) : -1;
  }
  function firstUnanswered() {
    var qs = questions();
    for (var i = 0; i < qs.length; i++) { if (!answered(qs[i])) return i; }
    return 0;
  }
  // Heartbeat: while the page is open and visible, renew the lease so nobody else is handed this item.
  var heartbeatTimer = null;
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (e) { return ""; }
  }
  function beat() {
    var main = document.getElementById("review-main");
    if (!main || !main.dataset.heartbeatUrl || document.visibilityState !== "visible") return;
    fetch(main.dataset.heartbeatUrl, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        var warning = document.getElementById("lease-warning");
        if (!body || !warning) return;
        warning.hidden = body.lease !== "lost";
        warning.textContent = body.lease === "lost" ? body.message : "";
      })
      .catch(function () { /* offline for a moment: the next beat tries again */ });
  }
  function startHeartbeat() {
    if (heartbeatTimer) { clearInterval(heartbeatTimer); heartbeatTimer = null; }
    var main = document.getElementById("review-main");
    if (!main || !main.dataset.heartbeatUrl) return;
    var seconds = parseInt(main.dataset.heartbeatSeconds, 10) || 60;
    heartbeatTimer = setInterval(beat, seconds * 1000);
  }
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") beat(); });

  function init() {
    startHeartbeat();
    highlight(firstUnanswered());
    var help = document.getElementById("shortcut-help");
    document.querySelectorAll("[data-show-help]").forEach(function (b) {
      b.addEventListener("click", function () { toggleHelp(help); });
    });
  }
  function toggleHelp(help) {
    help = help || document.getElementById("shortcut-help");
    if (!help) return;
    if (help.open) { help.close(); } else { help.showModal(); }
  }
  function submit(form) {
    if (!form) return;
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }
  function pick(digit) {
    var q = questions()[active];
    if (!q) return false;
    var inputs = q.querySelectorAll("input[type=radio], input[type=checkbox]");
    if (inputs.length) {
      var input = inputs[digit - 1];
      if (!input || input.disabled) return false;
      if (input.type === "radio") {
        input.checked = true;
        input.dispatchEvent(new Event("change", { bubbles: true }));
        goTo(active + 1);
        return true;
      }
      input.checked = !input.checked; // a tick box: stays on this question until Esc
      input.focus();
      input.dispatchEvent(new Event("change", { bubbles: true }));
      return true;
    }
    var number = q.querySelector("input[type=number]");
    if (number && !number.disabled) { number.focus(); number.value = String(digit); return true; }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (!document.getElementById("answer-form")) return;
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      submit(document.getElementById("answer-form"));
      return;
    }
    var target = event.target;
    var help = document.getElementById("shortcut-help");
    if (help && help.open) {
      if (event.key === "?") { event.preventDefault(); toggleHelp(help); }
      return; // Esc closes the dialog by itself
    }
    if (event.key === "Escape" && !event.ctrlKey && !event.metaKey && !event.altKey) {
      // Done with this question (from a box, a tick box or nothing): on to the next; Shift+Esc goes back.
      var here = questionIndexOf(target);
      var nothing = !target || target === document.body || target === document.documentElement;
      event.preventDefault();
      if (here !== -1 || nothing) {
        if (here === -1) here = active; // digits were used with nothing focused
        goTo(event.shiftKey ? Math.max(0, here - 1) : here + 1);
      } else if (target === submitButton()) {
        if (event.shiftKey) goTo(questions().length - 1);
      } else if (isTyping(target)) {
        target.blur(); // the skip reason or the flag note
      } else {
        goTo(active); // from the trace or the item links: back to the highlighted question
      }
      return;
    }
    if (isTyping(target)) return;
    if (event.key === "Tab" && !event.shiftKey && (!target || target === document.body || target === document.documentElement)) {
      // Nothing has the focus (page just loaded, or an item was swapped in): Tab starts at the question.
      if (questions().length) { event.preventDefault(); goTo(active); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[1-9]$/.test(event.key)) {
      if (pick(parseInt(event.key, 10))) event.preventDefault();
      return;
    }
    switch (event.key) {
      case "Enter":
        if (target.tagName && ["a", "button", "summary"].indexOf(target.tagName.toLowerCase()) !== -1) return;
        event.preventDefault();
        submit(document.getElementById("answer-form"));
        break;
      case "j": click("next-link", event); break;
      case "k": click("prev-link", event); break;
      case "s": event.preventDefault(); submit(document.getElementById("skip-form")); break;
      case "?": event.preventDefault(); toggleHelp(help); break;
    }
  });
  function click(id, event) {
    var link = document.getElementById(id);
    if (link) { event.preventDefault(); link.click(); }
  }
  // Clicking into a question makes it the highlighted one.
  document.addEventListener("focusin", function (event) {
    var q = event.target.closest && event.target.closest("fieldset.question");
    if (q) highlight(questions().indexOf(q));
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "review-main" || document.getElementById("review-main") === event.detail.elt) {
      window.scrollTo(0, 0);
      if (document.activeElement) document.activeElement.blur();
    }
    init();
  });
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
