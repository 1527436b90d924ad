// Prefect run form of the walkthrough (docs/walkthrough-data-scientist.md): what the data scientist types.
// The train run's MLflow id is the one of that session: read yours from the train run's log.
typeInto(document.querySelector('input'), 'gate-gsm8k-v3');
await setProp('train_run (Optional)', window.TRAIN_RUN || 'd2b8e9a5b8ca4c8ca4a2df3a6e569db2');
const toggle = prop('Require Improvement (Optional)').querySelector('[role=switch], input[type=checkbox], button');
toggle.click(); await sleep(400);
