"""The console's pages under ``/_consent/admin/``.

Every page needs a session (:mod:`.session`) whose token is still active; without one
a page redirects to the sign-in form (303). Every form carries the session's CSRF
secret; a POST without it (or with another) gets 403 and changes nothing. What a
form changes is recorded in the audit action chain (``console.*`` actions, actor
``token:<id>``) before the response is sent.

=============================  ==================================  ========  =====
page                           what                                auditor   admin
=============================  ==================================  ========  =====
``/admin/sign-in``             token form; sign-out is a POST      -         -
``/admin/dashboard``           decisions, acceptance, breakdowns   read      read
``/admin/discovery``           cookies and hosts the pages use     read      classify
``/admin/exports``             filtered export, streamed           yes       yes
``/admin/verify``              verify as a background job          run       run
``/admin/manifests``           signed export manifests, key        read      read
``/admin/lookup``              records of a consent id             read      erase
``/admin/tokens``              API tokens                          -         manage
``/admin/actions``             the audit action log                read      read
=============================  ==================================  ========  =====
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi
from ..audit import tokens as tok
from ..audit.columns import format_time
from ..audit.keys import signing_key_for
from ..audit.subjects import ErasureRefused, erase_subject, subject_document, subject_records
from ..consent import CATEGORIES
from ..errors import ApiError, ConsentGateError
from ..store.base import ApiToken, AuditAction, StoreError
from ..visit import Runtime
from . import charts
from .discovery import discovery
from .figures import PERIODS, Dashboard, PeriodError, build, period_of
from .jobs import VerifyJobs
from .session import COOKIE, Session, SessionCodec

__all__ = ["Console", "routes"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "console"
_PRE_COOKIE = "consentgate_console_pre"
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
Page = Callable[[Request, Session, ApiToken], Awaitable[Response]]


class Forbidden(ConsentGateError):
    """A role without the permission, or a failed CSRF check (403, nothing changed)."""


class Console:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.sessions = SessionCodec(runtime.settings.secret_keys)
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["categories"] = CATEGORIES[1:]
        self.jobs = VerifyJobs(runtime)
        runtime.on_shutdown.append(self.jobs.stop)

    # -- plumbing ------------------------------------------------------------------------

    def base(self, request: Request) -> str:
        return str(request.scope.get("root_path", "")) + "/admin"

    def _secure(self, request: Request) -> bool:
        return request.url.scheme == "https"

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        session: Session | None = None,
        token: ApiToken | None = None,
        status: int = 200,
    ) -> Response:
        base = self.base(request)
        html = self.env.get_template(template).render(
            base=base,
            session=session,
            token=token,
            can=(lambda p: token is not None and tok.can(token.role, p)),
            path=str(request.scope.get("root_path", "")) + request.scope["path"],
            **context,
        )
        response = Response(html, status, media_type="text/html; charset=utf-8")
        response.headers.update(_HEADERS)
        if session is not None:
            self._set_session(request, response, self.sessions.touched(session))
        return response

    def _set_session(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.sessions.dumps(session),
            path=self.base(request),
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )

    def redirect(self, request: Request, to: str, session: Session | None = None) -> Response:
        response = RedirectResponse(self.base(request) + to, status_code=303)
        response.headers.update(_HEADERS)
        if session is not None:
            self._set_session(request, response, self.sessions.touched(session))
        return response

    async def log(self, token: ApiToken, action: str, detail: dict[str, Any]) -> None:
        await self.store.log_action(
            AuditAction(datetime.now(UTC), f"token:{token.token_id}", action, detail)
        )

    def page(self, permission: str, handler: Page, *, form: bool = False) -> Any:
        """A page behind a session: redirect to sign-in without one; 403 without the
        permission or (``form``) without the session's CSRF secret."""

        async def endpoint(request: Request) -> Response:
            session = self.sessions.loads(request.cookies.get(COOKIE))
            token = None
            try:
                if session is not None:
                    token = await self.store.get_token(session.token_id)
                if session is None or token is None or token.revoked_at is not None:
                    if form:
                        return self.forbidden(request, None, None, "Your session has ended.")
                    nxt = urlencode({"next": request.scope["path"].removeprefix("/admin")})
                    return self.redirect(request, f"/sign-in?{nxt}")
                if form:
                    data = await read_form(request)
                    csrf = data.get("csrf")
                    if not session.csrf_ok(csrf if isinstance(csrf, str) else None):
                        raise Forbidden("The form's security token is missing or wrong.")
                if not tok.can(token.role, permission):
                    raise Forbidden(f"A {token.role} token may not do this.")
                return await handler(request, session, token)
            except Forbidden as exc:
                return self.forbidden(request, session, token, str(exc))
            except StoreError as exc:
                return self.render(
                    request, "error.html", {"message": f"The consent log: {exc}"}, status=503
                )

        return endpoint

    def forbidden(
        self, request: Request, session: Session | None, token: ApiToken | None, message: str
    ) -> Response:
        return self.render(request, "error.html", {"message": message}, session, token, 403)

    def site_ids(self) -> list[str]:
        return [s.id for s in self.runtime.settings.sites]

    # -- sign-in and sign-out ------------------------------------------------------------

    async def sign_in_form(self, request: Request) -> Response:
        nonce = secrets.token_urlsafe(24)
        response = self.render(
            request, "sign_in.html", {"csrf": nonce, "next": _safe_next(request), "error": ""}
        )
        self._pre_cookie(request, response, nonce)
        return response

    def _pre_cookie(self, request: Request, response: Response, nonce: str) -> None:
        response.set_cookie(
            _PRE_COOKIE,
            nonce,
            path=self.base(request),
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
            max_age=3600,
        )

    async def sign_in(self, request: Request) -> Response:
        try:
            data = await read_form(request)
        except Forbidden as exc:
            return self.render(request, "error.html", {"message": str(exc)}, status=403)
        nonce = request.cookies.get(_PRE_COOKIE, "")
        csrf = data.get("csrf")
        if not nonce or not isinstance(csrf, str) or not Session("", nonce, 0).csrf_ok(csrf):
            return self.render(
                request,
                "error.html",
                {"message": "The sign-in form expired; reload it."},
                status=403,
            )
        secret = data.get("token")
        token = await tok.authenticate(
            self.store, secret.strip() if isinstance(secret, str) else ""
        )
        if token is None:
            fresh = secrets.token_urlsafe(24)
            response = self.render(
                request,
                "sign_in.html",
                {"csrf": fresh, "next": _safe_next(request, data.get("next")), "error": "x"},
                status=401,
            )
            self._pre_cookie(request, response, fresh)
            return response
        session = self.sessions.new(token.token_id)
        await self.log(token, "console.sign_in", {"role": token.role})
        target = _safe_next(request, data.get("next")) or "/dashboard"
        response = self.redirect(request, target, session)
        response.delete_cookie(_PRE_COOKIE, path=self.base(request))
        return response

    async def sign_out(self, request: Request, session: Session, token: ApiToken) -> Response:
        await self.log(token, "console.sign_out", {})
        response = self.redirect(request, "/sign-in")
        response.delete_cookie(COOKIE, path=self.base(request))
        return response

    # -- dashboard -----------------------------------------------------------------------

    def _site(self, request: Request) -> str:
        site = request.query_params.get("site") or self.site_ids()[0]
        if site not in self.site_ids():
            raise PeriodError(f"no site {site!r}")
        return site

    async def dashboard_figures(
        self, site: str, days: str | None, start: str | None, end: str | None
    ) -> Dashboard:
        period = period_of(days, start, end, datetime.now(UTC).date())
        rows = await self.store.rollup_rows(site, period.since, period.until)
        return build(rows, period)

    async def dashboard(self, request: Request, session: Session, token: ApiToken) -> Response:
        q = request.query_params
        try:
            site = self._site(request)
            d = await self.dashboard_figures(site, q.get("days"), q.get("start"), q.get("end"))
            error = ""
        except PeriodError as exc:
            site, error = self.site_ids()[0], str(exc)
            d = await self.dashboard_figures(site, None, None, None)
        return self.render(
            request,
            "dashboard.html",
            self.dashboard_context(site, d, q.get("days") or ("" if q.get("start") else "30"))
            | {"error": error, "start": q.get("start", ""), "end": q.get("end", "")},
            session,
            token,
            400 if error else 200,
        )

    def dashboard_context(self, site: str, d: Dashboard, days: str) -> dict[str, Any]:
        daily = charts.stacked_days(
            f"Decisions per day by method, {d.period.since} to {d.period.last}",
            d.period.days,
            d.methods,
            d.by_day,
        )
        rates = charts.bars(
            "Acceptance rate per category", [(c, d.rate(c)) for c in CATEGORIES[1:]]
        )
        return {
            "site": site,
            "sites": self.site_ids(),
            "d": d,
            "days": days,
            "periods": PERIODS,
            "daily_chart": daily,
            "rates_chart": rates,
            "colors": charts.COLORS,
        }

    # -- discovery -----------------------------------------------------------------------

    async def discovery_page(self, request: Request, session: Session, token: ApiToken) -> Response:
        reg = discovery(self.runtime)
        await reg.flush()
        site = request.query_params.get("site") or self.site_ids()[0]
        if site not in self.site_ids():
            site = self.site_ids()[0]
        entries = await reg.entries(site)
        return self.render(
            request,
            "discovery.html",
            {
                "site": site,
                "sites": self.site_ids(),
                "entries": entries,
                "done": request.query_params.get("done", ""),
            },
            session,
            token,
        )

    async def classify(self, request: Request, session: Session, token: ApiToken) -> Response:
        data = await read_form(request)
        site, kind, name, category = (
            str(data.get(k, "")) for k in ("site", "kind", "name", "category")
        )
        if site not in self.site_ids() or category not in CATEGORIES or not name:
            raise Forbidden("Pick a site, an entry and one of the five categories.")
        try:
            await discovery(self.runtime).classify(site, kind, name, category, token)
        except ValueError as exc:
            raise Forbidden(str(exc)) from None
        return self.redirect(
            request, "/discovery?" + urlencode({"site": site, "done": name}), session
        )

    # -- exports, verify, manifests ------------------------------------------------------

    async def exports(self, request: Request, session: Session, token: ApiToken) -> Response:
        return self.render(
            request,
            "exports.html",
            {"sites": self.site_ids(), "today": date.today()},
            session,
            token,
        )

    async def download(self, request: Request, session: Session, token: ApiToken) -> Response:
        """The admin API's streamed export, for the form's (non-empty) fields."""
        fields = {k: v for k, v in request.query_params.items() if v and k != "csrf"}
        for name in ("since", "until"):
            if len(fields.get(name, "")) == 10:  # a date from <input type=date>
                fields[name] += "T00:00:00Z"
        scope = dict(request.scope)
        scope["query_string"] = urlencode(fields).encode("ascii")
        try:
            response = await AdminApi(self.runtime).export(Request(scope, request.receive), token)
        except ApiError as exc:
            return self.render(
                request, "error.html", {"message": exc.message}, session, token, exc.status
            )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def verify_page(self, request: Request, session: Session, token: ApiToken) -> Response:
        jobs = self.jobs
        return self.render(
            request,
            "verify.html",
            {"current": jobs.current, "history": await jobs.history()},
            session,
            token,
        )

    async def verify_start(self, request: Request, session: Session, token: ApiToken) -> Response:
        await self.jobs.start(token)
        return self.redirect(request, "/verify", session)

    async def manifests(self, request: Request, session: Session, token: ApiToken) -> Response:
        found = [
            a
            async for a in self.store.iter_actions()
            if a.action == "export.manifest" and isinstance(a.detail.get("manifest"), dict)
        ]
        found.reverse()
        return self.render(
            request,
            "manifests.html",
            {
                "manifests": [(a, a.detail["manifest"]) for a in found[:200]],
                "public_key": signing_key_for(self.runtime.settings.data_dir).public_text,
            },
            session,
            token,
        )

    async def manifest(self, request: Request, session: Session, token: ApiToken) -> Response:
        export_id = request.path_params["export_id"]
        async for a in self.store.iter_actions():
            if a.action == "export.manifest" and a.detail.get("export_id") == export_id:
                return JSONResponse(
                    a.detail["manifest"],
                    headers={
                        "Content-Disposition": f'attachment; filename="{export_id}.manifest.json"',
                        **_HEADERS,
                    },
                )
        return self.render(
            request, "error.html", {"message": "No such export."}, session, token, 404
        )

    # -- lookup and erasure --------------------------------------------------------------

    async def lookup(self, request: Request, session: Session, token: ApiToken) -> Response:
        consent_id = request.query_params.get("consent_id", "").strip()[:200]
        doc = None
        if consent_id:
            records = await subject_records(self.store, consent_id)
            await self.log(
                token, "subject.show", {"consent_id": consent_id, "records": len(records)}
            )
            doc = subject_document(consent_id, records) if records else None
        return self.render(
            request,
            "lookup.html",
            {
                "consent_id": consent_id,
                "doc": doc,
                "doc_json": json.dumps(doc, indent=2, ensure_ascii=False) if doc else "",
                "erased": request.query_params.get("erased", ""),
            },
            session,
            token,
            404 if consent_id and doc is None else 200,
        )

    async def erase(self, request: Request, session: Session, token: ApiToken) -> Response:
        consent_id = str((await read_form(request)).get("consent_id", "")).strip()
        records = await subject_records(self.store, consent_id) if consent_id else []
        if not records:
            raise Forbidden(f"No records for consent id {consent_id!r}.")
        try:
            erased = await erase_subject(self.store, consent_id, self.runtime.settings.secret_keys)
        except ErasureRefused as exc:
            await self.log(token, "subject.erase", {"consent_id": consent_id, "refused": str(exc)})
            raise Forbidden(f"Erasure refused: {exc}") from None
        await self.log(token, "subject.erase", {"consent_id": consent_id, "records": erased})
        q = urlencode({"consent_id": consent_id, "erased": str(erased)})
        return self.redirect(request, f"/lookup?{q}", session)

    # -- tokens and actions --------------------------------------------------------------

    async def tokens(self, request: Request, session: Session, token: ApiToken) -> Response:
        return self.render(
            request,
            "tokens.html",
            {"tokens": await self.store.list_tokens(), "created": None, "roles": tok.ROLES},
            session,
            token,
        )

    async def token_create(self, request: Request, session: Session, token: ApiToken) -> Response:
        data = await read_form(request)
        role, name = str(data.get("role", "")), str(data.get("name", ""))[:200]
        if role not in tok.ROLES:
            raise Forbidden(f"Role must be one of {', '.join(tok.ROLES)}.")
        record, secret = await tok.issue(self.store, role, name)
        await self.log(token, "token.create", {"token_id": record.token_id, "role": role})
        return self.render(
            request,
            "tokens.html",
            {
                "tokens": await self.store.list_tokens(),
                "created": (record, secret),
                "roles": tok.ROLES,
            },
            session,
            token,
            201,
        )

    async def token_revoke(self, request: Request, session: Session, token: ApiToken) -> Response:
        token_id = str((await read_form(request)).get("token_id", ""))
        if not await self.store.revoke_token(token_id, datetime.now(UTC)):
            raise Forbidden(f"No active token {token_id!r}.")
        await self.log(token, "token.revoke", {"token_id": token_id})
        return self.redirect(request, "/tokens", session)

    async def actions(self, request: Request, session: Session, token: ApiToken) -> Response:
        found = [a async for a in self.store.iter_actions()]
        found.reverse()
        return self.render(
            request,
            "actions.html",
            {"actions": found[:500], "total": len(found), "fmt": format_time},
            session,
            token,
        )

    async def home(self, request: Request) -> Response:
        return self.redirect(request, "/dashboard")

    async def css(self, request: Request) -> Response:
        body = (TEMPLATES / "console.css").read_bytes()
        return Response(body, media_type="text/css", headers={"Cache-Control": "max-age=300"})


#: A console form is small: a few fields.
MAX_FORM = 16 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (at most :data:`MAX_FORM` bytes;
    anything else reads as an empty form, which fails the CSRF check)."""
    cached = request.scope.get("consentgate.form")
    if cached is not None:
        return dict(cached)
    form: dict[str, str] = {}
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise Forbidden("The form is too large.")
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            form.setdefault(key, value)
    request.scope["consentgate.form"] = form
    return dict(form)


_NEXT = re.compile(r"/(?!sign-)[a-z-]+")


def _safe_next(request: Request, value: object = None) -> str:
    """A console page (``/dashboard``) to go back to after sign-in, or ""."""
    raw = value if isinstance(value, str) else request.query_params.get("next", "")
    return raw if _NEXT.fullmatch(raw) else ""


def routes(runtime: Runtime) -> list[BaseRoute]:
    c = Console(runtime)
    read = "console.read"
    return [
        Route("/admin", c.home, methods=["GET"]),
        Route("/admin/", c.home, methods=["GET"]),
        Route("/admin/console.css", c.css, methods=["GET"]),
        Route("/admin/sign-in", c.sign_in_form, methods=["GET"]),
        Route("/admin/sign-in", c.sign_in, methods=["POST"]),
        Route("/admin/sign-out", c.page(read, c.sign_out, form=True), methods=["POST"]),
        Route("/admin/dashboard", c.page(read, c.dashboard), methods=["GET"]),
        Route("/admin/discovery", c.page(read, c.discovery_page), methods=["GET"]),
        Route(
            "/admin/discovery/classify",
            c.page("discovery.classify", c.classify, form=True),
            methods=["POST"],
        ),
        Route("/admin/exports", c.page("export", c.exports), methods=["GET"]),
        Route("/admin/exports/download", c.page("export", c.download), methods=["GET"]),
        Route("/admin/verify", c.page(read, c.verify_page), methods=["GET"]),
        Route("/admin/verify", c.page("verify", c.verify_start, form=True), methods=["POST"]),
        Route("/admin/manifests", c.page(read, c.manifests), methods=["GET"]),
        Route("/admin/manifests/{export_id}", c.page(read, c.manifest), methods=["GET"]),
        Route("/admin/lookup", c.page("subject.show", c.lookup), methods=["GET"]),
        Route("/admin/lookup/erase", c.page("subject.erase", c.erase, form=True), methods=["POST"]),
        Route("/admin/tokens", c.page("tokens", c.tokens), methods=["GET"]),
        Route("/admin/tokens", c.page("tokens", c.token_create, form=True), methods=["POST"]),
        Route(
            "/admin/tokens/revoke", c.page("tokens", c.token_revoke, form=True), methods=["POST"]
        ),
        Route("/admin/actions", c.page(read, c.actions), methods=["GET"]),
    ]
