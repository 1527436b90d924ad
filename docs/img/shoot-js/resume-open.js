// Prefect flow-run page of a paused promote run: press Resume, which opens the release manager's form.
byText('button', 'Resume').click();
await sleep(2500);
