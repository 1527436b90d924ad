// Prefect run form of the walkthrough (docs/walkthrough-data-scientist.md): what the data scientist types.
// The train run's MLflow id is the one of that session: read yours from the train run's log.
typeInto(document.querySelector('input'), 'gate-gsm8k-v3');
await setProp('train_run (Optional)', window.TRAIN_RUN || '6d7853e0e7e945a684690d2ef0fbc305');
const toggle = prop('Require Improvement (Optional)').querySelector('[role=switch]');
toggle.click(); await sleep(400);
