// Keys reach the app without a click first: once the app's websocket is open (textual.js
// then marks the body "-loaded"), focus the terminal's input, where xterm takes keys.
"use strict";
new MutationObserver((changes, observer) => {
  const input = document.querySelector(".xterm-helper-textarea");
  if (document.body.classList.contains("-loaded") && input) {
    observer.disconnect();
    input.focus();
  }
}).observe(document.documentElement, { subtree: true, attributes: true,
                                       attributeFilter: ["class"] });
