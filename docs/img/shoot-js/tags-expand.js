// The version page shows its tags in a box that scrolls on its own, inside a page that scrolls on its own:
// let both grow (layout only, no content changes) so that every gate.* and lineage.* tag is in one picture.
await sleep(1500);
const cell = [...document.querySelectorAll('td, div, span')].find(e => e.innerText && e.innerText.trim() === 'lineage.prompt');
let node = cell;
while (node && node !== document.documentElement) {
  const style = getComputedStyle(node);
  if (/(auto|scroll|hidden)/.test(style.overflowY) || node.scrollHeight > node.clientHeight + 2) {
    node.style.maxHeight = 'none'; node.style.height = 'auto'; node.style.overflow = 'visible';
  }
  node = node.parentElement;
}
await sleep(500);
const tags = [...document.querySelectorAll('h2, h3, span, div')].find(e => e.innerText && e.innerText.trim() === 'Tags');
tags.scrollIntoView({block: 'start'});
await sleep(500);
