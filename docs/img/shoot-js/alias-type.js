// MLflow: the alias editor is open; type "champion" and press Enter (Save is alias-save.js).
const dialog = document.querySelector('[role=dialog]');
const input = dialog.querySelector('input');
input.focus();
input.dispatchEvent(new MouseEvent('mousedown', {bubbles: true}));
typeInto(input, 'champion');
await sleep(800);
input.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', keyCode: 13, which: 13, bubbles: true}));
await sleep(1000);

