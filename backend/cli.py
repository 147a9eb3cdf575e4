"""`sipat-admin`: administration from the shell, against the database of the `SIPAT_*` settings.

    sipat-admin migrate                      bring the database schema up to date (alembic upgrade head)
    sipat-admin create-admin EMAIL           create an administrator, or reset its password
    sipat-admin create-researcher EMAIL      create a researcher (owns the studies it creates), or reset
                                             its password
    sipat-admin create-token EMAIL [--name]  print a new API token (only once; stored hashed)
    sipat-admin revoke-token TOKEN_OR_ID     revoke a token by its plaintext or its numeric id
    sipat-admin import-dataset PATH [--name] import a zip (ImageFolder or CSV manifest) as a dataset
    sipat-admin copy-blobs DIR               copy the blobs of a local blob directory into the store of
                                             SIPAT_BLOB_URL (e.g. an S3 bucket); resumable

Exit status 0 on success, 1 when the command could not be done (message on stderr), 2 for bad usage.

Which database: `SIPAT_DATABASE_URL` when set; else `./var/sipat.db` of the working directory, as the server
uses; when that does not exist, the one of the project this command belongs to (`<project>/var/sipat.db`,
where `make run` keeps it), so the command works from any directory. It says which one it opened (stderr),
and only `migrate` creates a database: the others refuse a missing file instead of making an empty one.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from backend import auth
from backend.blobstores import open_blob_store
from backend.db import make_engine, make_session_factory, session_scope
from backend.services.errors import ServiceError
from backend.settings import Settings, get_settings
from backend.storage import StorageError


class CommandError(Exception):
    """A command cannot be done; the message says why and what to do."""


#: `var/` of the project this module belongs to (an editable install or a clone): where `make run` keeps
#: its SQLite database and blobs.
PROJECT_VAR = Path(__file__).resolve().parents[1] / "var"


def _settings(*, create: bool = False) -> Settings:
    """The settings of the `SIPAT_*` environment, with the database found as the module docstring says.

    Raises CommandError for a SQLite file that does not exist (unless `create`), before anything is written
    (the settings would otherwise create a secret key under the working directory)."""
    if os.environ.get("SIPAT_DATABASE_URL"):
        settings = get_settings()
    else:
        here = Path.cwd() / "var"
        var = here if (here / "sipat.db").exists() or not (PROJECT_VAR / "sipat.db").exists() else PROJECT_VAR
        if not (var / "sipat.db").exists() and not create:
            raise CommandError(
                f"no database at {var / 'sipat.db'} (nor at {PROJECT_VAR / 'sipat.db'}); run the command in the "
                "project directory where `make run` made it, set SIPAT_DATABASE_URL, or create one with "
                "`sipat-admin migrate`"
            )
        values: dict[str, Any] = {"database_url": f"sqlite:///{var / 'sipat.db'}"}
        if not os.environ.get("SIPAT_DATA_DIR"):
            values["data_dir"] = var / "data"
        settings = Settings(**values)
    path = make_url(settings.database_url).database if settings.database_url.startswith("sqlite") else None
    if path and path != ":memory:" and not Path(path).exists() and not create:
        raise CommandError(f"no database at {path}; create it with `sipat-admin migrate` or fix SIPAT_DATABASE_URL")
    print(f"sipat-admin: database {_safe_url(settings.database_url)}", file=sys.stderr)
    return settings


@contextmanager
def _transaction(settings: Settings) -> Iterator[Session]:
    """One committed transaction on the settings' database (the engine is closed afterwards)."""
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> None:
    from backend.migrate import upgrade

    settings = _settings(create=True)
    upgrade(settings.database_url)
    print(f"database at {_safe_url(settings.database_url)} is at the latest schema")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CommandError("the passwords differ; run the command again")
    if len(password) < auth.MIN_PASSWORD_LENGTH:
        raise CommandError(f"the password must have at least {auth.MIN_PASSWORD_LENGTH} characters")
    return password


def cmd_create_admin(args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)
    with _transaction(_settings()) as session:
        user = auth.get_user_by_email(session, args.email)
        if user is None:
            user = auth.create_user(session, args.email, password, is_admin=True)
            print(f"created administrator {user.email} (id {user.id})")
        else:
            user.password_hash = auth.hash_password(password)
            user.is_admin = True
            print(f"updated the password of {user.email} (id {user.id}); it is an administrator")


def cmd_create_researcher(args: argparse.Namespace) -> None:
    """A researcher reaches, through the research API, only the studies it creates; an administrator all.
    An existing account keeps its role (an administrator is not demoted by a typo): only its password changes."""
    password = _read_password(args.password_stdin)
    with _transaction(_settings()) as session:
        user = auth.get_user_by_email(session, args.email)
        if user is None:
            user = auth.create_user(session, args.email, password, is_admin=False)
            print(f"created researcher {user.email} (id {user.id}); give it a token with: sipat-admin create-token")
        else:
            user.password_hash = auth.hash_password(password)
            role = "an administrator" if user.is_admin else "a researcher"
            print(f"updated the password of {user.email} (id {user.id}); it stays {role}")


def cmd_create_token(args: argparse.Namespace) -> None:
    with _transaction(_settings()) as session:
        user = auth.get_user_by_email(session, args.email)
        if user is None:
            raise CommandError(f"no user {args.email!r}; create it first with: sipat-admin create-admin EMAIL")
        token = auth.create_token(session, user, name=args.name)
    print(f"token for {user.email} (shown only now; keep it secret):", file=sys.stderr)
    print(token)


def cmd_revoke_token(args: argparse.Namespace) -> None:
    with _transaction(_settings()) as session:
        token = auth.find_token(session, args.token_or_id)
        if token is None:
            raise CommandError("no such token; pass the token itself or its numeric id")
        already = token.revoked_at is not None
        auth.revoke_token(session, token)
        print(f"token {token.id} ({token.name or 'unnamed'}) {'was already' if already else 'is now'} revoked")


def cmd_import_dataset(args: argparse.Namespace) -> None:
    from backend.datasets.archive import ArchiveError, read_archive
    from backend.services.datasets import import_archive

    settings = _settings()
    path = Path(args.path)
    if not path.is_file():
        raise CommandError(f"no file at {path}; pass the path of a .zip archive")
    try:
        archive = read_archive(path, max_bytes=settings.max_upload_bytes)
    except ArchiveError as exc:
        raise CommandError(str(exc)) from None
    storage = open_blob_store(settings)
    with _transaction(settings) as session:
        dataset = import_archive(session, storage, archive, args.name or path.stem)
        n_images = len(dataset.images)
        print(f"imported dataset {dataset.name!r} (id {dataset.id}): {n_images} images")


def cmd_copy_blobs(args: argparse.Namespace) -> None:
    from backend.blobstores import copy_blobs
    from backend.storage import LocalBlobStore

    source = Path(args.directory)
    if not source.is_dir():
        raise CommandError(f"no directory at {source}; pass the old blob directory (e.g. $SIPAT_DATA_DIR/blobs)")
    settings = get_settings()
    target = open_blob_store(settings)
    if isinstance(target, LocalBlobStore) and target.root.resolve() == source.resolve():
        raise CommandError(f"{source} is the configured store itself; set SIPAT_BLOB_URL to the new store first")
    report = copy_blobs(LocalBlobStore(source), target)
    print(f"copied {report.copied} blobs to {target.location}; {report.present} were there already")
    if report.damaged:
        raise CommandError(
            f"{len(report.damaged)} files do not hash to their names and were not copied: "
            + ", ".join(report.damaged[:10])
        )


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipat-admin", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    add("migrate", cmd_migrate, "bring the database schema up to date (alembic upgrade head)")
    p = add("create-admin", cmd_create_admin, "create an administrator (or reset its password)")
    p.add_argument("email")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    p = add("create-researcher", cmd_create_researcher, "create a researcher (or reset its password)")
    p.add_argument("email")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    p = add("create-token", cmd_create_token, "print a new API token for a user, once")
    p.add_argument("email")
    p.add_argument("--name", default="", help="what the token is for, e.g. 'laptop'")
    p = add("revoke-token", cmd_revoke_token, "revoke an API token")
    p.add_argument("token_or_id", help="the token itself or its numeric id")
    p = add("import-dataset", cmd_import_dataset, "import a dataset zip (ImageFolder or CSV manifest)")
    p.add_argument("path")
    p.add_argument("--name", default=None, help="dataset name (default: the file name without .zip)")
    p = add("copy-blobs", cmd_copy_blobs, "copy a local blob directory into the store of SIPAT_BLOB_URL")
    p.add_argument("directory", help="the old blob directory, e.g. $SIPAT_DATA_DIR/blobs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CommandError, ServiceError, StorageError, ValueError) as exc:
        print(f"sipat-admin {args.command}: {exc}", file=sys.stderr)
        return 1
    except OperationalError as exc:  # e.g. a database without our tables, or one that cannot be reached
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        print(
            f"sipat-admin {args.command}: the database cannot be used ({reason}); if it is new or older than "
            "this version, run `sipat-admin migrate`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
