prop('dataset (Optional)').scrollIntoView({block: 'center'});
await sleep(300);
