// The dashboard, kept current without reloading: every data-refresh seconds, fetch this
// same page and swap in its fresh [data-refresh] part (the overview; a job while it is
// queued or running).
// Also asks before destructive actions (forms with data-confirm). Nothing inline, nothing
// from elsewhere: the Content-Security-Policy allows neither.
"use strict";

const DEFAULT_SECONDS = 5;

function period() {
  const box = document.querySelector("[data-refresh]");
  return (Number(box && box.dataset.refresh) || DEFAULT_SECONDS) * 1000;
}

async function refresh() {
  const current = document.querySelector("[data-refresh]");
  if (!current) return false; // a finished job: nothing more will change by itself
  if (document.hidden || current.contains(document.activeElement)) return true;
  const response = await fetch(location.href, { headers: { Accept: "text/html" } });
  if (response.ok && !response.redirected) {
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById(current.id);
    if (fresh) current.replaceWith(document.adoptNode(fresh));
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

document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
document.addEventListener("DOMContentLoaded", every);
