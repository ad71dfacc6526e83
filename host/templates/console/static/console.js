// Latchkey admin console: the few things a page cannot do alone. Everything works without
// this script except live feedback; no inline script is allowed (CSP), so pages mark what
// they need with data- attributes.
"use strict";

(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Dialogs: a button with data-open-dialog="ID" opens it; data-close-dialog closes it; a
  // dialog rendered with data-open-now (a refused Save) opens at once.
  document.querySelectorAll("[data-open-dialog]").forEach((button) => {
    button.addEventListener("click", () => {
      const dialog = document.getElementById(button.dataset.openDialog);
      if (dialog && !dialog.open) dialog.showModal();
    });
  });
  document.querySelectorAll("[data-close-dialog]").forEach((button) => {
    button.addEventListener("click", () => button.closest("dialog").close());
  });
  document.querySelectorAll("dialog[data-open-now]").forEach((dialog) => {
    if (!dialog.open) dialog.showModal();
  });

  // Confirmation buttons: data-confirm="question" asks before the form is sent.
  document.querySelectorAll("form [data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });

  // The Edit password dialog.
  const form = document.getElementById("password-form");
  if (form) {
    const password = form.querySelector("#password");
    const confirm = form.querySelector("#confirm");
    const confirmError = form.querySelector("#confirm-error");
    const summary = form.querySelector("#policy-summary");
    const list = form.querySelector("#policy-violations");
    const modes = form.querySelectorAll('input[name="mode"]');

    const showMode = () => {
      const checked = form.querySelector('input[name="mode"]:checked');
      form.dataset.mode = checked ? checked.value : "generate";
    };
    modes.forEach((m) => m.addEventListener("change", showMode));
    showMode();

    const showMismatch = () => {
      const differs = confirm.value !== "" && confirm.value !== password.value;
      confirmError.hidden = !differs;
      if (differs) {
        confirmError.textContent = "The two passwords are not the same.";
        confirm.setAttribute("aria-invalid", "true");
      } else {
        confirm.removeAttribute("aria-invalid");
      }
      return differs;
    };
    confirm.addEventListener("input", showMismatch);

    let timer = null;
    let asked = 0;
    const check = async () => {
      const mine = ++asked;
      const value = password.value;
      if (value === "") {
        list.replaceChildren();
        summary.textContent = "Each directory's policy is checked as you type.";
        summary.className = "muted";
        return;
      }
      try {
        const response = await fetch(form.dataset.checkUrl, {
          method: "POST",
          headers: { "content-type": "application/json", "x-csrf-token": csrf(), accept: "application/json" },
          body: JSON.stringify({ password: value }),
          credentials: "same-origin",
        });
        const answer = await response.json();
        if (mine !== asked) return; // a newer check is on its way
        if (!response.ok) {
          list.replaceChildren();
          summary.textContent = answer.detail || "The policy could not be checked.";
          summary.className = "field-error";
          return;
        }
        const items = (answer.violations || []).map((v) => {
          const li = document.createElement("li");
          const who = v.label || v.connector;
          li.textContent = (who ? who + ": " : "") + (v.message || v.rule);
          if (v.rule) li.dataset.rule = v.rule;
          return li;
        });
        list.replaceChildren(...items);
        if (answer.ok) {
          summary.textContent = "Meets every directory's policy.";
          summary.className = "ok";
        } else {
          summary.textContent = items.length === 1 ? "1 rule is not met:" : items.length + " rules are not met:";
          summary.className = "field-error";
        }
      } catch (error) {
        if (mine === asked) {
          summary.textContent = "The policy could not be checked (is the server reachable?).";
          summary.className = "field-error";
        }
      }
    };
    password.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
      if (confirm.value !== "") showMismatch();
    });

    form.addEventListener("submit", (event) => {
      if (form.dataset.mode === "manual" && showMismatch()) {
        event.preventDefault();
        confirm.focus();
        return;
      }
      form.querySelector("#save-password").disabled = true;
    });
  }

  // A change's live status: the server sends the status fragment whenever it changes.
  const status = document.getElementById("change-status");
  if (status && status.dataset.eventsUrl && window.EventSource) {
    const events = new EventSource(status.dataset.eventsUrl);
    events.addEventListener("status", (event) => { status.innerHTML = event.data; });
    events.addEventListener("settled", () => events.close());
  }
})();
