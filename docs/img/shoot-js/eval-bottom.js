// Prefect evaluate form: show the plain fields below config.
prop('model (Optional)').scrollIntoView({block: 'start'}); await sleep(300);
