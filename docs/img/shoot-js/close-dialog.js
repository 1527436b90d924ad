// MLflow shows a one-time "new Model Registry UI" promotion dialog: close it as a person would.
await sleep(1500);
for (const b of document.querySelectorAll('[role=dialog] button[aria-label="Close"]')) { b.click(); await sleep(600); }
