// Prefect run form: press Submit (the run is created exactly as the form holds it).
byText('button', 'Submit').click();
await sleep(4000);
