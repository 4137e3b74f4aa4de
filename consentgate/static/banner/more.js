// consentgate banner, the part a first-time visitor does not need to see the first layer and
// decide: the second layer's markup, the floating controls and blocked embeds' placeholders.
// banner.js loads it (a script with the page's nonce, from its own origin) when the settings
// open, after a decision or for a returning visitor (the controls), or when the page has a
// blocked embed. The server appends the call: (<texts>, <CSS string>) with this file's texts
// (the controls'; the second layer's and the placeholders' come with banner.json) and CSS.
// B, on this script's element (set by banner.js): its state (functions: c consent, k categories,
// n service names, p cookie patterns, v open view, r shadow root, R regime) and helpers; without B (the file
// loaded by anything but the banner) it does nothing.
((t, s) => {
const B = document.currentScript?.cg
if (!B) return
const D = document, T = B.T, C = B.C, held = new Map()
let fab

// ---- blocked embeds: a placeholder in the iframe's box says, in the visitor's language, what
// it is and which category it needs; its button grants that category (a decision like any
// other). Texts, category and service names come with the second layer's file. ----
async function hold() {
  const g = B.g(), need = el => B.cats(el)?.filter(c => !g.includes(c))
  const els = [...D.querySelectorAll('iframe')].filter(el => !held.has(el) && !B.done.has(el) && el.offsetWidth && need(el)?.[0] && [...el.attributes].some(a => B.MV.test(a.name)))
  if (!els[0] || !(await B.load())) return
  for (const el of els) {
    if (held.has(el)) continue
    const a = D.createElement('a'), h = D.createElement('div'), p = D.createElement('div'), w = el.offsetWidth, n = need(el)
    a.href = el.getAttribute('data-consentgate-src') || el.getAttribute('data-cookieblock-src')
    const u = '.' + a.hostname + a.pathname, what = B.n().find(s => u.includes('.' + s[0]))?.[1] || a.hostname
    const c = n.map(x => B.k().find(k => k[0] == x)[1]).join(', ')
    h.className = 'consentgate-embed'
    h.lang = C.l
    h.dir = C.d
    h.style.width = w + 'px'
    h.style.aspectRatio = w + '/' + el.offsetHeight
    p.className = 'p'
    p.innerHTML = `<p>${T.embed.replace('%s', what).replace('%c', c)}</p><button>${T.load.replace('%c', c)}</button>`
    p.lastChild.onclick = () => B.decide([...new Set([...B.g(), ...n])], 'custom')
    B.shade(h).append(p)
    el.before(h)
    el.hidden = true
    held.set(el, h)
  }
}
function unhold(el) {
  const h = held.get(el)
  if (h) { h.remove(); el.hidden = false; held.delete(el) }
}

// ---- the second layer (its data: banner.json, loaded before this is called) ----
function layer2() {
  const consent = B.c(), g = consent ? consent.granted : ['necessary']
  const items = B.k().map(([id, name, desc, ck], i) => {
    const n = id == 'necessary'
    const list = ck.length ? `<details><summary>${T.cookies} (${ck.length})</summary><ul>${ck.map(k => `<li><b>${k[0]}</b> · ${T.provider}: ${k[1]} · ${T.expiry}: ${k[3]}<br>${k[2]}</li>`).join('')}</ul></details>` : ''
    return `<li><div class="h"><label for="c${i}">${name}</label>${n ? `<span>${T.on}</span>` : ''}<input type="checkbox" role="switch" id="c${i}" name="${id}" aria-describedby="d${i}"${n || g.includes(id) ? ' checked' : ''}${n ? ' disabled' : ''}></div><p id="d${i}">${desc}</p>${list}</li>`
  }).join('')
  const info = consent ? `<p class="i">${T.id}: <code>${consent.consent_id}</code><br>${T.date}: ${new Date(consent.given_at).toLocaleString(C.l)}<br><a href="${B.A}/receipt" download>${T.receipt}</a></p>` : ''
  return B.dialog(2, consent ? 'hide' : 'close', T.settings, `<p id="x">${T.intro} ${B.link}</p>${B.note(T.gpc)}<ul class="c">${items}</ul>${info}${B.btns('save')}`, 1)
}

// ---- cookies of refused categories, on this host and its parent domains ----
function wipe(refused) {
  const P = B.p()
  if (!P) return // not loaded: there were no cookies to check
  const re = RegExp('^(' + refused.map(c => P[c]).filter(Boolean).join('|') + ')$'), doms = ['']
  if (!/^[\d.]+$|:/.test(location.hostname)) for (let d = location.hostname; d.includes('.'); d = d.slice(d.indexOf('.') + 1)) doms.push(';domain=.' + d)
  for (const part of D.cookie.split(';')) {
    const n = part.split('=')[0].trim()
    if (n && re.test(n)) for (const d of doms) D.cookie = n + '=;max-age=0;path=/' + d
  }
}

// ---- the second layer's focus trap (Tab stays in the modal dialog) and its actions ----
function trap(e) {
  const view = B.v(), root = B.r()
  if (!view.matches('.s')) return
  const f = view.querySelectorAll('a,button,input:enabled,summary'), a = f[0], z = f[f.length - 1], cur = root.activeElement
  if (e.shiftKey ? cur == a || cur == view : cur == z) { e.preventDefault(); (e.shiftKey ? z : a).focus() }
}
B.a.save = () => B.decide(['necessary', ...[...B.v().querySelectorAll('input:checked:enabled')].map(i => i.name)], 'custom')
B.a.hide = B.close

// ---- the floating controls: settings, and while anything optional is granted a one-click
// withdrawal; hidden while a view is open. f(1) shows them and gives the settings button ----
function controls(on) {
  if (!on) return fab && (fab.hidden = true)
  B.mount()
  if (!fab) {
    fab = D.createElement('div')
    fab.className = 'w'
    fab.innerHTML = `<button class="f" data-a="${B.R() == 'notice' ? 'info' : 'custom'}" aria-label="${T.reopen}" title="${T.reopen}"><svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true"><path fill="currentColor" d="M12 2a10 10 0 1 0 10 10 4 4 0 0 1-5-5 4 4 0 0 1-5-5z"/></svg></button><button class="u" data-a="reject">${T.withdraw}</button>`
    B.r().append(fab)
  }
  fab.hidden = !!B.v()
  fab.lastChild.hidden = !B.c()?.granted[1]
  return fab.firstChild
}

B.m({ h: hold, u: unhold, l: layer2, f: controls, w: wipe, t: trap }, s, t)
})
