// Cordon console: live updates (server-sent events), pending timers, host selection and
// the quarantine / release dialog. No inline scripts: the page's Content-Security-Policy
// allows only this file. Works on current Chromium, Firefox and Safari.
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function $(id) { return document.getElementById(id); }

  // ---------------------------------------------------------------- durations
  function durationText(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + sec + "s";
    return sec + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(t)) el.textContent = "for " + durationText(now - t);
    });
    document.querySelectorAll("[data-ago]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-ago"));
      if (!isNaN(t)) el.textContent = durationText(now - t) + " ago";
    });
  }
  setInterval(tick, 1000);

  // ---------------------------------------------------------------- flash
  function flash(text, kind) {
    var f = $("flash");
    if (!f) return;
    f.textContent = text;
    f.className = "flash " + (kind || "ok");
    f.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { f.hidden = true; }, 8000);
  }

  // ---------------------------------------------------------------- selection
  function selectedIds() {
    return Array.prototype.map.call(document.querySelectorAll(".host-select:checked"), function (c) { return c.value; });
  }
  function selectedNames() {
    return Array.prototype.map.call(document.querySelectorAll(".host-select:checked"), function (c) {
      var tr = c.closest("tr");
      return tr ? tr.getAttribute("data-hostname") : c.value;
    });
  }
  function updateSelectionCount() {
    var n = selectedIds().length;
    var el = $("selection-count");
    if (el) el.textContent = n + " selected";
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.id === "select-all") {
      document.querySelectorAll(".host-select").forEach(function (c) { c.checked = t.checked; });
    }
    if (t.id === "select-all" || t.classList.contains("host-select")) updateSelectionCount();
  });

  // ---------------------------------------------------------------- live updates
  // Markup of each live part as last rendered by the server, without the relative times.
  var lastHtml = {};
  function normalized(el) {
    var c = el.cloneNode(true);
    c.querySelectorAll("[data-ago], [data-since]").forEach(function (t) { t.textContent = ""; });
    return c.outerHTML;
  }
  document.querySelectorAll("[data-live]").forEach(function (el) { if (el.id) lastHtml[el.id] = normalized(el); });
  var refreshing = false, again = false;
  function refresh() {
    if (!document.querySelector("[data-live]")) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    var keep = selectedIds();
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401 || r.redirected) { location.href = "/console/login"; throw new Error("signed out"); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = el.id && doc.getElementById(el.id);
          if (!fresh) return;
          // Leave unchanged parts alone (focus, hover and clicks in progress stay put).
          var key = normalized(fresh);
          if (lastHtml[el.id] === key) return;
          lastHtml[el.id] = key;
          el.replaceWith(document.importNode(fresh, true));
        });
        keep.forEach(function (id) {
          var c = document.getElementById("sel-" + id);
          if (c) c.checked = true;
        });
        updateSelectionCount();
        tick();
      })
      .catch(function () {})
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }
  function connect() {
    if (!document.querySelector("[data-live]") || !window.EventSource) return;
    var status = $("live-status");
    var es = new EventSource("/console/events");
    es.addEventListener("hello", function () {
      if (status) status.textContent = "Live updates: on";
      // Catch up on anything that changed between rendering the page and (re)connecting.
      refresh();
    });
    es.addEventListener("change", function () { refresh(); });
    es.onerror = function () { if (status) status.textContent = "Live updates: reconnecting…"; };
  }

  // ---------------------------------------------------------------- dialog
  var dlg = $("action-dialog");
  var current = null; // {action, hosts[], names[], byLabel}

  function setStep(confirming) {
    $("dlg-step-edit").hidden = confirming;
    $("dlg-step-confirm").hidden = !confirming;
  }
  function clearErrors() {
    dlg.querySelectorAll(".field-error").forEach(function (p) { p.textContent = ""; });
    dlg.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }
  function showErrors(errors) {
    var first = null;
    Object.keys(errors || {}).forEach(function (k) {
      var p = $("err-" + k) || $("err-form");
      p.textContent = errors[k];
      var input = dlg.querySelector('[name="' + k + '"]');
      if (input) { input.setAttribute("aria-invalid", "true"); if (!first) first = input; }
    });
    if (first) first.focus();
  }
  function counter() {
    var m = $("dlg-message");
    $("dlg-message-count").textContent = m.value.length + " / " + m.getAttribute("maxlength");
  }
  function payload() {
    var label = $("dlg-label").value;
    return {
      action: current.action,
      hosts: current.byLabel ? [] : current.hosts,
      label: current.byLabel ? label : null,
      comment: $("dlg-comment").value,
      allow: current.action === "quarantine" ? $("dlg-allow").value : "",
      message: current.action === "quarantine" ? $("dlg-message").value : "",
      expires_in: current.action === "quarantine" ? $("dlg-expires").value : ""
    };
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.text().then(function (t) {
        var j;
        try { j = JSON.parse(t); } catch (e) { j = { ok: false, errors: { form: t || ("HTTP " + r.status) } }; }
        return j;
      });
    });
  }
  function openDialog(btn) {
    var action = btn.getAttribute("data-action");
    var target = btn.getAttribute("data-target");
    var hosts = [], names = [], byLabel = false;
    if (target === "selection") {
      hosts = selectedIds(); names = selectedNames();
      if (hosts.length === 0) { flash("Select hosts first (tick their boxes).", "warn"); return; }
    } else if (target === "label") {
      byLabel = true;
    } else {
      hosts = (btn.getAttribute("data-hosts") || "").split(",").filter(Boolean);
      names = (btn.getAttribute("data-names") || "").split(",").filter(Boolean);
    }
    current = { action: action, hosts: hosts, names: names, byLabel: byLabel, opener: btn };
    $("action-form").reset();
    clearErrors();
    counter();
    setStep(false);
    var verb = action === "quarantine" ? "Quarantine" : "Release";
    $("dlg-title").textContent = verb;
    $("dlg-action").value = action;
    $("dlg-targets").textContent = byLabel
      ? "Every host with the label you give."
      : (hosts.length === 1 ? "Host: " + names[0] : hosts.length + " selected hosts: " + names.join(", "));
    $("dlg-label-field").hidden = !byLabel;
    dlg.classList.toggle("is-release", action === "release");
    dlg.querySelector(".quarantine-only").hidden = action !== "quarantine";
    $("dlg-review").textContent = "Review " + verb.toLowerCase();
    dlg.showModal();
    (byLabel ? $("dlg-label") : $("dlg-comment")).focus();
  }
  function review(e) {
    e.preventDefault();
    clearErrors();
    var body = payload();
    if (!body.comment.trim()) {
      // Said at once; the server checks again.
      showErrors({ comment: "A comment is required: say why." });
      return;
    }
    post("/console/actions/check", body).then(function (j) {
      if (!j.ok) { showErrors(j.errors); return; }
      $("dlg-confirm-text").textContent = j.summary;
      var ul = $("dlg-confirm-hosts");
      ul.textContent = "";
      j.hostnames.slice(0, 20).forEach(function (n) { var li = document.createElement("li"); li.textContent = n; ul.appendChild(li); });
      if (j.hostnames.length > 20) { var li = document.createElement("li"); li.textContent = "… and " + (j.hostnames.length - 20) + " more"; ul.appendChild(li); }
      var verb = current.action === "quarantine" ? "Quarantine" : "Release";
      $("dlg-confirm").textContent = verb + " " + j.count + (j.count === 1 ? " host" : " hosts");
      setStep(true);
      $("dlg-confirm").focus();
    }).catch(function (err) { showErrors({ form: String(err) }); });
  }
  function confirmRun() {
    var btn = $("dlg-confirm");
    btn.disabled = true;
    post("/console/actions/run", payload()).then(function (j) {
      btn.disabled = false;
      if (!j.ok) {
        var msg = j.errors ? Object.keys(j.errors).map(function (k) { return j.errors[k]; }).join("; ") : "failed";
        $("err-run").textContent = msg;
        return;
      }
      dlg.close();
      document.querySelectorAll(".host-select:checked").forEach(function (c) { c.checked = false; });
      updateSelectionCount();
      flash(j.summary, "ok");
      refresh();
    }).catch(function (err) { btn.disabled = false; $("err-run").textContent = String(err); });
  }

  if (dlg) {
    document.addEventListener("click", function (e) {
      var btn = e.target.closest("button.act");
      if (btn) openDialog(btn);
    });
    $("action-form").addEventListener("submit", review);
    $("dlg-cancel").addEventListener("click", function () { dlg.close(); });
    $("dlg-back").addEventListener("click", function () { setStep(false); $("dlg-comment").focus(); });
    $("dlg-confirm").addEventListener("click", confirmRun);
    $("dlg-message").addEventListener("input", counter);
    // Editing a field clears its error.
    $("action-form").addEventListener("input", function (e) {
      var name = e.target.getAttribute("name");
      var p = name && $("err-" + name);
      if (p) { p.textContent = ""; e.target.removeAttribute("aria-invalid"); }
    });
    dlg.addEventListener("close", function () { if (current && current.opener && document.contains(current.opener)) current.opener.focus(); });
  }

  tick();
  updateSelectionCount();
  connect();
})();
