// mc-ledger console: follows the event stream and swaps the page's <main> in place, asks for a
// token when the server has tokens (kept in sessionStorage, this tab only), and sends the
// actions the page offers, each after a confirmation. No framework, no build step.
"use strict";

(function () {
  const KEY = "mc-ledger-token";
  const main = document.getElementById("main");
  const status = document.getElementById("live-status");
  const open = document.body.dataset.open === "true";
  let position = Number(document.body.dataset.position || "0");
  let refreshing = null;
  let again = false;

  const token = () => sessionStorage.getItem(KEY);
  const headers = (extra) => {
    const h = Object.assign({}, extra || {});
    const t = token();
    if (t) h.Authorization = "Bearer " + t;
    return h;
  };
  const say = (text) => {
    if (status) status.textContent = text;
  };
  // History pages (?as_of=) show the past: they do not follow the stream.
  const frozen = new URLSearchParams(location.search).has("as_of");

  async function refresh() {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      const r = await fetch(location.href, {
        headers: headers({ "X-Console-Fragment": "main" }),
        cache: "no-store",
      });
      if (r.status === 401) {
        sessionStorage.removeItem(KEY);
        say("The token was refused; sign in again.");
        return false;
      }
      const type = r.headers.get("content-type") || "";
      if (!r.ok || !type.startsWith("text/html")) {
        say("The server answered " + r.status + "; showing the last good page.");
        return false;
      }
      const html = await r.text();
      const focused = document.activeElement && document.activeElement.id;
      main.innerHTML = html;
      if (focused) {
        const again = document.getElementById(focused);
        if (again) again.focus();
      }
      const p = Number(r.headers.get("x-ledger-position"));
      if (p > position) position = p;
      wire();
      return true;
    })();
    try {
      return await refreshing;
    } finally {
      refreshing = null;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  // The event stream, read with fetch so that it can carry the token.
  async function follow() {
    if (frozen) {
      say("Viewing the past: live updates are off.");
      return;
    }
    for (;;) {
      try {
        const r = await fetch("/v1/events/stream?after=" + position, {
          headers: headers({ Accept: "text/event-stream" }),
          cache: "no-store",
        });
        if (r.status === 401) {
          sessionStorage.removeItem(KEY);
          say("The token was refused; reload to sign in again.");
          return;
        }
        if (!r.ok || !r.body) throw new Error("stream answered " + r.status);
        say("Live.");
        const reader = r.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const id = frame.split("\n").find((l) => l.startsWith("id:"));
            if (id) {
              const p = Number(id.slice(3).trim());
              if (p > position) position = p;
              schedule();
            }
          }
        }
      } catch (e) {
        say("Reconnecting to the live stream…");
      }
      await new Promise((done) => setTimeout(done, 1000));
    }
  }

  let timer = null;
  function schedule() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      refresh();
    }, 200);
  }

  // The page's actions: a confirmation, then the API call with the form's fields as JSON.
  function wire() {
    for (const form of main.querySelectorAll("form.action")) {
      if (form.dataset.wired) continue;
      form.dataset.wired = "1";
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!window.confirm(form.dataset.confirm)) return;
        const body = {};
        for (const [k, v] of new FormData(form)) {
          if (k === "resume") body.resume = v === "true";
          else if (k === "from_position") body.from_position = Number(v);
          else if (k === "waiting_on") body.waiting_on = v.split(",").map((s) => s.trim()).filter(Boolean);
          else body[k] = v;
        }
        if (open) body.actor = { name: "console", kind: "human" };
        const r = await fetch(form.dataset.path, {
          method: "POST",
          headers: headers({ "Content-Type": "application/json" }),
          body: JSON.stringify(body),
        });
        let answer = {};
        try {
          answer = await r.json();
        } catch (e) {
          answer = {};
        }
        say(r.ok ? "Done: " + form.id + "." : "Refused (" + r.status + "): " + (answer.detail || answer.code || ""));
        await refresh();
      });
    }
    const signIn = document.getElementById("token-form");
    if (signIn && !signIn.dataset.wired) {
      signIn.dataset.wired = "1";
      signIn.addEventListener("submit", async (event) => {
        event.preventDefault();
        const value = document.getElementById("token").value.trim();
        if (!value) return;
        sessionStorage.setItem(KEY, value);
        if (await refresh()) {
          main.focus();
          start();
        }
      });
    }
  }

  let started = false;
  function start() {
    if (started) return;
    started = true;
    const forget = document.getElementById("forget-token");
    if (forget && token()) {
      forget.hidden = false;
      forget.addEventListener("click", () => {
        sessionStorage.removeItem(KEY);
        location.reload();
      });
    }
    follow();
  }

  wire();
  if (open) {
    start();
  } else if (token()) {
    refresh().then((ok) => ok && start());
  } else {
    say("Sign in to follow the ledger live.");
  }
})();
