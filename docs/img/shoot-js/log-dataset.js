// Prefect flow-run page, Logs tab: scroll to the curate run's last lines (`dataset <hash>`).
await sleep(1500);
const line = [...document.querySelectorAll('div, span, p')].filter(e => e.children.length === 0 && e.innerText && e.innerText.startsWith('dataset ')).pop();
line.scrollIntoView({block: 'center'});
await sleep(800);
