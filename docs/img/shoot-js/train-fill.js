// Prefect run form of the walkthrough (docs/walkthrough-data-scientist.md): what the data scientist types.
typeInto(document.querySelector('input'), 'gsm8k-hh-qa-prompt');
await setProp('dataset (Optional)', '40bae01470bc');
await setIn('Sft (Optional)', 'Max Steps', '60');
await setIn('Sft (Optional)', 'Max Length', '512');
await setIn('Preference (Optional)', 'Max Steps', '10');
await setIn('Preference (Optional)', 'Max Length', '512');
await setIn('prompt (Optional)', 'Template', 'Question: {{question}} End with #### and the number.');
// The first submission stopped after SFT: 21% of the HH pairs have a prompt of 512 tokens or more.
await setIn('Preference (Optional)', 'Max Dropped Fraction', '0.25');
