// Small progressive enhancements. Every page works without this file.
"use strict";

document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const target = document.getElementById(copy.dataset.copy);
    if (target && navigator.clipboard) {
      navigator.clipboard.writeText(target.textContent.trim()).then(() => {
        const label = copy.textContent;
        copy.textContent = "Copied";
        setTimeout(() => { copy.textContent = label; }, 1500);
      });
    }
  }
});


// Exact times on hover in the browser's own time zone (the page says UTC without this).
document.querySelectorAll("time[datetime]").forEach((t) => {
  const when = new Date(t.getAttribute("datetime"));
  if (!Number.isNaN(when.getTime())) t.title = when.toLocaleString();
});
