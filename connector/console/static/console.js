/* Storelink console: follows a run's progress, refreshes live parts of a page, and drives the page embedded
   in a store's admin (whose requests carry the admin's session token instead of a cookie). No build step. */
(function () {
  "use strict";
  var REFRESH = { "X-Console-Refresh": "1", "Accept": "application/json" };

  function text(el, value) { if (el) { el.textContent = value; } }

  function showProgress(root, p) {
    var bar = root.querySelector("progress");
    if (bar) {
      if (p.percent === null || p.percent === undefined) { bar.removeAttribute("value"); }
      else { bar.value = p.percent; }
    }
    text(root.querySelector("[data-role=status], #run-status"), p.status);
    text(root.querySelector("[data-role=rows], #run-rows"),
      p.done + " " + p.unit + (p.total ? " of " + (p.estimated ? "~" : "") + p.total : "") +
      (p.kind === "catalog" ? ", " + p.events + " events" : ""));
    text(root.querySelector("[data-role=waiting], #run-waiting"), p.waiting || "");
  }

  /* The run page: poll its JSON until the run ends, then load the page again for its summary and table. */
  function followRun(root) {
    var url = root.getAttribute("data-progress-url");
    function tick() {
      fetch(url, { headers: REFRESH, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (p) {
          showProgress(root, p);
          if (p.finished) { window.location.reload(); } else { setTimeout(tick, 400); }
        })
        .catch(function () { setTimeout(tick, 2000); });
    }
    tick();
  }

  /* Parts marked data-refresh="N" are fetched again every N seconds and replaced in place. */
  function refreshPart(el) {
    var seconds = parseFloat(el.getAttribute("data-refresh")) || 5;
    setTimeout(function () {
      fetch(window.location.href, { headers: { "X-Console-Refresh": "1" }, credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(el.id);
          if (fresh) { el.replaceWith(fresh); if (fresh.hasAttribute("data-refresh")) { refreshPart(fresh); } }
        })
        .catch(function () { refreshPart(el); });
    }, seconds * 1000);
  }

  /* Embedded: every request carries a fresh session token from the admin's App Bridge. */
  function bearer() {
    if (window.shopify && typeof window.shopify.idToken === "function") { return window.shopify.idToken(); }
    return Promise.reject(new Error("the store admin's App Bridge is not loaded"));
  }

  function embeddedFetch(url, options) {
    return bearer().then(function (token) {
      options = options || {};
      options.headers = Object.assign({ "Authorization": "Bearer " + token, "Accept": "application/json" }, options.headers || {});
      return fetch(url, options);
    }).then(function (r) { return r.json(); });
  }

  function cell(row, value) { var td = document.createElement("td"); td.textContent = value; row.appendChild(td); }

  function embeddedRun(box, base, kind, dryRun, since) {
    box.textContent = "";
    var bar = document.createElement("progress"); bar.max = 100; box.appendChild(bar);
    ["status", "rows", "waiting"].forEach(function (role) {
      var p = document.createElement("p"); p.setAttribute("data-role", role); box.appendChild(p);
    });
    embeddedFetch(base + "/resync", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ kind: kind, dry_run: dryRun ? "1" : "0", since: since || "" })
    }).then(function (run) {
      if (!run.id) { text(box, run.detail || "the resync could not be started"); return; }
      function tick() {
        embeddedFetch(base + "/runs/" + run.id + ".json").then(function (p) {
          showProgress(box, p);
          if (p.finished) { embeddedResult(box, base, p); } else { setTimeout(tick, 500); }
        });
      }
      tick();
    });
  }

  function embeddedResult(box, base, p) {
    if (p.error) { var e = document.createElement("p"); e.className = "flash error"; e.textContent = p.error; box.appendChild(e); }
    if (!p.dry_run && !p.changes) { return; }
    if (!p.diff.length) { var none = document.createElement("p"); none.textContent = "Nothing would change."; box.appendChild(none); return; }
    var table = document.createElement("table"); table.className = "grid";
    var head = document.createElement("tr");
    p.columns.forEach(function (c) { cell(head, c.label); });
    table.appendChild(head);
    p.diff.forEach(function (d) {
      var row = document.createElement("tr");
      p.columns.forEach(function (c) { cell(row, d[c.key]); });
      table.appendChild(row);
    });
    box.appendChild(table);
    if (p.dry_run && p.status === "succeeded") {
      var apply = document.createElement("button"); apply.className = "primary"; apply.textContent = "Apply: resync " + p.kind;
      apply.addEventListener("click", function () { embeddedRun(box, base, p.kind, false, p.since); });
      box.appendChild(apply);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var run = document.getElementById("run-progress");
    if (run && run.getAttribute("data-finished") === "false") { followRun(run); }
    Array.prototype.forEach.call(document.querySelectorAll("[data-refresh][id]"), refreshPart);
    var box = document.getElementById("embedded-run");
    if (box) {
      Array.prototype.forEach.call(document.querySelectorAll("[data-embedded-resync]"), function (button) {
        button.addEventListener("click", function () {
          var kind = button.getAttribute("data-embedded-resync"), since = document.getElementById("since-" + kind);
          embeddedRun(box, box.getAttribute("data-base"), kind, true, since ? since.value : "");
        });
      });
    }
  });
})();
