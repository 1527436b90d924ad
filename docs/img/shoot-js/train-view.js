// Prefect train form: show the config.prompt section.
scrollToProp('prompt (Optional)');
