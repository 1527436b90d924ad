// Prefect run form of the walkthrough (docs/walkthrough-data-scientist.md): what the data scientist types.
typeInto(document.querySelector('input'), 'gsm8k-challenger-vs-champion');
await setProp('model (Optional)', 'tiny-arith@challenger');
