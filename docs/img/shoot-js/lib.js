// Prefect run forms: find a field by its label and type into it the way a keyboard does.
window.prop = label => [...document.querySelectorAll('.p-label__header')].filter(d => d.innerText.startsWith(label))[0].closest('.schema-form-property');
window.propFields = label => [...prop(label).querySelectorAll('input, textarea')];
window.propButton = (label, text) => [...prop(label).querySelectorAll('button')].find(b => b.innerText.trim() === text);
window.setProp = async (label, value) => { const f = propFields(label)[0]; typeInto(f, value); await sleep(200); };
window.setText = async (label, value) => {   // a str | None field: pick "str", then type
  const b = propButton(label, 'str'); if (b) { b.click(); await sleep(400); }
  typeInto(propFields(label)[0], value); await sleep(200);
};
window.scrollToProp = label => { prop(label).scrollIntoView({block: 'start'}); window.scrollBy(0, -20); };
window.propIn = (parent, label) => [...prop(parent).querySelectorAll('.p-label__header')].filter(d => d.innerText.startsWith(label))[0].closest('.schema-form-property');
window.setIn = async (parent, label, value) => { typeInto(propIn(parent, label).querySelector('input, textarea'), value); await sleep(200); };
