// The release manager's form: press its Submit (this resumes the run for real).
byText('[role=dialog] button', 'Submit').click();
await sleep(3000);
