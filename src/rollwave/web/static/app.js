// Rollwave dashboard: the little behaviour htmx does not cover. No inline scripts (CSP).
document.addEventListener("htmx:sseClose", function () {
  document.querySelectorAll("[data-testid=live]").forEach(function (el) { el.remove(); });
});
document.addEventListener("htmx:sseOpen", function () {
  document.body.classList.add("sse-open");
});
