// consentgate runtime guard: the first script on the page (docs/guard.md). It holds what
// scripts add at run time - elements, network calls, cookies - when it belongs to a category
// the visitor has not granted, and redoes it once, in order, when that category is granted.
// Plain JS, no build step; every byte goes to every visitor, hence the short names. The
// server appends the call: (H, X, C, <granted ids or 0>); the data, compiled from the catalog
// and the site's declarations by consentgate/guard.py as regular expressions:
//   H the words one of which every URL the patterns match holds (none: passed unparsed)
//   X strict mode only (else 0): the hosts scripts may come from besides the page's own
//   C per category, strictest first: [category, host + path + query, host alone (resource
//     hints), cookie names, storage keys]
// The banner gives the visitor's choice to window.consentgateGuard(granted, decided) (and
// deletes that name). Short names: W window, D document, Q the held items [category, what
// redoes it], E Element.prototype, on the granted categories, dec a decision was made.
((H, X, C, I) => {
const W = window, D = document, Q = [], O = Object, E = Element.prototype
let on = I || ['necessary'], dec
const ok = c => !c || on.includes(c), UC = 'unclassified'
// the URL parser drops tabs and line breaks: so does the guard, before it reads a URL
const TN = /[\t\n\r]/g
// a URL or tag holding other than ASCII is parsed whatever its words: the URL parser maps a
// host's fullwidth letters to ASCII and drops its soft hyphens
const NA = /[^\0-~]/
// the guard's own errors never reach the page: t(f) runs f and swallows what it throws
const t = f => { try { return f() } catch {} }
const hold = (c, f) => dec || Q.push([c, f])
// the category of a URL; h: a resource hint (matched by host), s: a script (strict mode)
const cat = (v, h, s) => {
  v = String(v).replace(TN, '')
  if (!H.test(v) && !NA.test(v) && !(s && X)) return
  // (a host's trailing dot dropped, the path's escaped unreserved characters unescaped:
  // the same URL to the server)
  const u = new URL(v, D.baseURI), n = u.hostname.replace(/\.$/, ''), p = u.pathname.replace(/%([\da-f]{2})/gi, (m, x) => /[\w.~-]/.test(x = String.fromCharCode('0x' + x)) ? x : m)
  if (/^(http|ws)s?:$/.test(u.protocol)) {
    for (const [c, r, q] of C) if (h ? q.test(n) : r.test(n + p + u.search)) return c
    if (s && X && n != location.hostname && !X.test(n)) return UC
  }
}
// the refused category a cookie named n is held under when w (a write, not a deletion)
const ck = (n, w) => { if (w) for (const [c, , , r] of C) if (!ok(c) && r.test(n)) return c }
// the refused category URL argument a[i] is held under, or 0: a Request's own URL (read by
// the getter as it was, RU), another object made a string once, here, as the browser would
// make it (its toString could answer otherwise the second time). RU and TT (below) are taken
// on first use: building their interfaces costs a page that never needs them
let RU, TT
// v made a string once, here, as the browser would make it (its toString could answer
// otherwise the second time); a Trusted Types value stays as it is
const ss = v => v && typeof v == 'object' && !(TT ||= ['TrustedScriptURL', 'TrustedHTML'].map(k => W[k]?.prototype.toString)).some(f => t(() => f.call(v)) != null) ? String(v) : v
const so = (a, i, u = a[i]) => u && typeof u == 'object' ? t(() => (RU ||= O.getOwnPropertyDescriptor(Request.prototype, 'url').get).call(u)) ?? (a[i] = String(u)) : u
const nc = (a, i) => { const c = cat(so(a, i)); return !ok(c) && c }
// attribute n = v of element e: the refused category it loads from, if any. A document in
// an opaque origin, which no guard can reach, is unclassified: a data: URL in a frame, an
// object or an embed (but an image other than SVG, or a PDF: they run no script), a srcdoc
// or blob: URL in a frame whose sandbox (its tokens, as the browser splits them) allows
// scripts but not the same origin; and a frame's csp attribute (a policy it imposes on the
// frame's document can refuse the guard's own prefix there)
const el = (e, n, v, s) => {
  // (only these attribute names load or make an opaque document: the rest, most of the
  // calls, returns here; an SVG href in the XLink namespace loads whatever its prefix)
  if (!/^((image)?src(set)?|data|poster|background|([^:]*:)?href|csp|srcdoc|to|values|from|by)$/i.test(n)) return
  const l = e.localName, r = e.rel, x = l + ' ' + n
  v = String(v).replace(TN, '')
  if (e.dataset?.consent == 'necessary') return
  if (/^(i?frame|object|embed) (src|data)$/i.test(x) && /^[\0- ]*data:(?!\s*(image\/(?!svg)|application\/pdf))/i.test(v) || /^iframe csp$/i.test(x) || /^(object data|embed src)$/i.test(x) && /^[\0- ]*blob:/i.test(v)
    || (/^srcdoc$/i.test(n) || /^iframe src$/i.test(x) && /^[\0- ]*blob:/i.test(v)) && (s = e.getAttribute?.('sandbox')?.toLowerCase().split(/[\t\n\f\r ]+/))?.includes('allow-scripts') && !s.includes('allow-same-origin')) return ok(UC) ? 0 : UC
  if (/^(\w+ ((image)?src(set)?|data|poster|background)|(link|script|image|img|feimage|base) ([^:]*:)?href|(set|animate) (to|values|from|by))$/i.test(x)) {
    const h = l == 'base' || /preconnect|dns-prefetch/i.test(r) && !/(^|\s)(module)?pre(load|fetch)/i.test(r)
    for (const w of v.split(/[\s,;]+/)) { const c = w && cat(w, h, l == 'script'); if (!ok(c)) return c }
  }
}
// method m of o: f(this, args) may change the arguments, or name a refused category: then
// the call is held (redone later as made) and returns r(); a call made has the page's frames
// reached (fr: one inserted by it may be loading a src or srcdoc, not yet guarded)
const hk = (o, m, f, r) => { const n = o?.[m]; n && (o[m] = function (...a) { const c = t(() => f(this, a)); return c ? (hold(c, () => o[m].apply(this, a)), r?.()) : (a = n.apply(this, a), fr(), a) }) }
// setter k of o, as hk: f(this, [value]) (s 'get': its getter, f(this, []))
const sp = (o, k, f, s = 'set') => { const p = O.getOwnPropertyDescriptor(o, k); p?.[s] && (hk(p, s, f), O.defineProperty(o, k, p)) }
// a frame's document (srcdoc) starts with fp(): a script that has the parent's guard patch
// the frame's window before the document's own scripts run (the frame shares the page's CSP:
// its nonce), through parent.consentgateFrame, which the page can neither replace nor
// intercept. Where the frame's origin turns out opaque (a sandbox given after the srcdoc, a
// reload after a sandbox changed), the parent cannot be reached: the frame stops its own
// document (its origin is "null", of length 4: the prefix holds no quote, nor a "<" that
// would end FX early; in a window without the guard, a same-origin popup, the frame goes
// on) unless unclassified is granted (UC: opaque documents are held under it). A
// document that already starts with such a script (a held one redone) has it replaced (FX)
const N = D.currentScript?.nonce
const fp = () => `<script nonce=${N}>try{parent.consentgateFrame(window)}catch{${ok(UC) ? '' : 'origin.length==4&&stop()'}}<\/script>`
const FX = /^<script[^>]*>try{parent.consentgateFrame[^<]*<\/script>/
// a frame's document d as the guard lets it load: fp() first (once), its tags held
const sd = d => fp() + html(String(d).replace(FX, ''), 1)
// markup as a string: a tag loading from a refused category is held as the rewriter does
// it (the banner restores it); s: its scripts run (document.write), elsewhere they never do.
// Each tag is parsed alone (an SVG <image> parses as an <img>: its href counts too); a
// srcdoc in it starts with fp() (quoted, by a replace: fp() has no quote; else by sd()).
// The template is made on first use: building its interface costs a page that never needs it
const CE = D.createElement, SA = E.setAttribute, ih = O.getOwnPropertyDescriptor(E, 'innerHTML').set
let T
// Every "<" that starts a tag, read as the browser would read a tag there, is taken: a tag
// that seems to hold others in a quoted value may be the text of a comment, a bogus comment
// or a raw text element, its quotes no quotes, and the tags in it real ones. From the end
// of the string: what a tag becomes is what the tags before it read. A quote opens a quoted
// value only after "=" (elsewhere, a stray one, it is a character of a name or a value)
const TR = /<\w+([^>"'=]|=\s*"[^"]*"|=\s*'[^']*'|[='"])*>/y
const html = (v, s) => {
  v = ss(v)
  // (a string none of whose tags could load from a tracker, nor be a frame, an object or an
  // embed, is passed whole: the check of each tag below would pass each)
  if (!v?.replace || !H.test(v) && !NA.test(v) && !(s && X) && !/<(i?frame|object|embed)[\s/]/i.test(v)) return v
  for (let i = v.lastIndexOf('<'), m, r; i >= 0; i = i ? v.lastIndexOf('<', i - 1) : -1)
    if (TR.lastIndex = i, m = TR.exec(v)) (r = tg(m[0], s)) != m[0] && (v = v.slice(0, i) + r + v.slice(i + m[0].length))
  // (an import map written where scripts run)
  return s ? v.replace(/(<script[^>]*importmap[^>]*>)([^]*?)(?=<\/script)/gi, (_, a, b) => a + im(b)) : v
}
const tg = (m, s) => t(() => {
  m = m.replace(/\ssrcdoc\s*=\s*["']/i, '$&' + fp())
  // a frame's src: a javascript: URL is wrapped as at() does it (set with Element's own
  // setAttribute, taken before the guard hooks it)
  const p = () => (ih.call(T ||= CE.call(D, 'template'), m), T.content.firstChild)
  const f = /^<i?frame[\s/]/i.test(m) && p(), v = f && f.getAttribute('src'), a = [v]
  v && (at(f, 'src', a, 0), a[0] != v) && (SA.call(f, 'src', a[0]), m = f.outerHTML.replace(/<\/iframe>$/, ''))
  // a srcdoc the quoted match missed (unquoted, after a slash) gets the prefix too
  const w = f && f.getAttribute('srcdoc')
  w && !FX.test(w) && (SA.call(f, 'srcdoc', sd(w)), m = f.outerHTML.replace(/<\/iframe>$/, ''))
  if (!H.test(m) && !NA.test(m) && !(s && X) && !/^<(i?frame|object|embed)[\s/]/i.test(m)) return m
  const e = p(), n = [], sc = e.localName == 'script'
  let h
  for (const a of e.attributes) { const c = el(e, a.name, a.value); if (c) h = c, n.push(a.name) }
  if (h && (s || !sc)) return m.replace(RegExp(`([\\s"'/])(${n.join('|')}${sc ? '|type' : ''})(?=[\\s/>=])`, 'gi'), '$1data-consentgate-$2').replace(/^<\w+/, `$& data-consent=${h}${sc ? ' type=text/plain' : ''}`)
}) || m
// attribute n of e set to a[i] (or its property), made a string once (Trusted Types values
// stay as they are): markup in srcdoc, URLs elsewhere. A frame's javascript: URL (the URL
// parser drops tabs and line breaks: so is it here) becomes
//   javascript:var consentgateJs=(<its code>);parent.consentgateFrame(consentgateJs)
// which still runs in the frame, without eval (a CSP may forbid it): the value of its
// expression, a string, is the new document, and fw has it start with fp(). The last statement,
// whose value the browser takes, is always that call: code that is not one expression (or
// breaks out of the parentheses to end the script otherwise) is a syntax error, and the frame
// stays empty; the guard locks a frame's parent (it cannot be replaced nor shadowed)
const at = (e, n, a, i, u = String(a[i] = ss(a[i])).replace(TN, '')) => (/^srcdoc$/i.test(n) ? a[i] = sd(a[i])
  : /^src$/i.test(n) && /^i?frame$/.test(e.localName) && JU.test(u) && (a[i] = 'javascript:' + encodeURIComponent('var consentgateJs=(\n') + u.replace(JU, '') + encodeURIComponent('\n);parent.consentgateFrame(consentgateJs)')), el(e, n, a[i]))
// an import map's text: each JSON string that is a refused category's URL becomes
// about:blank/ (not redone: an import map cannot be taken back)
const im = v => v.replace(/"([^"\\]|\\.)*"/g, m => ok(t(() => cat(JSON.parse(m)))) ? m : '"about:blank/"')
// elements arriving with URLs that bypassed the setters (clones, parsed or imported markup);
// an import map a script inserts
const scan = x => {
  if (x?.querySelectorAll) for (const e of [x, ...x.querySelectorAll('[src],[srcset],[imagesrcset],[*|href],[data],[poster],[srcdoc],[csp],[background],[to],[values],[from],[by],script[type]')]) {
    e.localName == 'script' && /^importmap$/i.test(e.type) && (e.text = im(e.text))
    for (const a of [...e.attributes || []]) {
      const c = el(e, a.name, a.value)
      c ? (e.removeAttribute(a.name), hold(c, () => e.setAttributeNS(a.namespaceURI, a.name, a.value)))
        // a srcdoc that passed no setter (a DOMParser document, imported markup) gets the prefix
        : /^srcdoc$/i.test(a.name) && a.value && !FX.test(a.value) && SA.call(e, 'srcdoc', sd(a.value))
    }
  }
}

// guard(w) patches window w: the page's own and every same-origin frame's (an about:blank
// one has its own fetch, Image, prototypes), reached by the load event an about:blank frame
// fires as it is inserted (captured on the document: it does not bubble), by fp() in a srcdoc
// document, and by a frame element's contentWindow / contentDocument (a frame in a shadow
// root, or whose src or srcdoc is still loading: its initial about:blank window is the realm
// a same-origin document it loads keeps)
const G = new WeakSet, CD = ['IFrame', 'Object'].map(k => O.getOwnPropertyDescriptor(W[`HTML${k}Element`].prototype, 'contentDocument').get)
// an iframe's or object's window f, when same-origin
const fg = f => { const x = CD[+(f.localName == 'object')].call(f); x && guard(x.defaultView) }
// fr: every frame of the page's window (window[i], by the original length getter: those in
// shadow roots too, and no DOM traversal after each call); a cross-origin one, whose Object
// cannot be read, is remembered and skipped
const XO = new WeakSet, LN = O.getOwnPropertyDescriptor(W, 'length').get
const fr = () => { for (let i = 0, w; i < LN.call(W); i++) (w = W[i]) && !XO.has(w) && (t(() => (guard(w), 1)) || XO.add(w)) }
// consentgateFrame(x), on each guarded window: x a frame's window (fp()), or the document a
// frame's javascript: URL returns (see at): it starts with fp(), its tags held as in srcdoc
const JU = /^[\0- ]*javascript:/i
const fw = x => typeof x == 'string' ? sd(x) : x?.Object ? guard(x) : x
// (once per realm: a frame's WindowProxy stays when it is navigated, its realm does not)
const guard = W => {
  if (G.has(W.Object)) return
  G.add(W.Object)
  t(() => O.defineProperty(W, 'consentgateFrame', { value: fw }))
  W != window && t(() => O.defineProperty(W, 'parent', { get: O.getOwnPropertyDescriptor(W, 'parent').get, set() {}, configurable: !1 }))
  W.document.addEventListener('load', e => { const w = e.target.contentWindow; w && t(() => guard(w)) }, !0)
  // import() and static imports (syntax: nothing to wrap): an import map sends the refused
  // categories' hosts (their hint hosts, www. on each, each with a trailing dot too) to about:blank/, which is no base
  // for the rest of a URL: the import fails to resolve as a null entry would, without the
  // console warning Chromium prints for each null. A category granted later stays blocked
  // for imports until the next page (an import map cannot be taken back). An https page
  // has no http entries: the browser refuses a module over http there itself (mixed
  // content). Its element goes once read. The page's window only: registering an import
  // map costs Chromium about 1 ms, and a same-origin frame's imports are the page's own code
  W == window && t(() => {
    const s = W.document.createElement('script'), p = /^http:/.test(D.URL) ? ['https://', 'http://'] : ['https://']
    let m = ''
    for (const [c, , q] of C) if (!ok(c)) m += q.source.slice(9, -2).replace(/\\/g, '') + '|'
    // (each host and its www., by one native replace; the last entry is a bare name)
    s.type = 'importmap', s.nonce = N, s.textContent = `{"imports":{${m.replace(/([^|]+)\|/g, p.flatMap(x => [x, x + 'www.']).flatMap(x => [`"${x}$1/":"about:blank/",`, `"${x}$1./":"about:blank/",`]).join('')).replace(/\|/g, '')}"consentgate:":"about:blank/"}}`
    W.document.head.append(s), s.remove()
  })
  const pr = n => W[n].prototype, E = pr('Element'), P = pr('Document'), XP = pr('XMLHttpRequest')
  for (const p of ['IFrame', 'Object']) for (const k of ['contentWindow', 'contentDocument']) sp(pr(`HTML${p}Element`), k, fg, 'get')
  // markup in argument i (s: its scripts will run)
  const hm = (i, s) => (_, a) => { a[i] = html(a[i], s) }, h0 = hm(0)
  hk(E, 'setAttribute', (e, a) => at(e, a[0] = String(a[0]), a, 1))
  hk(E, 'setAttributeNS', (e, a) => at(e, a[1] = String(a[1]), a, 2))
  // an attribute node given to element e (directly, or through the map its attributes are:
  // e is the owner of an attribute already in it; an empty map's is taken for an <iframe> for
  // a src, else an <img>, which hold every URL attribute), or its value changed while it is
  // set on one (Attr's value, Node's nodeValue and textContent: null there is '')
  const an = (e, a) => { const v = [a.value], c = at(e, a.name, v, 0); v[0] != a.value && (a.value = v[0]); return c }
  for (const m of ['setAttributeNode', 'setAttributeNodeNS']) hk(E, m, (e, [a]) => an(e, a))
  for (const m of ['setNamedItem', 'setNamedItemNS']) hk(pr('NamedNodeMap'), m, (m, [a]) => an(m[0]?.ownerElement || { localName: /^src$/i.test(a.name) ? 'iframe' : 'img' }, a))
  for (const [o, k] of [[pr('Attr'), 'value'], [pr('Node'), 'nodeValue'], [pr('Node'), 'textContent']])
    sp(o, k, (a, v) => a.ownerElement && (k != 'value' && (v[0] ??= ''), at(a.ownerElement, a.name, v, 0)))
  for (const k of 'src srcset href data poster srcdoc imageSrcset csp background'.split(' '))
    for (const p of 'Script Image IFrame Frame Embed Source Media Input Track Link Object Video Base Body'.split(' '))
      sp(pr(`HTML${p}Element`), k, (e, a) => at(e, k, a, 0))
  for (const o of [E, pr('Node'), pr('CharacterData'), pr('DocumentFragment'), pr('Document'), pr('DocumentType')])
    for (const m of 'appendChild insertBefore replaceChild append prepend before after replaceWith replaceChildren insertAdjacentElement'.split(' '))
      O.hasOwn(o, m) && hk(o, m, (p, a) => { for (const x of a) (p.isConnected || x?.ownerDocument != D) && scan(x) })
  for (const m of ['insertNode', 'surroundContents']) hk(pr('Range'), m, (_, a) => scan(a[0]))
  // a table's caption and sections, a select's options: inserted as appendChild inserts
  for (const k of ['caption', 'tHead', 'tFoot']) sp(pr('HTMLTableElement'), k, (_, a) => scan(a[0]))
  sp(P, 'body', (_, a) => scan(a[0]))
  for (const o of ['HTMLSelectElement', 'HTMLOptionsCollection']) hk(pr(o), 'add', (_, a) => scan(a[0]))
  // an element made in the page's document with its URLs already set starts loading (an
  // image does as it is made): what importNode, adoptNode and an XSLT fragment return is
  // checked before the page has it
  for (const [o, m] of [[P, 'importNode'], [P, 'adoptNode'], [W.XSLTProcessor?.prototype, 'transformToFragment']]) {
    const n = o?.[m]
    n && (o[m] = function (...a) { const r = n.apply(this, a); t(() => scan(r)); return r })
  }
  for (const o of [E, pr('ShadowRoot')]) {
    sp(o, 'innerHTML', (e, a) => { /^s(cript|tyle)$/.test(e.localName) && /xhtml/.test(e.namespaceURI) || h0(e, a) })
    hk(o, 'setHTMLUnsafe', h0)
  }
  sp(E, 'outerHTML', h0)
  hk(W.Document, 'parseHTMLUnsafe', h0)
  hk(E, 'insertAdjacentHTML', hm(1))
  hk(P, 'execCommand', (_, a) => /^inserthtml$/i.test(a[0]) ? hm(2)(_, a) : /^insertimage$/i.test(a[0]) && nc(a, 2))
  hk(pr('Range'), 'createContextualFragment', hm(0, 1))
  for (const m of ['write', 'writeln']) hk(P, m, (_, a) => { a[0] = html(a.splice(0).join(''), 1) })

  // network calls: a held fetch rejects as a network error would, a held beacon is false,
  // an XMLHttpRequest fails as a network error (its [category, open's arguments] ride on it
  // as $cg until send), a WebSocket or EventSource fails to connect, a new Audio(url) to
  // load; a held window.open is a blocked pop-up (null); a javascript: URL it opens in one
  // of the window's frames is wrapped as a frame's src is
  const n0 = (_, a) => nc(a, 0)
  const rj = async () => { throw TypeError('Failed to fetch') }
  hk(W, 'fetch', n0, rj)
  // what a Cache fetches to store (add, addAll: each URL), a worklet's module: rejected so
  hk(W.Cache?.prototype, 'add', n0, rj)
  hk(W.Cache?.prototype, 'addAll', (_, a) => { const l = a[0] = [...a[0]]; for (const i in l) { const c = nc(l, i); if (c) return c } }, rj)
  hk(W.Worklet?.prototype, 'addModule', n0, rj)
  // fetchLater (a deferred beacon): held, its result says it was not sent
  hk(W, 'fetchLater', n0, () => O.setPrototypeOf({ activated: !1 }, W.FetchLaterResult.prototype))
  hk(pr('Navigator'), 'sendBeacon', n0, () => !1)
  const wo = (_, a) => (JU.test(so(a, 0)) && W[a[1]]?.parent == W && at({ localName: 'iframe' }, 'src', a, 0), nc(a, 0))
  hk(W, 'open', wo, () => null)
  // document.open(url, name, features) is window.open
  hk(P, 'open', (_, a) => a.length > 2 && wo(_, a), () => null)
  hk(XP, 'open', (x, a) => { const c = nc(a, 1); x.$cg = c && [c, [...a]]; c && (a[1] = 'data:;base64,%') })
  hk(XP, 'send', (x, a) => { const q = x.$cg; q && hold(q[0], () => { const n = new XMLHttpRequest; n.open(...q[1]); n.withCredentials = x.withCredentials; n.send(a[0]) }) })
  // (the prototype's constructor is the wrapped one too)
  for (const k of ['WebSocket', 'EventSource', 'Audio', 'WebSocketStream'])
    W[k] && (W[k] = W[k].prototype.constructor = new Proxy(W[k], { construct: (K, a, n) => Reflect.construct(K, t(() => nc(a, 0)) ? ['ws://localhost:0'] : a, n) }))
  // a write of a cookie declared for a refused category (deleting passes): document.cookie,
  // and cookieStore.set (name, value) or ({name, value, expires}), held as resolved. Each
  // value is read once, here (a string made once, the options copied: the browser gets what
  // was checked); a cookieStore name is trimmed, as the browser trims it
  sp(P, 'cookie', (_, a) => {
    const v = a[0] = String(a[0]), m = /^\s*([^=;]*?)\s*=\s*([^;]*)/.exec(v)
    return ck(m[1], m[2] && !/max-age=\s*[-0]/i.test(v) && !(new Date(/expires=([^;]*)/i.exec(v)?.[1]) < new Date))
  })
  hk(W.CookieStore?.prototype, 'set', (_, a) => {
    const [d, v] = a, o = a[0] = d && typeof d == 'object' ? { ...d } : { name: d, value: v }
    a.length = 1
    for (const k of ['name', 'value']) o[k] != null && (o[k] = String(o[k]))
    o.expires != null && (o.expires = +o.expires)
    return ck(o.name?.trim(), o.value !== '' && !(o.expires < Date.now() && o.expires != null))
  }, async () => {})
}

if (!W.consentgateGuard) {
  // everything granted: nothing to hold until a withdrawal, which reloads the page
  on[4] || t(() => guard(W))
  // the banner's call: the visitor's categories (d: a choice was made); held items of granted
  // categories are redone, in order; storage keys of withdrawn categories are removed
  W.consentgateGuard = (g, d) => {
    for (const [c, , , , r] of C) ok(c) && !g.includes(c) && t(() => { for (const s of [localStorage, sessionStorage]) for (const k of O.keys(s)) r.test(k) && s.removeItem(k) })
    on = g
    dec ||= d
    for (const q of Q.splice(0)) ok(q[0]) ? t(() => q[1]()?.catch?.(() => {})) : dec || Q.push(q)
  }
}
})
