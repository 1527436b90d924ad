// After tags-expand.js: scroll so that the decision's tags (gate.decided_at ... gate.verdict) fill the picture.
const cell = [...document.querySelectorAll('td, div, span')].find(e => e.children.length === 0 && e.innerText && e.innerText.trim() === 'gate.decided_at');
cell.scrollIntoView({block: 'start'});
window.scrollBy(0, -70);
await sleep(500);
