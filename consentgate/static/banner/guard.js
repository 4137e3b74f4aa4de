// consentgate runtime guard: the first script on the page (docs/guard.md). It holds what
// scripts add at run time - elements, network calls, cookies - when it belongs to a category
// the visitor has not granted, and redoes it once, in order, when that category is granted.
// Plain JS, no build step; every byte goes to every visitor, hence the short names. The
// server appends the call: (<data>, <granted ids or 0>); the data, compiled from the catalog
// and the site's declarations (consentgate/guard.py), per category, strictest first:
//   u [[category, 'host/path* /suffix ...'], ...] URL patterns (as catalog.toml's)
//   k [[category, 'name* ...'], ...] cookie names   s [[category, ...]] storage keys
//   x strict mode only: 'host ...' where scripts may come from besides the page's own
// The banner gives the visitor's choice to window.consentgateGuard(granted, decided) (and
// deletes that name). Short names: W window, D document, Q the held items [category, what
// redoes it], E Element.prototype, on the granted categories, dec a decision was made.
((Z, I) => {
const W = window, D = document, Q = [], O = Object, E = Element.prototype, XM = new WeakMap
let on = I || ['necessary'], dec
const ok = c => !c || on.includes(c)
// the guard's own errors never reach the page: t(f) runs f and swallows what it throws
const t = f => { try { return f() } catch {} }
const hold = (c, f) => dec || Q.push([c, f])
// patterns as alternatives of a regular expression: each escaped, * as w (none: no match)
const alt = (p, w) => p.map(x => x.replace(/[^\w*]/g, '\\$&').replace(/\*/g, w)).join('|') || '-^'
const rx = (p, w) => RegExp(`^(${alt(p.split(' '), w)})$`)
// per category: host + path + query (a host pattern: that host or a subdomain; a /suffix:
// on any host, before the query), and the host alone (resource hints)
const U = Z.u.map(([c, p]) => {
  const h = p.split(' ').filter(x => x[0] != '/'), f = p.split(' ').filter(x => x[0] == '/')
  return [c, RegExp(`^(([^/]*\\.)?(${alt(h.map(x => x.includes('/') ? x : x + '/'), '[^?#]*')})|[^?]*(${alt(f)})(\\?|$))`), RegExp(`^(.*\\.)?(${alt(h.map(x => x.split('/')[0]))})$`)]
})
const K = Z.k.map(([c, p]) => [c, rx(p, '.*')]), SX = Z.x != null && RegExp(`^(.*\\.)?(${alt(Z.x.split(' '))})$`)
// a URL (or tag) without any of the words the patterns need is passed without a look
const HW = RegExp(Z.h + '|&#|\\\\|%', 'i')
// the category of a URL; h: a resource hint (matched by host), s: a script (strict mode)
const cat = (v, h, s) => {
  if (!HW.test(v) && !(s && SX)) return
  const u = new URL(v, D.baseURI), n = u.hostname
  if (/^(http|ws)s?:$/.test(u.protocol)) {
    for (const [c, r, q] of U) if (h ? q.test(n) : r.test(n + u.pathname + u.search)) return c
    if (s && SX && n != location.hostname && !SX.test(n)) return 'unclassified'
  }
}
// the refused category a URL (or Request) is held under, or 0
const nc = u => { const c = t(() => cat(u?.url ?? u)); return !ok(c) && c }
// attribute n = v of element e: the refused category it loads from, if any
const el = (e, n, v) => {
  const l = e.localName, r = e.rel
  if (/^(src|srcset|data|poster|imagesrcset)$/i.test(n) || /^(link|script|image|img) (xlink:)?href$/i.test(l + ' ' + n))
    if (e.getAttribute('data-consent') != 'necessary') {
      const h = /preconnect|dns-prefetch/i.test(r) && !/(^|\s)(module)?pre(load|fetch)(\s|$)/i.test(r)
      for (const w of String(v).split(/[\s,]+/)) { const c = w && cat(w, h, l == 'script'); if (!ok(c)) return c }
    }
}
// method m of o: f(this, args) may change the arguments, or name a refused category: then
// the call is held (redone later as made) and returns r()
const hk = (o, m, f, r) => { const n = o?.[m]; n && (o[m] = function (...a) { const c = t(() => f(this, a)); return c ? (hold(c, () => o[m].apply(this, a)), r?.()) : (a = n.apply(this, a), fr(), a) }) }
// setter k of o through f(value, native setter)
const set = (o, k, f) => { const p = O.getOwnPropertyDescriptor(o, k); p?.set && O.defineProperty(o, k, { ...p, set(v) { f.call(this, v, p.set); fr() } }) }
// markup as a string: a tag loading from a refused category is held as the rewriter does
// it (the banner restores it); s: its scripts run (document.write), elsewhere they never do.
// Each tag is parsed alone (an SVG <image> parses as an <img>: its href counts too)
const T = D.createElement('template'), ih = O.getOwnPropertyDescriptor(E, 'innerHTML').set
const html = (v, s) => typeof v != 'string' ? v : v.replace(/<(img|image|script|i?frame|embed|source|audio|video|input|track|link|object)(?=[\s/>])([^>"']|"[^"]*"|'[^']*')*>/gi, m => t(() => {
  if (!HW.test(m) && !(s && SX)) return
  ih.call(T, m)
  const e = T.content.firstChild, n = [], sc = e.localName == 'script'
  let h
  for (const a of e.attributes) { const c = el(e, a.name, a.value); if (c) h = c, n.push(a.name) }
  if (h && (s || !sc)) return m.replace(RegExp(`([\\s"'/])(${n.join('|')}${sc ? '|type' : ''})(?=[\\s/>=])`, 'gi'), '$1data-consentgate-$2').replace(/^<\w+/, `$& data-consent=${h}${sc ? ' type=text/plain' : ''}`)
}) || m)
// elements arriving with URLs that bypassed the setters (clones, parsed or imported markup)
const scan = x => {
  if (x?.querySelectorAll) for (const e of [x, ...x.querySelectorAll('[src],[srcset],[href],[data],[poster]')]) for (const a of [...e.attributes || []]) {
    const c = el(e, a.name, a.value)
    c && (e.removeAttribute(a.name), hold(c, () => e.setAttribute(a.name, a.value)))
  }
}

// guard(w) patches window w: the page's own and every same-origin iframe's (an about:blank
// one has its own fetch, Image, prototypes), which fr reaches after each patched call and
// from a MutationObserver (parsed frames: it runs before the next parser-inserted script)
const G = new WeakSet, fr = () => { for (const f of D.getElementsByTagName('iframe')) t(() => guard(f.contentWindow)) }
const guard = W => {
  if (G.has(W)) return
  G.add(W)
  const pr = n => W[n].prototype, E = pr('Element'), P = pr('Document'), X = pr('XMLHttpRequest')
  hk(E, 'setAttribute', (e, a) => (a[0] == 'srcdoc' && (a[1] = html(a[1], 1)), el(e, ...a)))
  hk(E, 'setAttributeNS', (e, a) => el(e, a[1], a[2]))
  // an attribute node: given to an element, or its value changed while it is set on one
  for (const m of ['setAttributeNode', 'setAttributeNodeNS']) hk(E, m, (e, a) => el(e, a[0].name, a[0].value))
  set(pr('Attr'), 'value', function (v, f) { const c = this.ownerElement && t(() => el(this.ownerElement, this.name, v)); c ? hold(c, () => f.call(this, v)) : f.call(this, v) })
  for (const k of ['src', 'srcset', 'href', 'data', 'poster', 'srcdoc', 'imageSrcset'])
    for (const p of 'Script Image IFrame Frame Embed Source Media Input Track Link Object Video'.split(' '))
      set(pr(`HTML${p}Element`), k, function (v) { this.setAttribute(k.toLowerCase(), v) })
  for (const o of [E, pr('Node'), pr('CharacterData')])
    for (const m of 'appendChild insertBefore replaceChild append prepend before after replaceWith replaceChildren insertAdjacentElement'.split(' '))
      O.hasOwn(o, m) && hk(o, m, (p, a) => { for (const x of a) (p.isConnected || x?.ownerDocument != D) && scan(x) })
  for (const o of [E, pr('ShadowRoot')]) {
    set(o, 'innerHTML', function (v, f) { f.call(this, /^s(cript|tyle)$/.test(this.localName) ? v : html(v)) })
    hk(o, 'setHTMLUnsafe', (_, a) => { a[0] = html(a[0]) })
  }
  set(E, 'outerHTML', function (v, f) { f.call(this, html(v)) })
  hk(P, 'execCommand', (_, a) => { /^inserthtml$/i.test(a[0]) && (a[2] = html(a[2])) })
  hk(E, 'insertAdjacentHTML', (_, a) => { a[1] = html(a[1]) })
  hk(pr('Range'), 'createContextualFragment', (_, a) => { a[0] = html(a[0], 1) })
  for (const m of ['write', 'writeln']) hk(P, m, (_, a) => { a.splice(0, 1e9, html(a.join(''), 1)) })

  // network calls: a held fetch rejects as a network error would, a held beacon is false,
  // an XMLHttpRequest fails as a network error, a WebSocket or EventSource fails to connect
  hk(W, 'fetch', (_, a) => nc(a[0]), () => Promise.reject(new TypeError('Failed to fetch')))
  hk(pr('Navigator'), 'sendBeacon', (_, a) => nc(a[0]), () => !1)
  hk(X, 'open', (x, a) => { const c = nc(a[1]); XM.set(x, c && [c, [...a]]); c && (a[1] = 'data:;base64,%') })
  hk(X, 'send', (x, a) => { const q = XM.get(x); q && hold(q[0], () => { const n = new XMLHttpRequest; n.open(...q[1]); n.withCredentials = x.withCredentials; n.send(a[0]) }) })
  // a held window.open is a blocked pop-up (null); a held new Audio(url) has no source
  hk(W, 'open', (_, a) => nc(a[0]), () => null)
  for (const [k, f] of [['WebSocket', 'ws://localhost:0'], ['EventSource', 'about:blank'], ['Audio']])
    W[k] = new Proxy(W[k], { construct: (C, a, n) => Reflect.construct(C, nc(a[0]) ? [f] : a, n) })
  // document.cookie: a write of a cookie declared for a refused category (deleting passes)
  set(P, 'cookie', function (v, f) {
    const c = t(() => {
      const m = /^\s*([^=;]*?)\s*=\s*([^;]*)/.exec(v)
      if (m[2] && !/max-age=\s*[-0]/i.test(v) && !(Date.parse(/expires=([^;]*)/i.exec(v)?.[1]) < Date.now())) for (const [c, r] of K) if (!ok(c) && r.test(m[1])) return c
    })
    c ? hold(c, () => this.cookie = v) : f.call(this, v)
  })
}

if (!W.consentgateGuard) {
  // everything granted: nothing to hold until a withdrawal, which reloads the page
  on[4] || t(() => (guard(W), new MutationObserver(fr).observe(D, { childList: !0, subtree: !0 })))
  // the banner's call: the visitor's categories (d: a choice was made); held items of granted
  // categories are redone, in order; storage keys of withdrawn categories are removed
  W.consentgateGuard = (g, d) => {
    for (const [c, p] of Z.s) ok(c) && !g.includes(c) && t(() => { for (const s of [localStorage, sessionStorage]) for (const k of O.keys(s)) rx(p, '.*').test(k) && s.removeItem(k) })
    on = g
    dec ||= d
    for (const q of Q.splice(0)) ok(q[0]) ? t(() => q[1]()?.catch?.(() => {})) : dec || Q.push(q)
  }
}
})
