// The dashboard, kept current without reloading: every data-refresh seconds, fetch this
// same page and swap in its fresh [data-refresh] part (the overview, the job list, the
// cron page; a job while it is queued or running).
// The swap waits while the person is busy with that part: a ticked row, text selected
// in it, or focus inside it. Otherwise a refresh would undo their selection.
// Also: "select all" and a count of ticked rows in the job list, a question before
// destructive actions (data-confirm on a form or its button), and a spoken note when
// a job's state changes. Nothing inline, nothing from elsewhere: the
// Content-Security-Policy allows neither.
"use strict";

const DEFAULT_SECONDS = 5;

function period() {
  const box = document.querySelector("[data-refresh]");
  return (Number(box && box.dataset.refresh) || DEFAULT_SECONDS) * 1000;
}

function busy(box) {
  if (box.contains(document.activeElement) && document.activeElement !== document.body) {
    return true;
  }
  if (box.querySelector("input[type=checkbox]:checked")) return true;
  const selection = window.getSelection();
  return Boolean(
    selection && !selection.isCollapsed && box.contains(selection.anchorNode)
  );
}

function announce(text) {
  const region = document.getElementById("announce");
  if (region) region.textContent = text;
}

async function refresh() {
  const current = document.querySelector("[data-refresh]");
  if (!current) return false; // a finished job: nothing more will change by itself
  if (busy(current)) {
    // Counted, so a person (or a test) can see the list is held, not stuck.
    current.dataset.skipped = String(Number(current.dataset.skipped || 0) + 1);
    return true;
  }
  if (document.hidden) return true;
  const response = await fetch(location.href, { headers: { Accept: "text/html" } });
  if (response.ok && !response.redirected) {
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById(current.id);
    if (fresh && !busy(current)) {
      const before = current.querySelector("#state");
      current.replaceWith(document.adoptNode(fresh));
      const after = fresh.querySelector("#state");
      if (before && after && before.textContent !== after.textContent) {
        announce(`The job is ${after.textContent} now.`);
      }
      countSelected();
    }
  }
  return true;
}

function every() {
  setTimeout(async () => {
    let again = true;
    try {
      again = await refresh();
    } catch (error) {
      // The server may be restarting: try again next time.
    }
    if (again) every();
  }, period());
}

function countSelected() {
  const note = document.getElementById("selected-count");
  if (!note) return;
  const ticked = document.querySelectorAll("#selection input[name=job_id]:checked").length;
  note.textContent = ticked
    ? `${ticked} selected; the list stops refreshing until you act or untick them.`
    : "Tick jobs to act on several at once.";
}

document.addEventListener("change", (event) => {
  const box = event.target;
  if (box.id === "select-all") {
    for (const row of document.querySelectorAll("#selection input[name=job_id]")) {
      row.checked = box.checked;
    }
  }
  if (box.closest && box.closest("#selection")) countSelected();
});

document.addEventListener("submit", (event) => {
  const source = event.submitter && event.submitter.dataset.confirm
    ? event.submitter
    : event.target;
  const question = source.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
document.addEventListener("DOMContentLoaded", every);
