// convoy-stream dashboard: the only script the pages load (the Content-Security-Policy allows
// no other). Pages work without it; it adds copy buttons and the live tail.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // Plain-http deployments: the Clipboard API needs a secure context.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  copyText(button.dataset.copy).then(
    () => { button.textContent = "Copied"; button.classList.add("done"); },
    () => { button.textContent = "Press Ctrl+C"; },
  );
  setTimeout(() => { button.textContent = "Copy"; button.classList.remove("done"); }, 1500);
});

// Live tail: reload the newest page every few seconds, unless the user is typing or the tab is hidden.
const refresh = Number(document.body.dataset.liveRefresh || 0);
if (refresh > 0) {
  setInterval(() => {
    const typing = document.activeElement && ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (!document.hidden && !typing) window.location.reload();
  }, refresh * 1000);
}
