window.TAB = 'Artifacts';
