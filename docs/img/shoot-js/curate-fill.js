// Prefect run form of the walkthrough (docs/walkthrough-data-scientist.md): what the data scientist types.
await setProp('Name (Optional)', 'gsm8k-hh');
for (const path of ['/tmp/walk-data/gsm8k-train.jsonl', '/tmp/walk-data/hh-harmless.jsonl.gz']) {
  propButton('Inputs (Optional)', 'Add item').click();
  await sleep(500);
  typeInto(propFields('Inputs (Optional)').filter(f => !f.value).pop(), path);
  await sleep(300);
}
await setText('Eval Path (Optional)', '/tmp/walk-data/gsm8k-eval.jsonl');
typeInto(document.querySelector('input'), 'my-gsm8k-and-hh');
await sleep(300);
window.scrollTo(0, 0);
