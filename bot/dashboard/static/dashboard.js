// Live refresh for the queue: fetch the same URL and swap the #live element in place,
// so filters and scroll position stay; paused while the tab is hidden.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const seconds = Number(live.dataset.refresh || "15");
  async function refresh() {
    if (document.hidden) return;
    const url = new URL(window.location.href);
    url.searchParams.delete("notice");
    const response = await fetch(url, { credentials: "same-origin", redirect: "manual" });
    if (!response.ok) return; // logged out or server away: keep what is shown
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("live");
    if (fresh) live.replaceChildren(...fresh.childNodes);
  }
  window.setInterval(() => { refresh().catch(() => undefined); }, seconds * 1000);
})();
