// Cordon console: live updates (server-sent events), the connection banner, local times,
// host selection, the quarantine / release dialog with its impact review, and the
// approvals review. No inline scripts: the page's Content-Security-Policy allows only
// this file. Works on current Chromium, Firefox and Safari.
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var signedIn = !!csrfMeta;

  function $(id) { return document.getElementById(id); }

  // ---------------------------------------------------------------- times
  function durationText(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + sec + "s";
    return sec + "s";
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  // The reader's local time zone; UTC stays in the title (and in exports).
  function localText(t) {
    var d = new Date(t);
    if (isNaN(d.getTime())) return null;
    var off = -d.getTimezoneOffset();
    var zone = "UTC" + (off === 0 ? "" : (off > 0 ? "+" : "-") + pad(Math.floor(Math.abs(off) / 60)) + (Math.abs(off) % 60 ? ":" + pad(Math.abs(off) % 60) : ""));
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + " " + zone;
  }
  // Times inside server-written sentences (impact and approval reviews: "automatic
  // release at 2030-01-02 03:04:05Z") in the reader's zone too, as every <time> is
  // (trial19 LOW-d): one renderer, localText, for every time the console shows.
  var SENTENCE_TIME = /(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.\d+)?Z/g;
  function localizeText(text) {
    return String(text).replace(SENTENCE_TIME, function (all, day, time) {
      return localText(day + "T" + time + "Z") || all;
    });
  }
  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      var t = localText(el.getAttribute("datetime"));
      if (!t) return;
      // Each word (date, time, zone) unbroken: a narrow column wraps between them, never
      // inside "2026-11-30" (trial24 LOW-7). The text stays the same.
      el.textContent = "";
      t.split(" ").forEach(function (w, i) {
        if (i) el.appendChild(document.createTextNode(" "));
        var s = document.createElement("span");
        s.className = "nowrap";
        s.textContent = w;
        el.appendChild(s);
      });
    });
  }
  var connected = true;
  function tick() {
    // Disconnected: counters stop, so nothing looks fresher than it is.
    if (!connected) return;
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(t)) el.textContent = "for " + durationText(now - t);
    });
    document.querySelectorAll("[data-ago]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-ago"));
      if (!isNaN(t)) el.textContent = durationText(now - t) + " ago";
    });
    document.querySelectorAll("[data-until]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-until"));
      if (!isNaN(t)) el.textContent = t > now ? "in " + durationText(t - now) : "now";
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

  // ---------------------------------------------------------------- connection
  // Every control that changes something; disabled while the server is unreachable.
  var ACTION_CONTROLS = "button.act, button.decide-open, button.settings-open, #dlg-review, #dlg-confirm, #dd-go, #sd-apply";
  function setConnected(on) {
    connected = on;
    var banner = $("conn-banner");
    if (banner) banner.hidden = on;
    document.body.classList.toggle("disconnected", !on);
    document.querySelectorAll(ACTION_CONTROLS).forEach(function (b) {
      if (on) {
        if (b.hasAttribute("data-offline-disabled")) { b.disabled = false; b.removeAttribute("data-offline-disabled"); }
      } else if (!b.disabled) {
        b.disabled = true; b.setAttribute("data-offline-disabled", "");
      }
    });
    document.querySelectorAll(".live-status").forEach(function (s) {
      s.textContent = on ? "Live updates: on" : "Live updates: disconnected — reconnecting…";
      s.classList.toggle("off", !on);
    });
    if (on) updateConfirmEnabled();
  }
  // Every request has a deadline: a hung server or a black-holed path must end in an
  // error the page shows, never in a request that waits for ever.
  var FETCH_TIMEOUT_MS = 10000, POST_TIMEOUT_MS = 20000;
  function timedFetch(url, opts, ms) {
    opts = opts || {};
    var timer = null;
    if (window.AbortController) {
      var ctl = new AbortController();
      opts.signal = ctl.signal;
      timer = setTimeout(function () { ctl.abort(); }, ms || FETCH_TIMEOUT_MS);
    }
    // The deadline covers the body too (a server can stop half-way).
    return fetch(url, opts)
      .then(function (r) { return r.text().then(function (t) { return { status: r.status, redirected: r.redirected, body: t }; }); })
      .then(function (x) { clearTimeout(timer); return x; }, function (e) { clearTimeout(timer); throw e; });
  }
  var NETWORK_ERROR = "Cannot reach the Cordon server: the request may not have arrived. " +
    "Nothing is shown as done; check the host's state when the connection is back.";

  // ---------------------------------------------------------------- selection
  function selectedIds() {
    return Array.prototype.map.call(document.querySelectorAll(".host-select:checked"), function (c) { return c.value; });
  }
  function selectedRows() {
    return Array.prototype.map.call(document.querySelectorAll(".host-select:checked"), function (c) { return c.closest("tr"); });
  }
  function updateSelectionCount() {
    var el = $("selection-count");
    if (el) el.textContent = selectedIds().length + " selected";
    var ap = $("ap-selection-count");
    if (ap) ap.textContent = document.querySelectorAll(".ap-select:checked").length + " selected";
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.id === "select-all") document.querySelectorAll(".host-select").forEach(function (c) { c.checked = t.checked; });
    if (t.id === "ap-select-all") document.querySelectorAll(".ap-select").forEach(function (c) { c.checked = t.checked; });
    updateSelectionCount();
  });

  // "/" focuses the search field (unless typing somewhere already).
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
    var a = document.activeElement;
    if (a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT" || a.isContentEditable)) return;
    var q = document.querySelector('main input[type="search"], main .filters input');
    if (q) { e.preventDefault(); q.focus(); }
  });

  // ---------------------------------------------------------------- live updates
  var lastHtml = {};
  function normalized(el) {
    var c = el.cloneNode(true);
    c.querySelectorAll("[data-ago], [data-since], time[data-local]").forEach(function (t) { t.textContent = ""; });
    return c.outerHTML;
  }
  document.querySelectorAll("[data-live]").forEach(function (el) { if (el.id) lastHtml[el.id] = normalized(el); });
  var refreshing = false, again = false;
  function refresh() {
    if (!document.querySelector("[data-live]")) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    var keep = selectedIds();
    var keepAp = Array.prototype.map.call(document.querySelectorAll(".ap-select:checked"), function (c) { return c.value; });
    timedFetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html", "X-Cordon-Background": "1" } })
      .then(function (r) {
        if (r.status === 401 || r.redirected) { location.href = "/console/login"; throw new Error("signed out"); }
        return r.body;
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
          var node = document.importNode(fresh, true);
          el.replaceWith(node);
          localTimes(node);
        });
        keep.forEach(function (id) { var c = $("sel-" + id); if (c) c.checked = true; });
        keepAp.forEach(function (id) {
          var c = document.querySelector('.ap-select[value="' + id + '"]');
          if (c) c.checked = true;
        });
        updateSelectionCount();
        setConnected(connected);
        tick();
        // An open approvals review follows live updates too (its header count and
        // each approval's effect come from the server again).
        if (dd && dd.open && deciding) reviewDecide();
      })
      .catch(function (err) {
        // A refresh that fails or times out means the server is not answering, whatever
        // the stream looks like (a hung server keeps its connections open).
        if (String(err).indexOf("signed out") < 0) { setConnected(false); connect(); }
      })
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }
  // The stream sends an event at least every heartbeat (the server says how often in
  // its hello). Silence for 2.5 heartbeats — a hung server, a black-holed path — counts
  // as a lost connection, exactly like a closed one: banner, actions disabled, counters
  // stopped; the stream is then opened again until the server answers.
  var es = null, beatMs = 5000, lastEvent = Date.now();
  function heard() { lastEvent = Date.now(); }
  function connect() {
    if (!signedIn || !window.EventSource) return;
    // One stream at a time: its hello (after the server answered) brings the page back.
    if (es) es.close();
    var mine = new EventSource("/console/events");
    es = mine;
    heard();
    mine.addEventListener("hello", function (e) {
      if (es !== mine) return;
      heard();
      try { var h = JSON.parse(e.data); if (h && h.heartbeat_ms > 0) beatMs = h.heartbeat_ms; } catch (x) { /* older server */ }
      setConnected(true);
      // Catch up on anything that changed between rendering the page and (re)connecting.
      refresh();
    });
    mine.addEventListener("change", function () { if (es !== mine) return; heard(); refresh(); });
    mine.addEventListener("heartbeat", function () { if (es === mine) heard(); });
    mine.onerror = function () {
      if (es !== mine) return;
      setConnected(false);
      if (mine.readyState === EventSource.CLOSED) {
        // The browser gave up (server refused, or the session ended): find out which.
        mine.close();
        es = null;
        setTimeout(function () {
          timedFetch("/console/hosts", { credentials: "same-origin", headers: { "X-Cordon-Background": "1" } })
            .then(function (r) { if (r.redirected || r.status === 401) location.href = "/console/login"; else if (!es) connect(); })
            .catch(function () { if (!es) connect(); });
        }, 2000);
      }
    };
  }
  function watchdog() {
    if (!es || Date.now() - lastEvent <= beatMs * 2.5) return;
    // Silence: lost, whatever the socket says. Open the stream again (the next try
    // gets its own 2.5 heartbeats before it is replaced in turn).
    setConnected(false);
    es.close();
    es = null;
    connect();
  }
  setInterval(watchdog, 1000);

  // ---------------------------------------------------------------- POST helper
  function post(url, body) {
    return timedFetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }, POST_TIMEOUT_MS).then(function (r) {
      var t = r.body, j;
      try { j = JSON.parse(t); } catch (e) { j = { ok: false, errors: { form: t || ("HTTP " + r.status) } }; }
      j.status = r.status;
      return j;
    }, function () {
      // Failed or timed out: lost until a fresh stream's hello says otherwise.
      setConnected(false);
      connect();
      return { ok: false, network: true, status: 0, errors: { form: NETWORK_ERROR }, error: NETWORK_ERROR };
    });
  }

  // ---------------------------------------------------------------- action dialog
  var dlg = $("action-dialog");
  var current = null; // {action, hosts[], names[], revisions{}, byLabel, opener}
  var checked = null; // the check step's reply

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
    // The run carries exactly the hosts and revisions the review showed (the server
    // refuses a run whose set differs); the review itself sends what the page showed.
    var revisions = checked ? checked.revisions : (current.byLabel ? {} : current.revisions);
    return {
      action: current.action,
      hosts: current.byLabel ? [] : current.hosts,
      label: current.byLabel ? label : null,
      comment: $("dlg-comment").value,
      allow: current.action === "quarantine" ? $("dlg-allow").value : "",
      message: current.action === "quarantine" ? $("dlg-message").value : "",
      expires_in: current.action === "quarantine" ? $("dlg-expires").value : "",
      revisions: revisions || {},
      confirm: $("dlg-typed").value,
      replace: current.action === "quarantine" && $("dlg-replace").checked
    };
  }
  // "Quarantine", "Release", "Retry".
  function verbOf(action) { return action.charAt(0).toUpperCase() + action.slice(1); }
  function openDialog(btn) {
    var action = btn.getAttribute("data-action");
    var target = btn.getAttribute("data-target");
    var hosts = [], names = [], revisions = {}, byLabel = false;
    if (target === "selection") {
      selectedRows().forEach(function (tr) {
        hosts.push(tr.getAttribute("data-host-id"));
        names.push(tr.getAttribute("data-hostname"));
        revisions[tr.getAttribute("data-host-id")] = parseInt(tr.getAttribute("data-revision"), 10);
      });
      if (hosts.length === 0) { flash("Select hosts first (tick their boxes).", "warn"); return; }
      // A name two selected hosts share carries each one's short id ("db-01 (h-db01b)"),
      // and so does a flagged host's (a duplicate or invalid hostname, trial19 MED-B), even
      // when its twin is not selected: "web1" alone never stands for one of two web1s.
      var flagged = selectedRows().map(function (tr) { return tr.hasAttribute("data-flagged"); });
      names = names.map(function (n, i) {
        var shared = names.filter(function (m) { return m === n; }).length > 1;
        return shared || flagged[i] ? n + " (" + hosts[i].slice(0, 8) + ")" : n;
      });
    } else if (target === "label") {
      byLabel = true;
    } else {
      hosts = (btn.getAttribute("data-hosts") || "").split(",").filter(Boolean);
      names = (btn.getAttribute("data-names") || "").split(",").filter(Boolean);
      var rev = btn.getAttribute("data-revision");
      if (rev !== null && hosts.length === 1) revisions[hosts[0]] = parseInt(rev, 10);
    }
    current = { action: action, hosts: hosts, names: names, revisions: revisions, byLabel: byLabel, opener: btn };
    checked = null;
    $("action-form").reset();
    clearErrors();
    counter();
    setStep(false);
    var verb = verbOf(action);
    $("dlg-title").textContent = action === "retry" ? "Retry: re-send the desired state to the agent" : verb;
    $("dlg-action").value = action;
    $("dlg-targets").textContent = byLabel
      ? "Every host with the label you give."
      : (hosts.length === 1 ? "Host: " + names[0] : hosts.length + " selected hosts: " + names.join(", "));
    $("dlg-label-field").hidden = !byLabel;
    dlg.classList.toggle("is-release", action === "release");
    dlg.querySelector(".quarantine-only").hidden = action !== "quarantine";
    $("dlg-review").textContent = "Review " + action;
    dlg.showModal();
    (byLabel ? $("dlg-label") : $("dlg-comment")).focus();
  }
  // The server's per-host change (its preview of this very request), in the words of the
  // host's state now (actions::change_text: failed and tampered hosts by name, trial36 MED-A).
  function changeText(h) { return h.change_text || h.change; }
  // A host's short id next to its name (two hosts of one name stay apart); full id on hover.
  function shortId(id, short) {
    var c = document.createElement("code");
    c.className = "short-id";
    c.title = "host id " + id;
    c.textContent = short || String(id).slice(0, 8);
    return c;
  }
  function tag(text, cls) { var s = document.createElement("span"); s.className = "tag " + cls; s.textContent = text; return s; }
  function renderImpact(j) {
    $("dlg-confirm-text").textContent = j.summary;
    var w = $("dlg-warnings");
    w.textContent = "";
    (j.warnings || []).forEach(function (t) {
      var li = document.createElement("li");
      li.textContent = "⚠ " + localizeText(t);
      if (/^Protected/.test(t)) li.className = "warn-protected";
      w.appendChild(li);
    });
    var ul = $("dlg-confirm-hosts");
    ul.textContent = "";
    var shown = 0;
    (j.hosts || []).forEach(function (h) {
      if (shown >= 50) return;
      shown++;
      var li = document.createElement("li");
      li.className = "impact-" + h.change;
      li.setAttribute("data-host-id", h.id);
      var name = document.createElement("strong");
      name.textContent = h.hostname;
      li.appendChild(name);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(shortId(h.id, h.short_id));
      (h.flags || []).forEach(function (f) { li.appendChild(document.createTextNode(" ")); li.appendChild(tag("⚠ " + f, "tag-dup")); });
      li.appendChild(document.createTextNode(" — " + localizeText(changeText(h))));
      if (h.never_reported) { li.appendChild(document.createTextNode(" ")); li.appendChild(tag(h.changes ? "never reported: stays pending until its agent first reports" : "never reported", "tag-offline")); }
      else if (h.offline) { li.appendChild(document.createTextNode(" ")); li.appendChild(tag(h.changes ? "offline: stays pending until the agent returns" : "agent offline", "tag-offline")); }
      if (h.other_claims && h.other_claims.length) { li.appendChild(document.createTextNode(" ")); li.appendChild(tag("also held by " + h.other_claims.join(", "), "tag-warn")); }
      if (h.protected && h.protected.length) { li.appendChild(document.createTextNode(" ")); li.appendChild(tag("protected: " + h.protected.join(", "), "tag-protected")); }
      if (h.not_enforcing) { li.appendChild(document.createTextNode(" ")); li.appendChild(tag("not enforcing", "tag-warn")); }
      if (h.details && h.details.length) {
        var d = document.createElement("ul");
        h.details.forEach(function (t) { var x = document.createElement("li"); x.textContent = localizeText(t); d.appendChild(x); });
        li.appendChild(d);
      }
      ul.appendChild(li);
    });
    if ((j.hosts || []).length > shown) {
      var more = document.createElement("li");
      more.textContent = "… and " + (j.hosts.length - shown) + " more";
      ul.appendChild(more);
    }
    var typed = $("dlg-typed-field");
    typed.hidden = !j.confirm_word;
    $("dlg-typed").value = "";
    if (j.confirm_word) {
      $("dlg-typed-label").textContent = "Type the label “" + j.confirm_word + "” or the number of hosts (" + j.count + ") to confirm";
    }
    var verb = verbOf(current.action);
    $("dlg-confirm").textContent = j.count === 0 ? "Nothing to do" : verb + " " + j.count + (j.count === 1 ? " host" : " hosts");
  }
  function typedOk() {
    if (!checked) return false;
    if (!checked.confirm_word) return true;
    var v = $("dlg-typed").value.trim();
    return v === checked.confirm_word || v === String(checked.count);
  }
  function updateConfirmEnabled() {
    var b = $("dlg-confirm");
    if (!b) return;
    b.disabled = !connected || !checked || checked.count === 0 || !typedOk();
  }
  function review(e) {
    e.preventDefault();
    if (!current) return;
    clearErrors();
    var body = payload();
    if (!body.comment.trim()) {
      // Said at once; the server checks again.
      showErrors({ comment: "A comment is required: say why." });
      return;
    }
    post("/console/actions/check", body).then(function (j) {
      if (!j.ok) {
        if (j.errors && j.errors.stale) { $("err-form").textContent = j.errors.stale; refresh(); return; }
        showErrors(j.errors);
        return;
      }
      checked = j;
      renderImpact(j);
      setStep(true);
      updateConfirmEnabled();
      // Never on the destructive button: the analyst reads, then chooses.
      if (j.confirm_word) $("dlg-typed").focus(); else $("dlg-back").focus();
    });
  }
  function confirmRun() {
    var btn = $("dlg-confirm");
    if (btn.disabled) return;
    btn.disabled = true;
    $("err-run").textContent = "";
    post("/console/actions/run", payload()).then(function (j) {
      if (!j.ok) {
        if (j.errors && j.errors.confirm) { $("err-confirm").textContent = j.errors.confirm; updateConfirmEnabled(); return; }
        var msg = j.errors ? Object.keys(j.errors).map(function (k) { return j.errors[k]; }).join("; ") : "failed";
        $("err-run").textContent = (j.status === 409 ? "Refused: " : "") + msg;
        if (j.status === 409) { checked = null; refresh(); }
        updateConfirmEnabled();
        return;
      }
      dlg.close();
      document.querySelectorAll(".host-select:checked").forEach(function (c) { c.checked = false; });
      updateSelectionCount();
      flash(j.summary, "ok");
      refresh();
    });
  }

  if (dlg) {
    document.addEventListener("click", function (e) {
      var btn = e.target.closest("button.act");
      if (btn && !btn.disabled) openDialog(btn);
    });
    $("action-form").addEventListener("submit", review);
    $("dlg-cancel").addEventListener("click", function () { dlg.close(); });
    $("dlg-back").addEventListener("click", function () { checked = null; setStep(false); $("dlg-comment").focus(); });
    $("dlg-confirm").addEventListener("click", confirmRun);
    $("dlg-message").addEventListener("input", counter);
    $("dlg-typed").addEventListener("input", updateConfirmEnabled);
    // Enter in the typed confirmation does not submit anything.
    $("dlg-typed").addEventListener("keydown", function (e) { if (e.key === "Enter") e.preventDefault(); });
    // Editing a field clears its error.
    $("action-form").addEventListener("input", function (e) {
      var name = e.target.getAttribute("name");
      var p = name && $("err-" + name);
      if (p) { p.textContent = ""; e.target.removeAttribute("aria-invalid"); }
    });
    dlg.addEventListener("close", function () { if (current && current.opener && document.contains(current.opener)) current.opener.focus(); });
  }

  // ---------------------------------------------------------------- approvals review
  var dd = $("decide-dialog");
  var deciding = null; // {decision, ids[], opener, review}
  // The review comes from the server: per approval what the decision does now
  // (will quarantine, already quarantined, now protected, revoked), the header counting
  // what will change, and the revisions the decision sends back (409 if they moved).
  function renderDecideReview(j) {
    deciding.review = j;
    $("dd-summary").textContent = localizeText(j.summary);
    var ddw = $("dd-warnings");
    if (ddw) {
      ddw.textContent = "";
      (j.warnings || []).forEach(function (t) {
        var li = document.createElement("li");
        li.textContent = "⚠ " + localizeText(t);
        ddw.appendChild(li);
      });
    }
    var go = $("dd-go");
    go.textContent = j.button;
    go.disabled = !connected || !j.count;
    var box = $("dd-events");
    box.textContent = "";
    (j.approvals || []).slice(0, 50).forEach(function (a) {
      var tr = $("approval-" + a.id);
      var t = tr && tr.querySelector("template.review-event");
      var sec = document.createElement("section");
      sec.className = "review-event-card" + (a.changes ? "" : " no-change");
      sec.setAttribute("data-approval", a.id);
      sec.setAttribute("data-effect", a.effect);
      var h = document.createElement("h3");
      h.textContent = a.hostname + " ";
      var note = (j.hosts || {})[a.host_id] || {};
      h.appendChild(shortId(a.host_id, note.short_id));
      (note.flags || []).forEach(function (f) { h.appendChild(document.createTextNode(" ")); h.appendChild(tag("⚠ " + f, "tag-dup")); });
      if (note.not_enforcing) { h.appendChild(document.createTextNode(" ")); h.appendChild(tag("not enforcing", "tag-warn")); }
      if (note.offline) { h.appendChild(document.createTextNode(" ")); h.appendChild(tag("offline", "tag-offline")); }
      sec.appendChild(h);
      var w = document.createElement("p");
      w.className = "effect effect-" + a.effect;
      // "→" for what the decision changes; no state icon for what it does not (trial19
      // LOW-e: "■", the Quarantined icon, stood on "already denied (no change)").
      w.textContent = (a.changes ? "→ " : "– ") + localizeText(a.words);
      sec.appendChild(w);
      // What approving applies (the rule's plan at event time) and whether the rule
      // changed since (trial19 LOW-j).
      if (a.rule_changed) {
        var rc = document.createElement("p");
        rc.className = "effect rule-changed warn";
        rc.textContent = "⚠ " + a.rule_changed;
        sec.appendChild(rc);
      }
      if (a.applies && a.applies.length) {
        var ap = document.createElement("ul");
        ap.className = "applies";
        a.applies.forEach(function (t) { var x = document.createElement("li"); x.textContent = t; ap.appendChild(x); });
        sec.appendChild(ap);
      }
      if (t) sec.appendChild(document.importNode(t.content, true));
      box.appendChild(sec);
    });
    localTimes(box);
  }
  function reviewDecide() {
    if (!deciding) return Promise.resolve();
    var asked = deciding;
    return post("/console/approvals/review", { ids: asked.ids, decision: asked.decision }).then(function (j) {
      if (deciding !== asked) return;
      if (!j.ok) { $("err-dd").textContent = j.error || "cannot review"; $("dd-go").disabled = true; return; }
      renderDecideReview(j);
    });
  }
  function openDecide(btn) {
    var decision = btn.getAttribute("data-decision");
    var ids = btn.getAttribute("data-target") === "selection"
      ? Array.prototype.map.call(document.querySelectorAll(".ap-select:checked"), function (c) { return c.value; })
      : (btn.getAttribute("data-ids") || "").split(",").filter(Boolean);
    if (ids.length === 0) { flash("Select approvals first (tick their boxes).", "warn"); return; }
    deciding = { decision: decision, ids: ids.map(function (x) { return parseInt(x, 10); }), opener: btn, review: null };
    $("dd-title").textContent = decision === "approve" ? "Approve automatic quarantine" : "Deny automatic quarantine";
    $("dd-summary").textContent = "Reviewing…";
    $("dd-events").textContent = "";
    if ($("dd-warnings")) $("dd-warnings").textContent = "";
    $("dd-comment").value = "";
    $("err-dd").textContent = "";
    $("dd-go").textContent = "Reviewing…";
    $("dd-go").disabled = true;
    dd.classList.toggle("is-release", decision !== "approve");
    dd.showModal();
    // Focus in the comment: Enter there never decides anything.
    $("dd-comment").focus();
    reviewDecide();
  }
  function decide() {
    var go = $("dd-go");
    if (go.disabled || !deciding || !deciding.review) return;
    var comment = $("dd-comment").value;
    if (!comment.trim()) { $("err-dd").textContent = "A comment is required: say why."; $("dd-comment").focus(); return; }
    go.disabled = true;
    post("/console/approvals/decide", { ids: deciding.ids, decision: deciding.decision, comment: comment,
      revisions: deciding.review.revisions || {} }).then(function (j) {
      if (!j.ok) {
        $("err-dd").textContent = j.error || (j.errors && j.errors.form) || "refused";
        // A host moved on since the review: show the review as it is now.
        if (j.status === 409) reviewDecide(); else go.disabled = !connected;
        return;
      }
      dd.close();
      flash(j.summary, "ok");
      refresh();
    });
  }
  if (dd) {
    document.addEventListener("click", function (e) {
      var btn = e.target.closest("button.decide-open");
      if (btn && !btn.disabled) openDecide(btn);
    });
    $("decide-form").addEventListener("submit", function (e) { e.preventDefault(); });
    $("dd-comment").addEventListener("keydown", function (e) { if (e.key === "Enter") e.preventDefault(); });
    $("dd-cancel").addEventListener("click", function () { dd.close(); });
    $("dd-go").addEventListener("click", decide);
    dd.addEventListener("close", function () { if (deciding && deciding.opener && document.contains(deciding.opener)) deciding.opener.focus(); });
  }

  // ---------------------------------------------------------------- guardrails (admins)
  var sd = $("settings-dialog");
  var patch = null;
  function sdStep(reviewing) {
    $("sd-fields").hidden = reviewing;
    $("sd-review").hidden = reviewing;
    $("sd-apply").hidden = !reviewing;
  }
  function openSettings(btn) {
    $("settings-form").reset();
    $("err-sd").textContent = "";
    $("sd-changes").textContent = "";
    $("sd-summary").textContent = "";
    if (btn.hasAttribute("data-edit")) {
      patch = null;
      $("sd-title").textContent = "Change guardrails";
      sdStep(false);
      sd.showModal();
      $("sd-cap").focus();
    } else {
      patch = JSON.parse(btn.getAttribute("data-patch"));
      $("sd-title").textContent = patch.enabled === false ? "Kill switch" : "Resume automation";
      $("sd-summary").textContent = btn.getAttribute("data-summary");
      sdStep(true);
      $("sd-apply").textContent = patch.enabled === false ? "Stop automatic actions" : "Resume automatic actions";
      $("sd-apply").disabled = !connected;
      sd.showModal();
      $("sd-cancel").focus();
    }
  }
  function reviewSettings(e) {
    e.preventDefault();
    var cur = JSON.parse($("settings-form").getAttribute("data-current"));
    var next = {
      cap_count: parseInt($("sd-cap").value, 10),
      cap_window_secs: parseInt($("sd-window").value, 10),
      cooldown_secs: parseInt($("sd-cool").value, 10),
      protected_labels: $("sd-prot").value.split(",").map(function (x) { return x.trim(); }).filter(Boolean)
    };
    var names = { cap_count: "Fleet cap", cap_window_secs: "Cap window (s)", cooldown_secs: "Per-host cooldown (s)", protected_labels: "Protected labels" };
    patch = {};
    var ul = $("sd-changes");
    ul.textContent = "";
    Object.keys(next).forEach(function (k) {
      var a = JSON.stringify(cur[k]), b = JSON.stringify(next[k]);
      if (a !== b) {
        patch[k] = next[k];
        var li = document.createElement("li");
        li.textContent = names[k] + ": " + (Array.isArray(cur[k]) ? cur[k].join(", ") || "none" : cur[k]) + " → " + (Array.isArray(next[k]) ? next[k].join(", ") || "none" : next[k]);
        ul.appendChild(li);
      }
    });
    var n = Object.keys(patch).length;
    $("sd-summary").textContent = n === 0 ? "Nothing changes." : "Apply " + n + (n === 1 ? " change" : " changes") + " to the fleet guardrails?";
    sdStep(true);
    $("sd-apply").textContent = "Apply";
    $("sd-apply").disabled = n === 0 || !connected;
    $("sd-cancel").focus();
  }
  function applySettings() {
    var b = $("sd-apply");
    if (b.disabled || !patch) return;
    b.disabled = true;
    $("err-sd").textContent = "";
    post("/console/settings", patch).then(function (j) {
      b.disabled = !connected;
      if (!j.ok) { $("err-sd").textContent = j.error || "refused"; return; }
      sd.close();
      flash(j.summary, "ok");
      setTimeout(function () { location.reload(); }, 600);
    });
  }
  if (sd) {
    document.addEventListener("click", function (e) {
      var btn = e.target.closest("button.settings-open");
      if (btn && !btn.disabled) openSettings(btn);
    });
    $("settings-form").addEventListener("submit", function (e) {
      if ($("sd-fields").hidden) { e.preventDefault(); return; }
      reviewSettings(e);
    });
    $("sd-cancel").addEventListener("click", function () { sd.close(); });
    $("sd-apply").addEventListener("click", applySettings);
  }

  localTimes();
  tick();
  updateSelectionCount();
  connect();
})();
