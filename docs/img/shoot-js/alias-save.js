// MLflow alias editor: press "Save aliases" (this moves the alias for real).
byText('[role=dialog] button', 'Save aliases').click(); await sleep(2500);
