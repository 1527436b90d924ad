// Prefect run form of the walkthrough (docs/walkthrough-data-scientist.md): what the data scientist types.
typeInto(document.querySelector('input'), 'gate-gsm8k-v3');
await setProp('train_run (Optional)', '181bbd540ed54dd1bfbc7b79df5b941a');
