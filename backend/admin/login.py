"""Log in (e-mail and password of an administrator, checked with argon2 by `backend.auth`) and log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import Response
from sqlalchemy import update

from backend.admin.deps import (
    AdminDep,
    AdminRoute,
    FormDep,
    cookie_secure,
    get_signer,
    get_throttle,
    render,
    safe_next,
    see_other,
)
from backend.admin.security import COOKIE_PATH, LOGIN_COOKIE, LOGIN_NONCE_TTL_S, SESSION_COOKIE, SESSION_TTL_S
from backend.api.deps import SessionDep
from backend.auth import authenticate_password
from backend.models import User
from backend.ratelimits import RateLimitedError

router = APIRouter(route_class=AdminRoute)


def _login_page(
    request: Request,
    nonce_cookie: str,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    signer = get_signer(request)
    nonce = signer.read_login_nonce(nonce_cookie) or ""
    response = render(
        request,
        None,
        "login.html",
        {"csrf_token": signer.csrf_token(f"login|{nonce}"), "next": next_url, "email": email, "error": error},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce_cookie,
        max_age=LOGIN_NONCE_TTL_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
    )
    return response


def _nonce_cookie(request: Request) -> str:
    """The login nonce cookie of this browser if it is still valid, else a new one."""
    signer = get_signer(request)
    existing = request.cookies.get(LOGIN_COOKIE)
    return existing if signer.read_login_nonce(existing) is not None else signer.new_login_nonce()  # type: ignore[return-value]


@router.get("/login", name="admin_login")
def login_page(request: Request, next: str | None = None) -> Response:
    return _login_page(request, _nonce_cookie(request), next_url=safe_next(next))


async def login_form(request: Request) -> dict[str, str]:
    """The login form's fields once its CSRF token matches the nonce cookie set with the form (403 otherwise)."""
    fields: dict[str, str] = {}
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        async with request.form(max_files=0, max_fields=10) as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
    signer = get_signer(request)
    nonce = signer.read_login_nonce(request.cookies.get(LOGIN_COOKIE))
    if nonce is None or not signer.check_csrf(f"login|{nonce}", fields.get("csrf_token")):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "the login form's security token is missing or stale (cookies must be enabled); reload the login page",
        )
    return fields


@router.post("/login")
def login(request: Request, form: Annotated[dict[str, str], Depends(login_form)], db: SessionDep) -> Response:
    """Check the password (argon2); at most `MAX_FAILURES` failures a minute per address and e-mail (429)."""
    email = form.get("email", "").strip()
    next_url = safe_next(form.get("next"))
    nonce_cookie = request.cookies.get(LOGIN_COOKIE, "")
    key = (request.client.host if request.client else "unknown", email.lower())
    throttle = get_throttle(request)
    wait = throttle.retry_after(key)
    try:  # counted before argon2 runs: a flood past the limit costs no hashing (backend.ratelimits)
        request.app.state.rate_limits.login(request, email)
    except RateLimitedError as exc:
        wait = exc.retry_after_s
    if wait is None:
        try:  # the argon2 budget of all clients together (backend.hashbudget): refused here, nothing is hashed
            user = request.app.state.password_checks.run(authenticate_password, db, email, form.get("password", ""))
        except ValueError:  # not an e-mail address
            user = None
        except RateLimitedError as exc:
            wait = exc.retry_after_s
    if wait is not None:
        response = _login_page(
            request,
            nonce_cookie,
            next_url=next_url,
            email=email,
            error=f"Too many login attempts. Wait {wait} s before trying again.",
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    if user is None or not user.is_admin:
        throttle.failed(key)
        return _login_page(
            request,
            nonce_cookie,
            next_url=next_url,
            email=email,
            error="Wrong e-mail or password, or not an administrator's account.",
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    throttle.succeeded(key)
    cookie, _ = get_signer(request).new_session(user.id, user.password_hash, generation=user.session_generation)
    response = see_other(next_url)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_TTL_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout")
def logout(request: Request, form: FormDep, admin: AdminDep, db: SessionDep) -> Response:
    """End the session: the cookie is deleted here, and the user's session generation is raised, so this
    cookie (and every other session of the account) is refused from now on, even if a copy of it was kept."""
    db.execute(update(User).where(User.id == admin.user.id).values(session_generation=User.session_generation + 1))
    response = see_other(request.url_for("admin_login").path)
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=cookie_secure(request)
    )
    return response
