// After tags-expand.js: scroll so that the rollback's tags (rollback.by, rollback.reason) are in the picture.
const cell = [...document.querySelectorAll('td, div, span')].find(e => e.children.length === 0 && e.innerText && e.innerText.trim() === 'prompt.live');
cell.scrollIntoView({block: 'start'});
window.scrollBy(0, -70);
await sleep(500);
