"""Optuna storage: open it from a URL or folder, the claim lock workers share, and credentials kept out of output.

The one module that touches Optuna's private storage API (`fail_trial`, `adopt_trial`).
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from pathlib import Path

import filelock
import optuna

from dlbench.spec import SpecError

JOURNAL_FILE = "optuna-journal.log"


# === Credentials kept out of output ===

# `scheme://user:password@`: the password runs to the last '@' of the URL (SQLAlchemy reads it the same way up to
# the host), and stops at whitespace or a quote so that a URL quoted inside a message ends where the quote does.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"<>]*):(?P<secret>[^\s'\"<>]*)@")
# `password=...` in a query string (`?password=`, `&sslpassword=`) or a libpq `key=value` string, quoted or not.
_SECRET_PARAM = re.compile(r"(?P<head>(?<![\w.\-])(?:password|passwd|pwd|sslpassword|secret|token|access_token"
                           r"|api_key|apikey)=)(?P<secret>'(?:[^'\\]|\\.)*'|[^&#;\s'\"<>]*)", re.IGNORECASE)


def redact(url: str) -> str:
    """`url` with its credentials masked: `postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`.

    Masks the password of every `scheme://user:password@host` and every `password=` (also `token=`, `secret=`,
    ...) query or `key=value` parameter. The user name, host and database stay, so the result still says where a run
    went. Works on a bare URL and on a message with URLs inside it, such as an exception's text; text without
    credentials comes back unchanged.
    """
    text = _USERINFO.sub(r"\g<head>:***@", url)
    return _SECRET_PARAM.sub(r"\g<head>***", text)


def _driver_hint(url: str, e: ImportError) -> str:
    """What to install for the database driver a storage URL needs, in words."""
    scheme = url.split("://")[0]
    try:
        import sqlalchemy

        parsed = sqlalchemy.engine.make_url(url)
        dialect, driver = parsed.get_backend_name(), parsed.get_driver_name()  # the default driver when none given
    except Exception:  # noqa: BLE001 - an unparsable URL or unknown dialect: name what the import said
        dialect, driver = scheme.partition("+")[0], scheme.partition("+")[2]
    missing = None
    while e is not None and missing is None:  # Optuna re-raises the driver's ImportError as its own
        missing = getattr(e, "name", None)
        e = e.__cause__ or e.__context__
    if dialect == "postgresql" and driver == "psycopg":
        return ("needs psycopg 3, the PostgreSQL driver SQLAlchemy uses for postgresql:// URLs, which is not "
                "installed: `pip install 'dlbench[postgres]'`")
    if dialect == "postgresql" and driver == "psycopg2" and "+" in scheme:
        return ("needs psycopg2, which is not installed: `pip install psycopg2-binary`, or write postgresql:// "
                "to use psycopg 3 (`pip install 'dlbench[postgres]'`)")
    if dialect == "postgresql" and driver == "psycopg2":  # SQLAlchemy before 2.1 reads postgresql:// so
        return ("needs psycopg2, the driver SQLAlchemy before 2.1 uses for postgresql:// URLs, which is not "
                "installed: `pip install 'dlbench[postgres]'` installs SQLAlchemy 2.1 and psycopg 3")
    what = f"the Python driver {missing!r}" if missing else f"the Python driver for {scheme}://"
    return f"needs {what}, which is not installed: install it"


def _open_error(url: str, e: Exception) -> SpecError:
    """A failure to open a URL storage, as an input error whose message holds no password."""
    import sqlalchemy

    scheme = url.split("://")[0]
    if isinstance(e, ImportError):
        return SpecError("command line", "--storage", f"{scheme} storage {redact(url)} {_driver_hint(url, e)}")
    if isinstance(e, sqlalchemy.exc.NoSuchModuleError):
        return SpecError("command line", "--storage", f"{redact(url)}: SQLAlchemy knows no database {scheme!r}; "
                         "write the URL as dialect[+driver]://user@host/database, e.g. postgresql://user@db/optuna")
    if isinstance(e, sqlalchemy.exc.DBAPIError):  # the driver's own message, without SQLAlchemy's link to its docs
        detail = str(e.orig).strip() or type(e.orig).__name__
    else:
        detail = str(e).strip() or type(e).__name__
    detail = redact(detail)
    # The driver's message could quote a password without its URL (none we know of does): mask those too, as
    # written in the URL and decoded (%40 -> @). Passwords under 4 characters are left, not to mangle the message.
    secrets = {m["secret"] for pattern in (_USERINFO, _SECRET_PARAM) for m in pattern.finditer(url)}
    for secret in sorted(secrets | {urllib.parse.unquote(s) for s in secrets}, key=len, reverse=True):
        if len(secret) >= 4:
            detail = detail.replace(secret, "***")
    return SpecError("command line", "--storage", f"could not open the Optuna storage {redact(url)}: {detail}")


def open_storage(url: str):
    """Optuna storage from a URL or a folder.

    A folder (the default `studies/`) holds one journal file. We use Optuna's JournalStorage with a file backend
    rather than RDB-on-SQLite: the journal is an append-only log guarded by a file lock, so several processes on
    one machine can share it safely, while SQLite under concurrent writers fails with "database is locked" (Optuna's
    docs advise against SQLite for parallel workers). Across machines, pass a PostgreSQL URL.

    A URL that cannot be opened (missing driver, unknown dialect, wrong host, port, password or database, no right
    to create tables) raises SpecError for `--storage`, with the URL's password masked (`redact`).
    """
    if "://" in url:
        import sqlalchemy

        # Workers started together on a new database would race to create Optuna's tables (PostgreSQL: duplicate
        # enum types); creating them under the claim lock serialises that.
        try:
            with claim_lock(url):
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as e:
            # ImportError: the database driver SQLAlchemy needs for this URL. ValueError: an unparsable URL (a port
            # that is not a number). SQLAlchemyError: the database refused or could not be reached.
            raise _open_error(url, e) from e
    path = Path(url)
    if path.suffix not in (".log", ".journal"):
        path.mkdir(parents=True, exist_ok=True)
        path = path / JOURNAL_FILE
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path),
                                                         lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path)))
    return optuna.storages.JournalStorage(backend)


def claim_lock(url: str):
    """The lock under which workers claim trials, seed repeats and arm runs, so the budget is never overshot and no
    seed or arm run is taken twice. A context manager, reentrant.

    With a PostgreSQL storage, a PostgreSQL advisory lock in that database (`AdvisoryLock`): every worker that
    shares the storage, on any machine, is excluded. With a journal folder (one machine), a file lock beside it.
    Other database URLs (MySQL, SQLite) get a file lock in $TMPDIR, which excludes the workers of this machine only.
    """
    if url.startswith(("postgresql://", "postgresql+", "postgres://")):
        return AdvisoryLock(url, "dlbench claim")
    if "://" in url:
        name = hashlib.sha256(url.encode()).hexdigest()[:16]
        return filelock.FileLock(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"dlbench-{name}.lock"))
    path = Path(url)
    folder = path if path.suffix not in (".log", ".journal") else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(folder / ".dlbench-claim.lock"))


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock (`pg_advisory_lock`) as a reentrant context manager.

    It is held on a connection of its own for as long as the outermost `with` lasts, and PostgreSQL releases it
    when that connection closes, so a worker that dies while holding it blocks nobody. Claims are short (a few
    queries), so one lock per database serves every experiment in it.
    """

    def __init__(self, url: str, name: str):
        self.url = url
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._engine = None
        self._conn = None
        self._depth = 0

    def __enter__(self) -> "AdvisoryLock":
        import sqlalchemy

        if self._depth == 0:
            if self._engine is None:
                self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
            self._conn = self._engine.connect()
            try:
                self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
            except BaseException:
                self._conn.close()
                self._conn = None
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        import sqlalchemy

        self._depth -= 1
        if self._depth == 0:
            conn, self._conn = self._conn, None
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            finally:
                conn.close()




# === The one place that uses Optuna's private storage API ===
# Optuna's public API only lets the process that asked for a trial tell it; these two let a worker act on a trial
# that another worker, now dead, was running.


def fail_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> None:
    """Mark another (dead) worker's RUNNING trial FAIL with the reason as its `fail_reason` user attribute."""
    study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason[:2000])
    study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def adopt_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> optuna.Trial:
    """Take over another (dead) worker's RUNNING trial: the same trial number and parameters (`suggest_*` returns
    the stored values), its intermediate values kept; `study.tell` ends it as if this worker had asked for it."""
    return optuna.Trial(study, trial._trial_id)


def stored_user_attrs(trial: optuna.Trial) -> dict:
    """A trial's user attributes as stored now (`Trial.user_attrs` is this process's cached copy, blind to what
    another worker wrote since)."""
    return trial.storage.get_trial_user_attrs(trial._trial_id)
