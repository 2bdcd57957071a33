// A student's page: one xterm.js terminal per node, each over its own websocket to the
// server (which holds the SSH session), and the swarm's picture from server-sent events.
"use strict";
(function () {
  const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
  const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + base;

  function openPane(pane) {
    const node = pane.dataset.node;
    const state = pane.querySelector(".state");
    const term = new Terminal({ cursorBlink: true, fontSize: 13, scrollback: 2000 });
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(pane.querySelector(".term"));
    fit.fit();
    let socket = null;

    function show(word, detail) {
      pane.classList.remove("up", "down", "closed");
      pane.classList.add(word);
      state.textContent = detail ? word + ": " + detail : word;
      pane.dataset.state = word;
    }

    function connect() {
      show("connecting", "");
      socket = new WebSocket(wsBase + "term/" + encodeURIComponent(node) +
                             "?cols=" + term.cols + "&rows=" + term.rows);
      socket.onmessage = (event) => {
        const kind = event.data[0], rest = event.data.slice(1);
        if (kind === "o") { term.write(rest); return; }
        const space = rest.indexOf(" ");
        const word = space < 0 ? rest : rest.slice(0, space);
        const detail = space < 0 ? "" : rest.slice(space + 1);
        if (word === "down" || word === "full") {
          show("down", detail);
          term.write("\r\n\x1b[31m[" + node + " is down: " + detail + "]\x1b[0m\r\n");
        } else if (word === "closed") {
          show("closed", detail);
          term.write("\r\n\x1b[33m[closed: " + detail + "; press Enter to reconnect]\x1b[0m\r\n");
        } else {
          show(word, detail);
        }
      };
      socket.onclose = () => { if (pane.dataset.state === "up") show("closed", "connection lost"); };
    }

    term.onData((data) => {
      if (socket && socket.readyState === WebSocket.OPEN) { socket.send("i" + data); return; }
      if (data === "\r") connect();  // a closed or down pane reconnects on Enter
    });
    term.onResize(({ cols, rows }) => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send("r" + cols + "x" + rows);
    });
    window.addEventListener("resize", () => fit.fit());
    connect();
  }

  document.querySelectorAll(".pane").forEach(openPane);

  const picture = document.getElementById("picture");
  const seen = document.getElementById("seen");
  const events = new EventSource(base + "events");
  const doctor = document.getElementById("doctor");
  const lang = document.getElementById("lang");
  const heads = { en: { cause: "cause", fix: "fix", none: "nothing wrong found" },
                  zh: { cause: "原因分析", fix: "解决方法", none: "未发现问题" } };
  let findings = null;
  lang.value = (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";

  function drawDoctor() {
    if (findings === null) return;
    const words = heads[lang.value];
    doctor.replaceChildren();
    if (!findings.length) {
      const li = document.createElement("li");
      li.className = "ok";
      li.textContent = words.none;
      doctor.append(li);
    }
    for (const f of findings) {
      const li = document.createElement("li");
      li.className = "finding " + f.severity;
      li.dataset.check = f.check;
      const said = f[lang.value];
      const head = document.createElement("b");
      head.textContent = f.check + (f.node ? " " + f.node : "") + ": ";
      li.append(head, said.saw);
      for (const key of ["cause", "fix"]) {
        if (!said[key]) continue;
        const p = document.createElement("div");
        p.textContent = words[key] + ": " + said[key];
        li.append(p);
      }
      doctor.append(li);
    }
  }
  lang.addEventListener("change", drawDoctor);

  events.addEventListener("picture", (event) => {
    const data = JSON.parse(event.data);
    picture.innerHTML = data.svg;  // drawn and escaped by the server
    picture.dataset.version = data.version;
    seen.textContent = "as of " + new Date().toLocaleTimeString();
    findings = data.doctor;
    drawDoctor();
  });

  // "check my work": the lesson's steps judged read-only on this student's lab.
  const checkWork = document.getElementById("check-work");
  if (checkWork) {
    const checked = document.getElementById("checked");
    const marks = { passed: "✔ passed", failed: "✘ failed" };
    checkWork.addEventListener("click", async () => {
      checkWork.disabled = true;
      checked.textContent = "checking…";
      try {
        const answer = await fetch(base + "check", { method: "POST" });
        const data = await answer.json();
        if (!answer.ok) { checked.textContent = data.error || answer.statusText; return; }
        for (const step of data.steps) {
          const li = document.querySelector('#lesson li[data-step="' + step.index + '"]');
          if (!li) continue;
          li.dataset.status = step.status;
          li.querySelector(".mark").textContent = marks[step.status] || step.status;
          li.querySelector(".why").textContent = step.detail;
        }
        const done = data.steps.filter((s) => s.status === "passed").length;
        checked.textContent = done + "/" + data.steps.length + " steps passed, " +
          new Date().toLocaleTimeString();
      } catch (error) {
        checked.textContent = "the check did not answer: " + error;
      } finally {
        checkWork.disabled = false;
      }
    });
  }
})();
