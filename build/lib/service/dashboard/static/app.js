// AutoDistiller dashboard: live job progress (server-sent events) and lazily loaded fragments. No libraries.
"use strict";

const TERMINAL = ["finished", "failed", "cancelled"];

function setText(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

function fmt(v, digits = 4) {
  return v === null || v === undefined ? "–" : Number(v).toFixed(digits);
}

async function loadLazy(root) {
  for (const el of root.querySelectorAll(".lazy[data-src]")) {
    try {
      const r = await fetch(el.dataset.src, { credentials: "same-origin" });
      el.innerHTML = r.ok ? await r.text() : `<p class="error">could not load (${r.status})</p>`;
    } catch (e) {
      el.innerHTML = `<p class="error">could not load: ${e}</p>`;
    }
  }
}

async function refreshLive(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) return;
  const live = document.getElementById("live");
  live.innerHTML = await r.text();
  loadLazy(live);
}

function follow(section) {
  const es = new EventSource(section.dataset.jobEvents, { withCredentials: true });
  let last = null;
  es.addEventListener("job", (event) => {
    const job = JSON.parse(event.data);
    const state = document.getElementById("job-state");
    if (state) { state.textContent = job.state; state.className = `state ${job.state}`; }
    setText("job-trials", `${job.progress.trials_done}/${job.progress.trials_budget}`);
    setText("job-best", fmt(job.best_accuracy));
    setText("job-teacher", fmt(job.teacher_accuracy));
    setText("job-eta", job.eta_seconds === null ? "–" : `${Math.round(job.eta_seconds)} s`);
    setText("job-text", job.progress.text);
    const bar = document.getElementById("job-bar");
    if (bar) bar.style.width = `${(job.progress.fraction * 100).toFixed(1)}%`;
    const mark = `${job.state}:${job.progress.trials_done}`;
    if (last !== null && mark !== last) refreshLive(section.dataset.live);
    last = mark;
    if (TERMINAL.includes(job.state)) es.close();
  });
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) return; };
}

document.addEventListener("DOMContentLoaded", () => {
  loadLazy(document);
  const section = document.querySelector("[data-job-events]");
  if (section && !TERMINAL.includes(document.getElementById("job-state").textContent.trim())) follow(section);
});
