// Run-time techniques the guard must hold: each a function of (script URL, plain URL)
// run in the page by tests/test_guard_browser.py; __run(urls, tag) runs them all.
window.__T = {
  appendChild: (s, u) => { const e = document.createElement('script'); e.src = s; document.head.appendChild(e) },
  insertBefore: (s, u) => { const e = document.createElement('script'); e.setAttribute('src', s); const f = document.scripts[0]; f.parentNode.insertBefore(e, f) },
  append: (s, u) => { const e = document.createElement('script'); e.src = s; document.body.append(e) },
  after: (s, u) => { const e = document.createElement('script'); e.src = s; document.body.firstElementChild.after(e) },
  adjacentElement: (s, u) => { const e = document.createElement('script'); e.src = s; document.body.insertAdjacentElement('beforeend', e) },
  module: (s, u) => { const e = document.createElement('script'); e.type = 'module'; e.src = s; document.head.append(e) },
  image: (s, u) => { new Image().src = u },
  imageAttr: (s, u) => { document.createElement('img').setAttribute('src', u) },
  srcset: (s, u) => { const i = new Image(); i.srcset = u + ' 1x, /a.png 2x' },
  iframe: (s, u) => { const f = document.createElement('iframe'); f.src = u; document.body.append(f) },
  object: (s, u) => { const o = document.createElement('object'); o.data = u; document.body.append(o) },
  innerHTML: (s, u) => { const d = document.createElement('div'); d.innerHTML = '<p><img src="' + u + '" alt=x></p>'; document.body.append(d) },
  adjacentHTML: (s, u) => { document.body.insertAdjacentHTML('beforeend', "<iframe src='" + u + "'></iframe>") },
  outerHTML: (s, u) => { const d = document.createElement('div'); document.body.append(d); d.outerHTML = '<img src=' + u + '>' },
  contextual: (s, u) => { document.body.append(document.createRange().createContextualFragment('<script src="' + s + '"></' + 'script>')) },
  domParser: (s, u) => { document.body.append(new DOMParser().parseFromString('<img src="' + u + '">', 'text/html').body.firstChild) },
  clone: (s, u) => { const t = document.createElement('template'); t.innerHTML = '<img src="' + u + '">'; document.body.append(t.content.cloneNode(true)) },
  preload: (s, u) => { const l = document.createElement('link'); l.rel = 'preload'; l.as = 'script'; l.href = s; document.head.append(l) },
  modulepreload: (s, u) => { const l = document.createElement('link'); l.rel = 'modulepreload'; l.href = s; document.head.append(l) },
  prefetch: (s, u) => { const l = document.createElement('link'); l.setAttribute('rel', 'prefetch'); l.setAttribute('href', u); document.head.append(l) },
  stylesheet: (s, u) => { const l = document.createElement('link'); l.rel = 'stylesheet'; l.href = u; document.head.append(l) },
  svgScript: (s, u) => { const e = document.createElementNS('http://www.w3.org/2000/svg', 'script'); e.setAttributeNS('http://www.w3.org/1999/xlink', 'xlink:href', s); document.body.appendChild(document.createElementNS('http://www.w3.org/2000/svg', 'svg')).append(e) },
  fetch: (s, u) => fetch(u, { mode: 'no-cors' }).then(() => 'resolved', e => e.name),
  xhr: (s, u) => new Promise(ok => { const x = new XMLHttpRequest(); x.open('POST', u); x.onloadend = () => ok(x.readyState + ':' + x.status); x.send('a=1') }),
  beacon: (s, u) => navigator.sendBeacon(u, 'a=1'),
};
window.__run = async (urls, tag) => {
  const out = {}
  for (const [name, f] of Object.entries(__T)) {
    const t = name + '-' + tag
    try { out[name] = await f(urls[0].replace('{t}', t), urls[1].replace('{t}', t)) ?? null }
    catch (e) { out[name] = 'threw ' + e }
  }
  return out
};
