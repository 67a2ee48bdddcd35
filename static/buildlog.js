// The live log viewer of the build page (/coprs/build/<id>, /coprs/<owner>/<project>/build/<id>).
//
// Each chroot's <section class="live-log"> follows /ws/builds/<id>/<chroot>/log
// (protocol: kopers/api/websocket.py). Lines are numbered; after a dropped
// connection the viewer reconnects with ?from=<next line>, so the log has no
// gap and no duplicate. Kopers' own lines are shown apart (class "kopers-line")
// because the server says they are Kopers' ("kopers" in each message), never
// because of what their text looks like: the build can print anything. It
// scrolls along while the view is at the bottom and "follow" is ticked;
// scrolling up stops that until you scroll back down.
// The chroot and build states, attempts and reasons are read again from the Copr
// API when the project's event stream (static/live.js) tells of a change to this
// build, and now and then in case the stream is down, until the build ends.
"use strict";

(function () {
  const script = document.currentScript;
  const buildId = script ? script.dataset.build : null;
  const FINISHED = ["succeeded", "failed", "canceled", "skipped", "forked"];

  function setState(el, state) {
    if (!el || !state) return;
    el.textContent = state;
    el.className = el.className.replace(/\bstate \S+/, "").trim() + " state " + state;
  }

  function follow(section) {
    const pre = section.querySelector("pre.log");
    const status = section.querySelector(".log-status");
    const count = section.querySelector(".log-count");
    const followBox = section.querySelector(".log-follow");
    let next = 1;
    let ended = false;
    let delay = 500;

    function atBottom() {
      return pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    }

    function addLines(first, lines, kopers) {
      // Skip anything already shown (a resumed stream never repeats, but be safe).
      const skip = Math.max(0, next - first);
      const fresh = lines.slice(skip);
      if (!fresh.length) return;
      const stick = followBox.checked && atBottom();
      const own = new Set((kopers || []).map(function (i) { return i - skip; }));
      const part = document.createDocumentFragment();
      let plain = [];
      fresh.forEach(function (text, i) {
        if (!own.has(i)) {
          plain.push(text);
          return;
        }
        if (plain.length) part.appendChild(document.createTextNode(plain.join("\n") + "\n"));
        plain = [];
        const span = document.createElement("span");
        span.className = "kopers-line";
        span.textContent = text;
        part.appendChild(span);
        part.appendChild(document.createTextNode("\n"));
      });
      if (plain.length) part.appendChild(document.createTextNode(plain.join("\n") + "\n"));
      pre.appendChild(part);
      next = first + skip + fresh.length;
      count.textContent = (next - 1) + " lines";
      if (stick) pre.scrollTop = pre.scrollHeight;
    }

    function showStatus(text, state) {
      status.textContent = text;
      status.dataset.state = state || "";
      status.className = "log-status" + (state ? " state " + state : "");
    }

    function connect() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(proto + "//" + location.host + section.dataset.ws + "?from=" + next);
      ws.onopen = function () {
        delay = 500;
        showStatus("live");
      };
      ws.onmessage = function (event) {
        const msg = JSON.parse(event.data);
        if (msg.type === "lines") {
          addLines(msg.first, msg.lines, msg.kopers);
        } else if (msg.type === "waiting") {
          showStatus("waiting for the build to start (" + msg.state + ")");
        } else if (msg.type === "end") {
          ended = true;
          showStatus("ended: " + msg.state + (msg.reason ? " (" + msg.reason + ")" : ""), msg.state);
          const row = document.querySelector('#chroots tr[data-chroot="' + section.dataset.chroot + '"]');
          if (row) setState(row.querySelector(".task-state"), msg.state);
        }
      };
      ws.onclose = function (event) {
        if (ended) return;
        // The server restarted or the network blinked: resume after the last line shown.
        showStatus("reconnecting" + (event.reason ? " (" + event.reason + ")" : ""));
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }

    pre.addEventListener("scroll", function () {
      if (atBottom()) followBox.checked = true;
    });
    pre.addEventListener("wheel", function (event) {
      if (event.deltaY < 0) followBox.checked = false;
    });
    connect();
  }

  const FALLBACK_MS = 15000; // a read without an event, in case the stream is down
  let timer = null;
  let finished = false;

  async function refreshStates() {
    if (!buildId || finished) return;
    clearTimeout(timer);
    try {
      const build = await (await fetch("/api_3/build/" + buildId)).json();
      setState(document.getElementById("build-state"), build.state);
      const chroots = await (await fetch("/api_3/build-chroot/list?build_id=" + buildId)).json();
      for (const c of chroots.items || []) {
        const row = document.querySelector('#chroots tr[data-chroot="' + c.name + '"]');
        if (!row) continue;
        setState(row.querySelector(".task-state"), c.state);
        row.querySelector(".task-attempts").textContent = c.attempts;
        row.querySelector(".task-reason").textContent = c.reason || "";
      }
      if (FINISHED.includes(build.state)) {
        finished = true;
        return;
      }
    } catch (err) {
      // The server may be restarting; try again below.
    }
    timer = setTimeout(refreshStates, FALLBACK_MS);
  }

  document.addEventListener("kopers:event", function (event) {
    if (String(event.detail.build) === buildId) refreshStates();
  });
  document.querySelectorAll("section.live-log").forEach(follow);
  refreshStates();
})();
