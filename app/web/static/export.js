// Live status of an export: poll the job's JSON status until it is done or failed,
// so the page never needs a manual refresh. Plain fetch, nothing loaded from elsewhere.
"use strict";

const FINISHED = ["succeeded", "failed", "cancelled"];
const POLL_MS = 1000;

function show(status) {
  const box = document.getElementById("status");
  box.dataset.state = status.state;
  const badge = document.getElementById("state");
  badge.textContent = status.state;
  badge.className = "badge " + status.state;
  document.getElementById("message").textContent = status.message || "";
  document.getElementById("progress").value = status.progress || 0;
  const error = document.getElementById("error");
  error.textContent = status.error || "";
  error.hidden = !status.error;
  document.getElementById("downloads").hidden = status.result === null;
}

async function poll(url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (response.ok) {
      const status = await response.json();
      show(status);
      if (FINISHED.includes(status.state)) return;
    }
  } catch (error) {
    // The server may be restarting: keep polling, the next answer will do.
  }
  setTimeout(() => poll(url), POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("status");
  if (box && box.dataset.statusUrl && !FINISHED.includes(box.dataset.state)) {
    poll(box.dataset.statusUrl);
  }
});
