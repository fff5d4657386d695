// The reset and verification pages (src/http/pages). The token is read
// from the address, then dropped from it, so it stays out of the history,
// bookmarks and anything the page loads; it travels only in the JSON body
// of the one call that spends it.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(window.location.search).get("token") || "";
  if (window.location.search) {
    window.history.replaceState(null, "", window.location.pathname);
  }

  /** Shows one section, hides the others, and moves focus to it. */
  function show(id) {
    for (const section of document.querySelectorAll("main > section")) {
      section.hidden = section.id !== id;
    }
    $("status").textContent = "";
    $(id).focus();
  }

  function say(text) {
    $("status").textContent = text;
  }

  async function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  }

  async function problemOf(response) {
    try {
      return await response.json();
    } catch {
      return {};
    }
  }

  function busy(response) {
    const wait = response.headers.get("retry-after");
    return `Too many attempts right now${wait ? `; try again in ${wait} seconds` : ""}.`;
  }

  /** The "send me a new link" form of the expired state. */
  function newLinkForm(path) {
    $("again-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const email = $("again-email").value.trim();
      if (!email) {
        $("again-status").textContent = "Enter your email address.";
        $("again-email").focus();
        return;
      }
      try {
        const response = await post(path, { email });
        if (response.status === 202) {
          $("again-status").textContent = "If the address has an account, a new link is on its way.";
        } else if (response.status === 429) {
          $("again-status").textContent = busy(response);
        } else {
          const problem = await problemOf(response);
          const field = (problem.errors || []).find((e) => e.field === "email");
          $("again-status").textContent = field ? `The email address ${field.message}.` : "That did not work; try again.";
        }
      } catch {
        $("again-status").textContent = "The server could not be reached; try again.";
      }
    });
  }

  function resetPage() {
    const input = $("new-password");
    const error = $("password-error");
    newLinkForm("/api/v1/auth/password-reset/request");
    $("show-password").addEventListener("change", (event) => {
      input.type = event.target.checked ? "text" : "password";
    });
    // The server already knows whether the link still works.
    if (!token || document.body.dataset.link !== "live") {
      show("expired");
      return;
    }
    input.focus();
    $("reset-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      say("");
      const button = $("reset-submit");
      button.disabled = true;
      try {
        const response = await post("/api/v1/auth/password-reset/confirm", {
          token,
          new_password: input.value,
        });
        if (response.status === 204) {
          show("done");
        } else if (response.status === 400) {
          show("expired");
        } else if (response.status === 422) {
          const problem = await problemOf(response);
          const field = (problem.errors || []).find((e) => e.field === "new_password");
          error.textContent = field ? `The password ${field.message}.` : "That password cannot be used.";
          input.setAttribute("aria-invalid", "true");
          input.focus();
        } else if (response.status === 429 || response.status === 503) {
          say(busy(response));
        } else {
          say("Something went wrong; try again.");
        }
      } catch {
        say("The server could not be reached; try again.");
      } finally {
        button.disabled = false;
      }
    });
  }

  /** Spends the verification link; the page shows what became of it. */
  async function confirmLink() {
    $("verify-form").hidden = true;
    $("working").hidden = false;
    try {
      const response = await post("/api/v1/auth/verify-email/confirm", { token });
      if (response.status === 204) {
        show("done");
      } else if (response.status === 409) {
        show("taken");
      } else if (response.status === 400 || response.status === 422) {
        show("expired");
      } else {
        $("verify-form").hidden = false;
        $("working").hidden = true;
        say("Something went wrong; try the button again.");
      }
    } catch {
      $("verify-form").hidden = false;
      $("working").hidden = true;
      say("The server could not be reached; try the button again.");
    }
  }

  function verifyPage() {
    newLinkForm("/api/v1/auth/verify-email/request");
    const link = document.body.dataset.link;
    if (!token || link === "spent") {
      show("expired");
      return;
    }
    $("verify-form").addEventListener("submit", (event) => {
      event.preventDefault();
      confirmLink();
    });
    // A link that proves the account's own address confirms at once. One
    // that moves the account to a new address waits for the user's click:
    // a scanner or a preview that runs script must never move an account.
    if (link === "verify") {
      confirmLink();
    } else {
      $("verify-submit").focus();
    }
  }

  const page = document.body.dataset.page;
  if (page === "reset") {
    resetPage();
  } else if (page === "verify") {
    verifyPage();
  }
})();
