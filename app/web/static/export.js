// Live status of exports, so no page needs a manual refresh. Plain fetch, nothing
// loaded from elsewhere (the Content-Security-Policy allows only this site).
//  - An export's page polls its job's JSON status; once the report is ready it
//    fetches the page itself and shows the summary the server drew.
//  - The list polls the JSON list while any export is waiting or being built.
"use strict";

const FINISHED = ["succeeded", "failed", "cancelled"];
const POLL_MS = 1000;
const LIST_POLL_MS = 2000;

function setBadge(badge, status) {
  badge.textContent = status.label;
  badge.className = "badge " + status.state;
}

async function showSummary() {
  // The summary is drawn by the server, once: swap in the fresh page's section.
  const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const id of ["facts", "summary"]) {
    const next = fresh.getElementById(id);
    const current = document.getElementById(id);
    if (next && current) current.replaceWith(next);
    else if (next) document.querySelector("main").appendChild(next);
  }
}

function show(status) {
  const box = document.getElementById("status");
  box.dataset.state = status.state;
  setBadge(document.getElementById("state"), status);
  const progress = document.getElementById("progress");
  progress.value = status.progress || 0;
  progress.hidden = FINISHED.includes(status.state);
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
      if (status.state === "succeeded") await showSummary();
      show(status);
      if (FINISHED.includes(status.state)) return;
    }
  } catch (error) {
    // The server may be restarting: keep polling, the next answer will do.
  }
  setTimeout(() => poll(url), POLL_MS);
}

async function pollList(table) {
  try {
    const response = await fetch(table.dataset.listUrl, { headers: { Accept: "application/json" } });
    if (response.ok) {
      for (const item of (await response.json()).exports) {
        const row = table.querySelector(`tr[data-export-id="${item.id}"]`);
        if (!row) continue;
        row.dataset.state = item.state;
        setBadge(row.querySelector("[data-field=status] .badge"), item);
        row.querySelector("[data-field=rows]").textContent =
          item.state === "succeeded" ? item.rows.toLocaleString("en-US") : "—";
      }
    }
  } catch (error) {
    // As above: try again at the next tick.
  }
  const open = table.querySelectorAll("tr[data-export-id]");
  if ([...open].some((row) => !FINISHED.includes(row.dataset.state))) {
    setTimeout(() => pollList(table), LIST_POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("status");
  if (box && box.dataset.statusUrl && !FINISHED.includes(box.dataset.state)) {
    poll(box.dataset.statusUrl);
  }
  const table = document.getElementById("exports");
  if (table && table.dataset.listUrl) {
    const open = table.querySelectorAll("tr[data-export-id]");
    if ([...open].some((row) => !FINISHED.includes(row.dataset.state))) {
      setTimeout(() => pollList(table), LIST_POLL_MS);
    }
  }
});
