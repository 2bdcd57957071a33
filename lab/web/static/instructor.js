// The instructor's board: the server's cached view of every lab, fetched every 2 s (no SSH
// per fetch: the server looks at each lab at most once per 5 s), and the actions.
"use strict";
(function () {
  const said = document.getElementById("said");
  const rows = {};
  document.querySelectorAll("#board tbody tr").forEach((tr) => { rows[tr.dataset.student] = tr; });

  // A cell shows the start of a long text; the whole of it is in its tooltip.
  function cell(tr, name, text, cls) {
    const td = tr.querySelector("td." + name);
    td.textContent = text.length > 160 ? text.slice(0, 159) + "…" : text;
    td.title = text;
    td.className = name + (cls ? " " + cls : "");
  }

  function draw(board) {
    for (const row of board.students) {
      const tr = rows[row.student];
      if (!tr) continue;
      const s = row.summary || {};
      if (s.nodes_total !== undefined) {
        cell(tr, "nodes", s.nodes_up + "/" + s.nodes_total, s.nodes_up === s.nodes_total ? "ok" : "bad");
        tr.querySelector("td.nodes").dataset.live = "1";  // a look's, no longer the state file's
        cell(tr, "swarm", s.swarm + (s.error ? " (" + s.error + ")" : ""), s.swarm === "ok" ? "ok" : "bad");
        cell(tr, "services", String(s.services));
        cell(tr, "doctor", s.doctor ? s.doctor + ": " + s.doctor_first : "ok", s.doctor ? "bad" : "ok");
      }
      cell(tr, "terms", String(row.terminals));
      if (row.last_reset) {
        cell(tr, "reset", row.last_reset.to + " " + new Date(row.last_reset.at * 1000).toLocaleTimeString());
      }
      if (row.grade) {
        cell(tr, "grade", row.grade.healthy ? "healthy" : "NOT healthy: " + row.grade.reasons.join("; "),
             row.grade.healthy ? "ok" : "bad");
      }
      const job = row.job;
      if (job) {
        const cls = job.state === "running" ? "busy" : job.state === "ok" ? "ok" : "bad";
        const text = job.action + (job.detail ? " " + job.detail : "") + ": " +
          (job.state === "running" ? job.last : job.state + ": " + job.result);
        cell(tr, "job", text, cls);
        tr.querySelector("td.job").title = job.lines.join("\n");  // the action's whole log
      }
      tr.dataset.job = job ? job.state : "";
    }
  }

  async function refresh() {
    try {
      const answer = await fetch("board", { cache: "no-store" });
      if (answer.ok) draw(await answer.json());
    } catch (e) { said.textContent = "server not answering"; }
  }

  async function act(student, action, extra) {
    const answer = await fetch("act", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ student: student, action: action }, extra)),
    });
    const data = await answer.json();
    said.textContent = data.error ? data.error :
      action + " started for " + (data.started.join(", ") || "nobody") +
      (data.busy.length ? "; busy: " + data.busy.join(", ") : "");
    refresh();
  }

  document.querySelectorAll("#board tbody button").forEach((button) => {
    button.addEventListener("click", () => {
      const tr = button.closest("tr");
      act(tr.dataset.student, button.dataset.action, {
        failure: tr.querySelector("select.failure").value,
        to: tr.querySelector("select.to").value,
      });
    });
  });
  // For everyone: the API takes "*" for every student (one job each, busy ones are said).
  const forAll = (id, action, extra) => document.getElementById(id)
    .addEventListener("click", () => act("*", action, extra ? extra() : {}));
  forAll("check-all", "check");
  forAll("break-all", "break", () => ({ failure: document.getElementById("failure-all").value }));
  forAll("fix-all", "fix");
  forAll("reset-all", "reset", () => ({ to: document.getElementById("to-all").value }));
  refresh();
  setInterval(refresh, 2000);
})();
