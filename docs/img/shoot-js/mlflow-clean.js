// Close the "MLflow Assistant" side panel that MLflow 3.17 opens by default (not part of llmops), and pick
// the "Model training" view of the sidebar, which is where fine-tuning runs belong.
const close = document.querySelector('button[aria-label="Close"]');
if (close) { close.click(); await sleep(800); }
const training = [...document.querySelectorAll('button, label, span')].find(e => e.innerText && e.innerText.trim() === 'Model training');
if (training) { training.click(); await sleep(1500); }
