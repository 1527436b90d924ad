// Prefect flow-run page: open the tab named in window.TAB and scroll it to the top.
const tab = [...document.querySelectorAll('button, a, [role=tab], li')].filter(e => e.innerText && e.innerText.trim() === window.TAB).pop();
tab.click();
await sleep(2500);
tab.scrollIntoView({block: 'start'});
window.scrollBy(0, -10);
