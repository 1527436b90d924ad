// MLflow, Models -> tiny-arith: open the alias editor of Version 3 (the pencil beside its aliases).
await sleep(1500);
const row = [...document.querySelectorAll('tr, [role=row]')].find(r => r.innerText && r.innerText.includes('Version 3'));
const buttons = [...row.querySelectorAll('button')];
buttons[buttons.length - 1].click();
await sleep(1500);
