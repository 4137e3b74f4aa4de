// consentgate banner. Plain JS, no framework, no build step. The server appends the call:
//   (<config JSON>, <CSS string>, <theme CSS string>);
// Config keys: a api path, p privacy url, v policy version, l lang, d dir, h text hash,
//   t first-layer texts, x URL of the second layer's JSON, fetched when the settings open
//   or a decision has cookies to check: {t: texts, c: [[id, name, description,
//   [[cookie, provider, purpose, expiry], ...]], ...], k: {category: regex source of
//   its cookie names}}; m URL of banner-more.js, the code a first-time visitor does not
//   need to decide (the second layer's markup, the floating controls, blocked embeds'
//   placeholders, with their CSS and texts: static/banner/more.js), loaded on demand.
// The tag's attributes (set by consentgate's head snippet in proxy mode):
//   data-state  the visitor's consent JSON or null (absent: ask the API, script-tag mode)
//   data-cm     Consent Mode default already pushed inline
//   data-gpc    the request carried Sec-GPC: 1
//   data-regime opt-out | notice (absent: opt-in); script-tag mode: the API's Consentgate-Regime
// Every string in the config and the second layer's file comes HTML-escaped from the server
// (so the banner carries no escaping code); consent ids are base-62 digits.
// Short names: W window, D document, T texts, R regime, K categories and P cookie patterns
// (both from the second layer's file), L that file's promise, X banner-more.js's functions
// once loaded (M its promise), S + Q + Y the CSS (first layer, banner-more.js's, theme).
((C, S, Y) => {
const W = window, D = document, me = D.currentScript, T = {}
const at = n => me?.getAttribute(n)
const O = me?.src ? new URL(me.src).origin : location.origin, API = O + C.a
const dl = (W.dataLayer = W.dataLayer || [])
function gtag() { dl.push(arguments) }
const CM = { preferences: ['functionality_storage', 'personalization_storage'], statistics: ['analytics_storage'], marketing: ['ad_storage', 'ad_user_data', 'ad_personalization'] }
const modes = g => { const o = {}; for (const c in CM) for (const k of CM[c]) o[k] = g.includes(c) ? 'granted' : 'denied'; return o }
// ---- consent signals from the categories: Google Consent Mode v2, Microsoft UET consent mode
// (ad_storage) and Microsoft Clarity's consent API v2 (queued as Clarity's own snippet does).
// d: the default (else an update); cm: the head snippet already told Google and UET ----
W.clarity ||= function () { (W.clarity.q ||= []).push(arguments) }
function tell(g, d, cm) {
  const m = modes(g), k = d ? 'default' : 'update'
  if (!cm) {
    gtag('consent', k, d ? { ...m, security_storage: 'granted', wait_for_update: 500 } : m)
    ;(W.uetq ||= []).push('consent', k, { ad_storage: m.ad_storage })
  }
  if (!d) W.clarity('consentv2', { ad_Storage: m.ad_storage, analytics_Storage: m.analytics_storage })
}
const gpc = !!(navigator.globalPrivacyControl || at('data-gpc') != null)
let R = at('data-regime') || 'opt-in'
const ids = ['necessary', 'preferences', 'statistics', 'marketing', 'unclassified']
// other consent managers' names (vanilla-cookieconsent: analytics, ads, functionality, ...)
const alias = c => /^(anal|stat|perf)/.test(c) ? 'statistics' : /^(ad|market|target)/.test(c) ? 'marketing' : /^(func|pref)/.test(c) ? 'preferences' : 'unclassified'
Object.assign(T, C.t)
// the runtime guard (guard.js, run before any other script) learns the visitor's choice here
const G = W.consentgateGuard || (() => {})
delete W.consentgateGuard
const fns = [], done = new WeakSet()
let consent = null, host, root, view, back, busy, K, P, L, N, X, M, sheet, Q = ''
const styles = []

const cm = at('data-cm')
tell([], 1, cm)
// before a choice: opt-in gives only necessary; opt-out and notice give all (GPC: no marketing)
const granted = () => (consent ? consent.granted : R == 'opt-in' ? ['necessary'] : all())
const valid = c => c && c.policy_version == C.v && Date.parse(c.expires_at) > Date.now() ? c : null
// the second layer's file, once (again after a failure); resolves 1 when loaded, 0 when not
const load = () => L ||= fetch(O + C.x).then(r => r.json()).then(x => { Object.assign(T, x.t); K = x.c; P = x.k; N = x.n; return 1 }, () => L = 0)

// ---- activation of blocked elements ----
function cats(el) {
  const v = el.getAttribute('data-consent') ?? el.getAttribute('data-cookieconsent') ?? el.getAttribute('data-category')
  if (v == null || /ignore/i.test(v)) return null
  return v.toLowerCase().split(/[\s,]+/).filter(Boolean).map(c => ids.includes(c) ? c : alias(c))
}
// data-consentgate-X (rewriter) and data-cookieblock-X (Cookiebot) hold URLs and the original type
const MV = /^data-(?:consentgate|cookieblock)-(.+)/
function restore(el) {
  for (const a of [...el.attributes]) {
    const m = MV.exec(a.name)
    if (m) { el.setAttribute(m[1], a.value); el.removeAttribute(a.name) }
  }
}
function run(old) {
  return new Promise(ok => {
    const s = D.createElement('script')
    for (const a of old.attributes) s.setAttribute(a.name, a.value)
    restore(s)
    if (s.type == 'text/plain') old.dataset.type ? (s.type = old.dataset.type) : s.removeAttribute('type')
    s.nonce = old.nonce
    s.text = old.text
    if (s.src && !old.hasAttribute('async')) { s.async = false; s.onload = s.onerror = ok } else ok()
    old.replaceWith(s)
  })
}
async function activate() {
  const g = granted()
  for (const el of D.querySelectorAll('[data-consent],[data-cookieconsent],[data-category]')) {
    const c = cats(el)
    if (done.has(el) || !c || !c.every(x => x == 'necessary' || g.includes(x))) continue
    const script = el.localName == 'script'
    if (script ? el.type != 'text/plain' : ![...el.attributes].some(a => MV.test(a.name))) continue
    done.add(el)
    if (script) await run(el)
    else { restore(el); if (el.localName == 'source') el.parentNode.load?.(); X?.u(el) }
  }
  hold()
}

// ---- blocked embeds: placeholders (banner-more.js), loaded only when the page has one ----
async function hold() {
  if (D.querySelector('iframe[data-consentgate-src],iframe[data-cookieblock-src]') && await more()) X.h()
}

// ---- the decision ----
function emit() {
  G(consent.granted, 1)
  tell(consent.granted)
  dl.push({ event: 'consentgate_change', consentgate: { granted: consent.granted, consent_id: consent.consent_id } })
  D.dispatchEvent(new CustomEvent('consentgate:change', { detail: consent }))
  for (const f of fns) f(consent)
}
async function decide(g, method) {
  if (busy) return
  busy = 1
  const gone = granted().filter(c => !g.includes(c))
  // the cookie patterns come with the second layer's file, their deletion with banner-more.js:
  // needed when there are cookies
  if (D.cookie && !(await both()) && gone.length) return fail()
  try {
    // everything but necessary refused after a consent: a withdrawal (DELETE), recorded with
    // the same page, language and text hash as a decision; a decision also names (never
    // values) the cookies the page holds, for the owner's discovery page
    const del = consent && !g[1] && gone.length, b = { page_url: location.origin + location.pathname, language: C.l, banner_hash: C.h }
    const r = await fetch(API, { credentials: 'include', method: del ? 'DELETE' : 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(del ? b : { granted: g, method, ...b, cookies: D.cookie.split('; ').map(c => c.split('=')[0]) }) })
    if (!r.ok) throw r
    consent = await r.json()
  } catch {
    return fail()
  }
  close()
  emit()
  X?.w(ids.filter(c => !consent.granted.includes(c)))
  if (gone.length) location.reload()
  else { busy = 0; showFab(); activate() } // showFab: a placeholder's decision has no view to close
}
function fail() {
  busy = 0
  if (!view) show(1)
  const m = view.querySelector('.e')
  m.innerHTML = T.error
  m.hidden = false
}
const all = () => ids.filter(c => !(gpc && c == 'marketing'))
const acts = {
  accept: () => decide(ids, 'accept_all'), // an explicit choice outranks the GPC signal
  reject: () => decide(['necessary'], 'reject_all'),
  close: () => decide(['necessary'], 'close'),
  custom: () => show(2),
  optout: () => decide(ids.filter(c => c != 'marketing'), 'opt_out'),
  ack: () => decide(all(), 'acknowledge'),
  info: () => show(1),
}

// ---- views ----
// a shadow root with the banner's CSS (one constructed sheet shared by every root)
// (banner-more.js's CSS joins it when loaded: before the theme's, which may restyle its buttons)
const css = () => S + Q + Y
function shade(h) {
  const r = h.attachShadow({ mode: 'open' })
  if (r.adoptedStyleSheets) { if (!sheet) (sheet = new CSSStyleSheet()).replaceSync(css()); r.adoptedStyleSheets = [sheet] }
  else { const s = D.createElement('style'); s.nonce = me?.nonce; s.textContent = css(); r.append(s); styles.push(s) }
  return r
}
function mount() {
  if (host) return
  host = D.createElement('div')
  host.id = 'consentgate'
  host.lang = C.l
  host.dir = C.d
  root = shade(host)
  root.addEventListener('click', e => { const b = e.target.closest('[data-a]'); if (b) acts[b.dataset.a]() })
  root.addEventListener('keydown', e => {
    if (!view) return
    if (e.key == 'Escape') acts[view.dataset.x]()
    if (e.key == 'Tab') X?.t(e) // the second layer's focus trap
  })
  ;(D.body || D.documentElement || D).append(host) // a page may remove its body, even its root
}
const link = `<a href="${C.p}">${T.privacy}</a>`
const note = t => gpc ? `<p class="g">${t}</p>` : ''
const btns = x => `<div class="r"><button data-a="accept">${T.accept}</button><button data-a="reject">${T.reject}</button><button data-a="${x}">${T[x]}</button></div>`
// one dialog: the second layer (n == 2) is modal; x is what Escape and the × button do
const dialog = (n, x, title, body, cross) => `<div class="b${n > 1 ? ' s" aria-modal="true' : ''}" role="dialog" aria-labelledby="t" aria-describedby="x" tabindex="-1" data-x="${x}"><h2 id="t">${title}</h2>${body}<p class="e" role="alert" hidden></p>${cross ? `<button class="x" data-a="${x}" aria-label="${T[x]}">×</button>` : ''}</div>`
// opt-in: Accept all / Reject all / Customize; opt-out: a notice with "Do Not Sell or Share";
// notice: information and acknowledge
function layer1() {
  if (R == 'opt-in') return dialog(1, 'close', T.title, `<p id="x">${T.text} ${link}</p>${note(T.gpc)}${btns('custom')}`, 1)
  const o = R == 'opt-out'
  return dialog(1, 'ack', T.notice_title, `<p id="x">${o ? T.optout_text : T.notice_text} ${link}</p>${o ? note(T.gpc_honored) : ''}<div class="r">${o ? `<button data-a="optout">${T.dnss}</button><button data-a="custom">${T.custom}</button>` : ''}<button data-a="ack">${T.ok}</button></div>`)
}
async function show(n) {
  if (n > 1 && !(await both())) return fail()
  mount()
  if (!view) back = D.activeElement
  busy = 0
  const w = D.createElement('div')
  w.innerHTML = n > 1 ? X.l() : layer1()
  const el = w.firstChild
  view ? view.replaceWith(el) : root.append(el)
  view = el
  X?.f(0)
  view.focus()
}
function close() {
  if (!view) return
  view.remove()
  view = null
  const t = back?.isConnected && back != D.body && back != host && back
  if (t) t.focus()
  showFab().then(f => t || f && f.focus())
}
// the floating controls (banner-more.js): settings, and a one-click withdrawal
const showFab = () => more().then(x => x && x.f(1))

// ---- banner-more.js: a script (with the page's nonce) from the banner's origin; it finds B
// on its own element and hands back its functions, CSS and texts. Once (again after a
// failure); resolves X, or 0 when it did not load (what needs it then stays as it is: an
// embed blocked without a placeholder, the settings' error message) ----
const B = {
  m: (x, q, t) => { Object.assign(T, t); Q = q; sheet?.replaceSync(css()); for (const s of styles) s.textContent = css(); X = x },
  c: () => consent, k: () => K, n: () => N, p: () => P, v: () => view, r: () => root, R: () => R,
  C: C, T: T, A: API, a: acts, g: granted, cats: cats, MV: MV, done: done, load: load, decide: decide, close: close, shade: shade, mount: mount, dialog: dialog, link: link, note: note, btns: btns,
}
// the second layer's file and banner-more.js: 1 when both loaded
const both = () => Promise.all([load(), more()]).then(a => !a.includes(0))
const more = () => M ||= new Promise(ok => {
  const s = D.createElement('script')
  s.src = O + C.m
  s.nonce = me?.nonce
  s.cg = B
  s.onload = s.onerror = () => { s.remove(); ok(X || (M = 0)) }
  // (a page may have no <head>, or no document left: one that called document.open late)
  const e = D.documentElement
  e ? e.append(s) : ok(M = 0)
})

// ---- public API ----
W.consentgate = {
  open: () => show(2),
  get consent() { return consent },
  onChange: f => { fns.push(f) },
}
D.addEventListener('click', e => {
  const t = e.target.closest?.('[data-consentgate-open]')
  if (t) { e.preventDefault(); show(2) }
})

const st = at('data-state')
// script-tag mode: ?optional=1 answers 200 null without a consent (no error in the console);
// the server explains in a header when this page cannot keep the consent cookie (another site)
const ready = st != null ? Promise.resolve(JSON.parse(st)) : fetch(API + '?optional=1', { credentials: 'include' }).then(r => {
  const w = r.headers.get('consentgate-warning')
  if (w) console.warn('consentgate: ' + w)
  R = r.headers.get('consentgate-regime') || R
  return r.ok ? r.json() : null
}).catch(() => null)
ready.then(c => {
  consent = valid(c)
  G(granted())
  const go = () => {
    if (consent) {
      tell(consent.granted, 0, cm)
      showFab()
      activate()
    } else {
      show(1)
      if (R != 'opt-in') { tell(granted(), 0, cm); activate() } else hold()
    }
  }
  D.readyState == 'loading' ? D.addEventListener('DOMContentLoaded', go) : go()
})
})
