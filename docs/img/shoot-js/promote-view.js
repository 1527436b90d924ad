// Prefect promote form: show the filled train_run and the gate's Require Improvement switch.
scrollToProp('Min Items (Optional)');
await sleep(300);
