// consentgate banner. Plain JS, no framework, no build step. The server appends the call:
//   (<config JSON>, <CSS string>);
// Config keys: a api path, p privacy url, v policy version, l lang, d dir, h text hash,
//   t first-layer texts, x URL of the second layer's JSON: {t: texts, c: [[id, name,
//   description, [[cookie, provider, purpose, expiry], ...]], ...]},
//   k {category: [cookie name patterns, * = any]}.
// The tag's attributes (set by consentgate's head snippet in proxy mode):
//   data-state  the visitor's consent JSON or null (absent: ask the API, script-tag mode)
//   data-cm     Consent Mode default already pushed inline
//   data-gpc    the request carried Sec-GPC: 1
//   data-regime opt-out | notice (absent: opt-in); script-tag mode: the API's Consentgate-Regime
((C, S) => {
const W = window, D = document, me = D.currentScript, T = {}
const at = n => me && me.getAttribute(n)
const O = me && me.src ? new URL(me.src).origin : location.origin, API = O + C.a
const dl = (W.dataLayer = W.dataLayer || [])
function gtag() { dl.push(arguments) }
const CM = { preferences: ['functionality_storage', 'personalization_storage'], statistics: ['analytics_storage'], marketing: ['ad_storage', 'ad_user_data', 'ad_personalization'] }
const modes = g => { const o = {}; for (const c in CM) for (const k of CM[c]) o[k] = g.includes(c) ? 'granted' : 'denied'; return o }
const gpc = !!(navigator.globalPrivacyControl || at('data-gpc') != null)
let R = at('data-regime') || 'opt-in'
const ids = ['necessary', 'preferences', 'statistics', 'marketing', 'unclassified']
// other consent managers' names (vanilla-cookieconsent: analytics, ads, functionality, ...)
const alias = c => /^(anal|stat|perf)/.test(c) ? 'statistics' : /^(ad|market|target)/.test(c) ? 'marketing' : /^(func|pref)/.test(c) ? 'preferences' : 'unclassified'
const esc = s => String(s).replace(/[&<>"']/g, c => '&#' + c.charCodeAt(0) + ';')
for (const k in C.t) T[k] = esc(C.t[k])
const fns = [], done = new WeakSet()
let consent = null, host, root, view, fab, back, busy, K

if (!at('data-cm')) gtag('consent', 'default', { ...modes([]), security_storage: 'granted', wait_for_update: 500 })
// before a choice: opt-in gives only necessary; opt-out and notice give all (GPC: no marketing)
const granted = () => (consent ? consent.granted : R == 'opt-in' ? ['necessary'] : all())
const valid = c => c && c.policy_version == C.v && Date.parse(c.expires_at) > Date.now() ? c : null

// ---- activation of blocked elements ----
function cats(el) {
  const v = el.getAttribute('data-consent') ?? el.getAttribute('data-cookieconsent') ?? el.getAttribute('data-category')
  if (v == null || /ignore/i.test(v)) return null
  return v.toLowerCase().split(/[\s,]+/).filter(Boolean).map(c => ids.includes(c) ? c : alias(c))
}
// data-consentgate-X (rewriter) and data-cookieblock-X (Cookiebot) hold URLs and the original type
function restore(el) {
  for (const a of [...el.attributes]) {
    const m = /^data-(?:consentgate|cookieblock)-(.+)/.exec(a.name)
    if (m) { el.setAttribute(m[1], a.value); el.removeAttribute(a.name) }
  }
}
const moved = el => [...el.attributes].some(a => /^data-(consentgate|cookieblock)-/.test(a.name))
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
    if (script ? el.type != 'text/plain' : !moved(el)) continue
    done.add(el)
    if (script) await run(el)
    else { restore(el); if (el.localName == 'source') el.parentNode.load?.() }
  }
}

// ---- cookies of refused categories, on this host and its parent domains ----
function wipe(refused) {
  const re = refused.flatMap(c => C.k[c] || []).map(p => new RegExp('^' + p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$'))
  const h = location.hostname.split('.'), doms = ['']
  if (!/^[\d.]+$|:/.test(location.hostname)) for (let i = 0; i < h.length - 1; i++) doms.push(';domain=.' + h.slice(i).join('.'))
  for (const part of D.cookie.split(';')) {
    const n = part.split('=')[0].trim()
    if (n && re.some(r => r.test(n))) for (const d of doms) D.cookie = n + '=;max-age=0;path=/' + d
  }
}

// ---- the decision ----
function emit() {
  gtag('consent', 'update', modes(consent.granted))
  dl.push({ event: 'consentgate_change', consentgate: { granted: consent.granted, consent_id: consent.consent_id } })
  D.dispatchEvent(new CustomEvent('consentgate:change', { detail: consent }))
  for (const f of fns) f(consent)
}
async function decide(g, method) {
  if (busy) return
  busy = 1
  const before = granted(), gone = before.filter(c => !g.includes(c))
  const withdraw = consent && g.length == 1 && gone.length
  try {
    const r = await fetch(API, withdraw ? { method: 'DELETE', credentials: 'include' } : { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ granted: g, method, page_url: location.origin + location.pathname, language: C.l, banner_hash: C.h }) })
    if (!r.ok) throw r
    consent = r.status == 204 ? { ...consent, granted: ['necessary'] } : await r.json()
  } catch (e) {
    return fail()
  }
  close()
  emit()
  wipe(ids.filter(c => !consent.granted.includes(c)))
  if (gone.length) location.reload()
  else { busy = 0; activate() }
}
function fail() {
  busy = 0
  const m = view && view.querySelector('.e')
  if (m) { m.innerHTML = T.error; m.hidden = false }
}
const all = () => ids.filter(c => !(gpc && c == 'marketing'))
const acts = {
  accept: () => decide(all(), gpc ? 'custom' : 'accept_all'),
  reject: () => decide(['necessary'], 'reject_all'),
  close: () => decide(['necessary'], 'close'),
  save: () => decide(['necessary', ...[...view.querySelectorAll('input:checked:enabled')].map(i => i.name)], 'custom'),
  custom: () => show(2),
  hide: () => close(),
  optout: () => decide(ids.filter(c => c != 'marketing'), 'opt_out'),
  ack: () => decide(all(), 'acknowledge'),
  info: () => show(1),
}

// ---- views ----
function mount() {
  if (host) return
  host = D.createElement('div')
  host.id = 'consentgate'
  host.lang = C.l
  host.dir = C.d
  root = host.attachShadow({ mode: 'open' })
  if (root.adoptedStyleSheets) { const s = new CSSStyleSheet(); s.replaceSync(S); root.adoptedStyleSheets = [s] }
  else { const s = D.createElement('style'); s.nonce = me && me.nonce; s.textContent = S; root.append(s) }
  root.addEventListener('click', e => { const b = e.target.closest('[data-a]'); if (b) acts[b.dataset.a]() })
  root.addEventListener('keydown', e => {
    if (e.key == 'Escape' && view) acts[view.dataset.x]()
    if (e.key == 'Tab' && view && view.dataset.m) {
      const f = view.querySelectorAll('a,button,input:enabled,summary'), a = f[0], z = f[f.length - 1], cur = root.activeElement
      if (e.shiftKey ? cur == a || cur == view : cur == z) { e.preventDefault(); (e.shiftKey ? z : a).focus() }
    }
  })
  D.body.append(host)
}
const btns = x => `<div class="r"><button data-a="accept">${T.accept}</button><button data-a="reject">${T.reject}</button><button data-a="${x}">${T[x]}</button></div><p class="e" role="alert" hidden></p>`
const link = `<a href="${esc(C.p)}">${T.privacy}</a>`
const note = gpc ? `<p class="g">${T.gpc}</p>` : ''
function layer1() {
  if (R != 'opt-in') return notice()
  return `<div class="b" role="dialog" aria-labelledby="t" aria-describedby="x" tabindex="-1" data-x="close"><h2 id="t">${T.title}</h2><p id="x">${T.text} ${link}</p>${note}${btns('custom')}<button class="x" data-a="close" aria-label="${T.close}">×</button></div>`
}
// opt-out: a notice with "Do Not Sell or Share"; notice: information and acknowledge
function notice() {
  const o = R == 'opt-out', b = o ? `<button data-a="optout">${T.dnss}</button><button data-a="custom">${T.custom}</button>` : ''
  return `<div class="b" role="dialog" aria-labelledby="t" aria-describedby="x" tabindex="-1" data-x="ack" data-r="${R}"><h2 id="t">${T.notice_title}</h2><p id="x">${o ? T.optout_text : T.notice_text} ${link}</p>${o && gpc ? `<p class="g">${T.gpc_honored}</p>` : ''}<div class="r">${b}<button data-a="ack">${T.ok}</button></div><p class="e" role="alert" hidden></p></div>`
}
function layer2() {
  const g = consent ? consent.granted : ['necessary']
  const items = K.map(([id, name, desc, ck], i) => {
    const n = id == 'necessary'
    const list = ck.length ? `<details><summary>${T.cookies} (${ck.length})</summary><ul>${ck.map(k => `<li><b>${esc(k[0])}</b> · ${T.provider}: ${esc(k[1])} · ${T.expiry}: ${esc(k[3])}<br>${esc(k[2])}</li>`).join('')}</ul></details>` : ''
    return `<li><div class="h"><label for="c${i}">${esc(name)}</label>${n ? `<span>${T.on}</span>` : ''}<input type="checkbox" role="switch" id="c${i}" name="${id}" aria-describedby="d${i}"${n || g.includes(id) ? ' checked' : ''}${n ? ' disabled' : ''}></div><p id="d${i}">${esc(desc)}</p>${list}</li>`
  }).join('')
  const info = consent ? `<p class="i">${T.id}: <code>${esc(consent.consent_id)}</code><br>${T.date}: ${esc(new Date(consent.given_at).toLocaleString(C.l))}<br><a href="${API}/receipt" download>${T.receipt}</a></p>` : ''
  const x = consent ? 'hide' : 'close'
  return `<div class="b s" role="dialog" aria-modal="true" aria-labelledby="t" tabindex="-1" data-m="1" data-x="${x}"><h2 id="t">${T.settings}</h2><p>${T.intro} ${link}</p>${note}<ul class="c">${items}</ul>${info}${btns('save')}<button class="x" data-a="${x}" aria-label="${T[x]}">×</button></div>`
}
// the second layer's texts and categories load when it is first opened (C.x, cacheable)
async function show(n) {
  if (n == 2 && !K) {
    try {
      const x = await (await fetch(O + C.x)).json()
      for (const k in x.t) T[k] = esc(x.t[k])
      K = x.c
    } catch (e) {
      if (!view) show(1)
      return fail()
    }
  }
  mount()
  if (!view) back = D.activeElement
  busy = 0
  const w = D.createElement('div')
  w.innerHTML = n == 2 ? layer2() : layer1()
  const el = w.firstChild
  view ? view.replaceWith(el) : root.append(el)
  view = el
  if (fab) fab.hidden = true
  view.focus()
}
function close() {
  if (!view) return
  view.remove()
  view = null
  showFab()
  const t = back && back.isConnected && back != D.body && back != host ? back : fab
  t.focus()
}
function showFab() {
  mount()
  if (!fab) {
    fab = D.createElement('button')
    fab.className = 'f'
    fab.dataset.a = R == 'notice' ? 'info' : 'custom'
    fab.setAttribute('aria-label', C.t.reopen)
    fab.title = C.t.reopen
    fab.innerHTML = '<svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true"><path fill="currentColor" d="M12 2a10 10 0 1 0 10 10 4 4 0 0 1-5-5 4 4 0 0 1-5-5zM8 11a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3zm6 4a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3zM9 6a1 1 0 1 1 0 2 1 1 0 0 1 0-2z"/></svg>'
    root.append(fab)
  }
  fab.hidden = false
}

// ---- public API ----
W.consentgate = {
  open: () => show(2),
  get consent() { return consent },
  onChange: f => { fns.push(f) },
}
D.addEventListener('click', e => {
  const t = e.target.closest && e.target.closest('[data-consentgate-open]')
  if (t) { e.preventDefault(); show(2) }
})

const st = at('data-state')
const ready = st != null ? Promise.resolve(JSON.parse(st)) : fetch(API, { credentials: 'include' }).then(r => { R = r.headers.get('consentgate-regime') || R; return r.json().then(j => (r.ok ? j : null)) }).catch(() => null)
ready.then(c => {
  consent = valid(c)
  const go = () => {
    if (consent) {
      if (!at('data-cm')) gtag('consent', 'update', modes(consent.granted))
      showFab()
      activate()
    } else {
      show(1)
      if (R != 'opt-in') { if (!at('data-cm')) gtag('consent', 'update', modes(granted())); activate() }
    }
  }
  D.readyState == 'loading' ? D.addEventListener('DOMContentLoaded', go) : go()
})
})
