// Close the "MLflow Assistant" side panel MLflow 3.17 opens by default (not part of llmops).
const close = document.querySelector('button[aria-label="Close"]');
if (close) { close.click(); await sleep(800); }
