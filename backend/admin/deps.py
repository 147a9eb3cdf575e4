"""What every admin page needs: the logged-in administrator, CSRF-checked forms, rendering, error pages.

* `AdminDep`: the administrator of the request's session cookie. Without a valid session a GET is
  redirected to the login page (303) and anything else is refused with 401.
* `FormDep`: the POSTed form (`application/x-www-form-urlencoded`) as a dict of strings, after its
  `csrf_token` (or an `X-CSRF-Token` header) was checked against the session (403 otherwise).
* `AdminRoute`: the route class of the admin routers; it turns service errors and HTTP errors into HTML
  pages and adds the dashboard's headers (no caching, same-origin referrer) to every answer; the strict CSP
  (`backend.security.PAGE_POLICY`) is set by `backend.security`'s middleware, as on the participant pages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from backend.admin.security import SESSION_COOKIE, AdminSession, LoginThrottle, Signer, password_fingerprint
from backend.api.deps import SessionDep
from backend.models import User
from backend.services.errors import ServiceError
from backend.vocabulary import eps_label
from study_frontend import TEMPLATES_DIR

LOGIN_PATH = "/admin/login"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

#: What the dashboard adds to `backend.security`'s headers (its middleware sets the Content-Security-Policy,
#: the one definition for every page, and nosniff and framing on every response): no caching of pages with
#: study data, and a referrer only within this origin.
SECURITY_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin"}


# --- template filters -------------------------------------------------------------------------------------------


def fmt_eps(eps: float | None) -> str:
    """An eps in [0, 1] pixel units by the vocabulary's one label (8/255 also for a stored key such as
    "0.0156863"; see `GREY_LEVEL_TOLERANCE`); a dash for none."""
    if eps is None:
        return "—"
    return eps_label(eps)


def fmt_threshold(eps: float | None) -> str:
    """A fitted eps (any value) in both units, e.g. '3.86/255 (0.0151)'; None: the curve never gets there."""
    if eps is None or not math.isfinite(eps):
        return "not reached"
    return f"{eps * 255:.3g}/255 ({eps:.4f})"


def fmt_num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def fmt_time(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    value = max(0.0, value)
    if value < 90:
        return f"{value:.0f} s"
    if value < 5400:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters.update(
    eps=fmt_eps, threshold=fmt_threshold, num=fmt_num, pct=fmt_pct, when=fmt_time, seconds=fmt_seconds
)


# --- app-wide helpers ---------------------------------------------------------------------------------------------


def get_signer(request: Request) -> Signer:
    """The app's signer, made once from `Settings.secret_key`."""
    state = request.app.state
    signer = getattr(state, "admin_signer", None)
    if signer is None:
        signer = state.admin_signer = Signer(state.settings.secret_key.get_secret_value())
    return signer


def get_throttle(request: Request) -> LoginThrottle:
    state = request.app.state
    throttle = getattr(state, "admin_login_throttle", None)
    if throttle is None:
        throttle = state.admin_login_throttle = LoginThrottle()
    return throttle


def cookie_secure(request: Request) -> bool:
    """Secure cookies when this request came over HTTPS or the service's public address is https."""
    return request.url.scheme == "https" or request.app.state.settings.public_base_url.startswith("https://")


def login_redirect(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{LOGIN_PATH}?next={quote(target, safe='')}"


def safe_next(target: str | None) -> str:
    """Where to go after login: an /admin path of this site only (no //host, no scheme)."""
    if target and target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin"


# --- the administrator ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admin:
    user: User
    session: AdminSession
    csrf_token: str


def current_admin(request: Request, db: SessionDep) -> Admin:
    """The administrator of the session cookie; 303 to the login page (GET) or 401 (other methods)."""
    signer = get_signer(request)
    session = signer.read_session(request.cookies.get(SESSION_COOKIE))
    user = db.get(User, session.user_id) if session is not None else None
    if (
        session is None
        or user is None
        or not user.is_admin
        or password_fingerprint(user.password_hash, user.session_generation) != session.fingerprint
    ):
        if request.method in SAFE_METHODS:
            raise HTTPException(
                status.HTTP_303_SEE_OTHER, "log in first", headers={"Location": login_redirect(request)}
            )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"not logged in; log in at {LOGIN_PATH} and try again")
    return Admin(user=user, session=session, csrf_token=signer.csrf_token(session.session_id))


AdminDep = Annotated[Admin, Depends(current_admin)]


def _csrf_failed() -> HTTPException:
    return HTTPException(
        status.HTTP_403_FORBIDDEN,
        "the form's security token is missing or stale; go back, reload the page and submit it again",
    )


async def admin_form(request: Request, admin: AdminDep) -> dict[str, str]:
    """The POSTed form fields (strings; files are not accepted here) once its CSRF token checked out."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, str] = {}
    if content_type == "application/x-www-form-urlencoded":
        async with request.form(max_files=0, max_fields=200) as form:
            for key, value in form.multi_items():
                if isinstance(value, str):
                    fields[key] = f"{fields[key]},{value}" if key in fields else value
    token = request.headers.get("x-csrf-token") or fields.pop("csrf_token", None)
    if not get_signer(request).check_csrf(admin.session.session_id, token):
        raise _csrf_failed()
    return fields


def require_query_csrf(request: Request, admin: AdminDep) -> Admin:
    """For multipart uploads: the token travels in the form's action URL, so it is checked before the body
    is read (a forged upload is refused without reading it)."""
    token = request.headers.get("x-csrf-token") or request.query_params.get("csrf_token")
    if not get_signer(request).check_csrf(admin.session.session_id, token):
        raise _csrf_failed()
    return admin


FormDep = Annotated[dict[str, str], Depends(admin_form)]
UploadAdminDep = Annotated[Admin, Depends(require_query_csrf)]


# --- rendering ------------------------------------------------------------------------------------------------


def render(
    request: Request,
    admin: Admin | None,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page of `study_frontend/templates/admin/`, with the administrator and CSRF token in its context."""
    ctx = {"admin": admin, "csrf_token": admin.csrf_token if admin else None, **(context or {})}
    return templates.TemplateResponse(
        request, f"admin/{template}", ctx, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def see_other(url: str) -> RedirectResponse:
    """After a successful POST: go (GET) to `url`."""
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)


_TITLES = {
    400: "Bad request",
    401: "Not logged in",
    403: "Refused",
    404: "Not found",
    409: "Not possible now",
    413: "Too large",
    422: "Check the input",
    429: "Too many attempts",
    503: "Unavailable",
}


def error_page(request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return render(
        request,
        None,
        "error.html",
        {"title": _TITLES.get(status_code, "Error"), "message": message, "status_code": status_code},
        status_code=status_code,
        headers=headers,
    )


class AdminRoute(APIRoute):
    """Admin routes answer in HTML: service errors and HTTP errors become an error page (a 303 stays a
    redirect), and every response carries `SECURITY_HEADERS` (the CSP comes from `backend.security`, like
    on every response); headers a route set itself are kept."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except ServiceError as exc:
                response = error_page(request, exc.status_code, exc.message, exc.headers)
            except HTTPException as exc:
                if exc.status_code == status.HTTP_303_SEE_OTHER and exc.headers:
                    response = RedirectResponse(exc.headers["Location"], status_code=exc.status_code)
                else:
                    response = error_page(request, exc.status_code, str(exc.detail), exc.headers)
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        return handle
