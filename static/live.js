// Live states on the project pages: the builds list, the monitor, a package, a build.
//
// The page names its project in #live[data-events]; this follows the project's
// event stream, /api/events/stream?project=<owner>/<name> (kopers/api/eventstream.py),
// with EventSource, which reconnects by itself and resumes after the last event
// (Last-Event-ID). Every element with data-state-of="<build>" shows that build's
// state, and data-state-of="<build>:<chroot>" one chroot's: a build.state or
// task.state event rewrites them. A build the page does not show yet is added
// to the builds list (its first page, unfiltered) or to the monitor's cells, from
// /api_3/build/<id>; elsewhere the page says that there is news to reload for.
// Text goes in as text, never as HTML. Without JavaScript the page is the same,
// as of when it was loaded.
"use strict";

(function () {
  const live = document.getElementById("live");
  if (!live || !live.dataset.events || !window.EventSource) return;
  const STATE = /^[a-z]{1,20}$/;
  const known = new Set();
  document.querySelectorAll("[data-state-of]").forEach(function (el) {
    known.add(el.dataset.stateOf.split(":")[0]);
  });
  const fetched = new Set();

  function newest() {
    let max = 0;
    known.forEach(function (id) { max = Math.max(max, Number(id) || 0); });
    return max;
  }

  function say(text) {
    live.textContent = text;
  }

  const STATES = ["pending", "starting", "running", "importing", "waiting", "succeeded",
    "failed", "canceled", "skipped", "forked", "unknown"];

  function setState(el, state) {
    el.textContent = state;
    STATES.forEach(function (s) { el.classList.remove(s); });
    el.classList.add("state", state);
  }

  function stateSpan(state, of) {
    const span = document.createElement("span");
    span.className = "state " + state;
    span.dataset.stateOf = of;
    span.textContent = state;
    return span;
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function cell(text) {
    const td = document.createElement("td");
    if (text !== null && text !== undefined) td.textContent = String(text);
    return td;
  }

  function when(seconds) {
    if (!seconds) return "";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function newsToReload() {
    say("There are new builds. ");
    const a = link(location.href, "Reload to see them");
    live.appendChild(a);
  }

  // A build this page did not show: a row of the builds list, cells of the monitor.
  async function addBuild(id) {
    if (fetched.has(id)) return;
    fetched.add(id);
    const table = document.getElementById("builds");
    const monitor = document.getElementById("monitor");
    if (table && table.dataset.new === "note") return newsToReload();
    if (!table && !monitor) return;
    let build;
    try {
      build = await (await fetch("/api_3/build/" + id)).json();
    } catch (err) {
      return;
    }
    if (!build || build.id !== id || !STATE.test(build.state)) return;
    if (table && table.dataset.new === "insert") {
      const base = table.dataset.base;
      const row = document.createElement("tr");
      row.dataset.build = String(id);
      const first = cell(null);
      first.appendChild(link(base + "build/" + id + "/", String(id)));
      const name = (build.source_package || {}).name;
      const pkg = cell(null);
      if (name) pkg.appendChild(link(base + "package/" + encodeURIComponent(name) + "/", name));
      const state = cell(null);
      state.appendChild(stateSpan(build.state, String(id)));
      row.append(first, pkg, cell((build.source_package || {}).version || ""), state,
        cell(when(build.submitted_on)), cell(build.submitter));
      const body = table.tBodies[0];
      body.insertBefore(row, body.firstChild);
      known.add(String(id));
    }
    if (monitor) {
      const name = (build.source_package || {}).name;
      const row = name ? monitor.querySelector('tr[data-package="' + CSS.escape(name) + '"]') : null;
      if (!row) return newsToReload();
      known.add(String(id));
      for (const chroot of build.chroots || []) {
        const td = row.querySelector('td[data-chroot="' + CSS.escape(chroot) + '"]');
        if (!td) continue;
        td.textContent = "";
        td.append(link(monitor.dataset.base + "build/" + id + "/", String(id)), " ",
          stateSpan("pending", id + ":" + chroot));
      }
    }
  }

  function onEvent(message) {
    let ev;
    try {
      ev = JSON.parse(message.data);
    } catch (err) {
      return;
    }
    if (!Number.isInteger(ev.build) || !STATE.test(ev.state || "")) return;
    const id = String(ev.build);
    // Newer than any build shown: a new one (an older one is on another page).
    if (!known.has(id) && ev.build > newest() && (ev.kind === "task.state" || ev.kind === "build.state")) {
      addBuild(ev.build);
    }
    let of = null;
    if (ev.kind === "build.state") of = id;
    else if (ev.kind === "task.state" && ev.chroot) of = id + ":" + ev.chroot;
    if (of) {
      document.querySelectorAll('[data-state-of="' + CSS.escape(of) + '"]').forEach(function (el) {
        setState(el, ev.state);
      });
    }
    document.dispatchEvent(new CustomEvent("kopers:event", { detail: ev }));
  }

  const url = "/api/events/stream?project=" + encodeURIComponent(live.dataset.events);
  const source = new EventSource(url);
  ["task.state", "build.state", "source.state", "build.published"].forEach(function (kind) {
    source.addEventListener(kind, onEvent);
  });
  source.onopen = function () {
    if (!live.firstElementChild) say("Live: states change here as they change.");
  };
  source.onerror = function () {
    if (!live.firstElementChild) say("Reconnecting to the live states…");
  };
})();
