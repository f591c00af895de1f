"""Who private servers run as, and the folders their data lives in.

Not root: a server runs as the user, its data under `SDTUTOR_HOME/services/`.

Root: `initdb` refuses root, and a server must not run as an account that owns anything
else (the system `postgres` account owns the machine's own cluster, so `COPY … FROM
PROGRAM` in a lab would reach it). Every server therefore runs as one dedicated system
account, `sdtutor-svc`, made once with `useradd`. Root's home is closed to that account,
so the data lives in `/var/lib/sdtutor/<random>/` (root-owned 0711 base, one 0700 folder
per home owned by the account, its unpredictable name kept in the home's
`services/home.json`). Root never follows a symbolic link there: every folder is opened
component by component with O_NOFOLLOW, and files are made relative to those handles.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdtutor import locations
from sdtutor.errors import ProviderError

SERVICE_ACCOUNT = "sdtutor-svc"
SYSTEM_DATA_ROOT = Path("/var/lib/sdtutor")
HOME_STATE = "home.json"
_HEX_NAME = re.compile(r"[0-9a-f]{32}\Z")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Account:
    """The unprivileged account servers run as when sdtutor runs as root."""

    name: str
    uid: int
    gid: int

    def process_kwargs(self) -> dict[str, Any]:
        """subprocess arguments that run a child as this account and nothing more."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def runs_as_root() -> bool:
    """True when sdtutor runs as root (servers then run as the service account)."""
    return os.geteuid() == 0


def existing_account() -> Account | None:
    """The service account if it exists (a lookup only; never creates it)."""
    try:
        entry = pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def useradd_path() -> str | None:
    """Where `useradd` is, if anywhere."""
    found = shutil.which("useradd")
    if found:
        return found
    for candidate in ("/usr/sbin/useradd", "/sbin/useradd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


ACCOUNT_FIX = (
    f"Create the account yourself (useradd --system --no-create-home --user-group "
    f"--shell /usr/sbin/nologin {SERVICE_ACCOUNT}), or run sdtutor as an ordinary user."
)


def ensure_account() -> Account | None:
    """The account servers run as: None when not root, else `sdtutor-svc` (made once).

    Raises ProviderError when it cannot be made or is unfit (uid or gid 0).
    """
    if not runs_as_root():
        return None
    account = existing_account()
    if account is None:
        useradd = useradd_path()
        if useradd is None:
            raise ProviderError(
                f"sdtutor runs as root, so its servers need their own account "
                f"'{SERVICE_ACCOUNT}', and useradd is not installed to make it.",
                ACCOUNT_FIX,
            )
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                "--comment",
                "sdtutor private lab servers",
                SERVICE_ACCOUNT,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        account = existing_account()  # another terminal may have made it meanwhile
        if account is None:
            raise ProviderError(
                f"Could not create the account '{SERVICE_ACCOUNT}' for sdtutor's servers.",
                (result.stderr or result.stdout).strip() + "\n" + ACCOUNT_FIX,
            )
    if account.uid == 0 or account.gid == 0:
        raise ProviderError(
            f"The account '{SERVICE_ACCOUNT}' has uid or gid 0; sdtutor will not run servers "
            "as it.",
            "Remove it (userdel) so sdtutor can make a proper one.",
        )
    return account


# ---------------------------------------------------------------- locks


_lock_guard = threading.Lock()
_held: dict[str, tuple[threading.RLock, list[int]]] = {}


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`, re-entrant within this process."""
    key = str(path)
    with _lock_guard:
        rlock, depth = _held.setdefault(key, (threading.RLock(), [0]))
    with rlock:
        if depth[0]:
            depth[0] += 1
            try:
                yield
            finally:
                depth[0] -= 1
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            depth[0] = 1
            try:
                yield
            finally:
                depth[0] = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- folders


def open_dir(path: Path) -> int:
    """Open a folder without following a symbolic link anywhere on its path.

    As root every component is opened with O_NOFOLLOW from `/`. Otherwise (the user's
    own SDTUTOR_HOME, which may sit under a linked folder) only the last one is.
    Raises ProviderError when a component is a link or not a folder.
    """
    if not path.is_absolute():
        raise ValueError(f"not an absolute path: {path}")
    if not runs_as_root():
        return _open_component(None, str(path), path)
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in path.parts[1:]:
            child = _open_component(fd, part, path)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_component(dir_fd: int | None, name: str, whole: Path) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise ProviderError(
            f"{whole} is not a plain folder ({name}: {exc.strerror}); sdtutor does not "
            "follow symbolic links where its servers keep data.",
            "Remove whatever is in the way (it was not made by sdtutor) and try again.",
        ) from exc


def _ensure_child_dir(
    parent_fd: int, name: str, mode: int, owner: Account | None, whole: Path
) -> None:
    """Make (or check) folder `name` in `parent_fd`: a real folder, ours, with `mode`."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, mode, dir_fd=parent_fd)
    fd = _open_component(parent_fd, name, whole)
    try:
        info = os.fstat(fd)
        expected = {owner.uid if owner else os.geteuid(), os.geteuid()}
        if info.st_uid not in expected:
            raise ProviderError(
                f"{whole} belongs to uid {info.st_uid}, not to sdtutor; refusing to use it.",
                "Remove it (it was not made by sdtutor) and try again.",
            )
        if owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _check_system_parents(path: Path) -> None:
    """As root: each existing folder above our data must be root's and not writable by others."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in path.parts[1:]:
            info = os.fstat(fd)
            if info.st_uid != 0 or info.st_mode & 0o022:
                raise ProviderError(
                    f"A folder above {path} is not root's alone (owner {info.st_uid}, "
                    f"mode {stat.filemode(info.st_mode)}); sdtutor keeps server data only "
                    "under folders that no other account can change.",
                    "Fix the folder's owner and mode, or run sdtutor as an ordinary user.",
                )
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise ProviderError(
                    f"{path} is not a plain folder ({part}: {exc.strerror}).",
                    "Remove whatever is in the way and try again.",
                ) from exc
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def _home_state_file() -> Path:
    return locations.services_dir() / HOME_STATE


def _home_lock() -> Path:
    return locations.services_dir() / "home.lock"


def _recorded_data_name() -> str | None:
    try:
        value = json.loads(_home_state_file().read_text()).get("data_dir", "")
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and _HEX_NAME.match(value) else None


def data_home(create: bool = False, owner: Account | None = None) -> Path | None:
    """The folder holding this home's servers; None if it was never made (and not `create`)."""
    if not runs_as_root():
        services = locations.services_dir()
        if create:
            services.mkdir(parents=True, exist_ok=True, mode=0o700)
        return services
    name = _recorded_data_name()
    if not create:
        return SYSTEM_DATA_ROOT / name if name else None
    if owner is None:
        raise ValueError("as root the data folder needs the service account")
    with file_lock(_home_lock()):
        name = _recorded_data_name()
        if name is None:
            name = secrets.token_hex(16)
            # Recorded before it exists, so an interruption leaves nothing untracked.
            write_json(_home_state_file(), {"data_dir": name})
        _check_system_parents(SYSTEM_DATA_ROOT)
        SYSTEM_DATA_ROOT.parent.mkdir(parents=True, exist_ok=True)
        parent_fd = open_dir(SYSTEM_DATA_ROOT.parent)
        try:
            _ensure_child_dir(parent_fd, SYSTEM_DATA_ROOT.name, 0o711, None, SYSTEM_DATA_ROOT)
        finally:
            os.close(parent_fd)
        base_fd = open_dir(SYSTEM_DATA_ROOT)
        try:
            _ensure_child_dir(base_fd, name, 0o700, owner, SYSTEM_DATA_ROOT / name)
        finally:
            os.close(base_fd)
        return SYSTEM_DATA_ROOT / name


def server_dir(name: str) -> Path | None:
    """Where the server `name` (e.g. `postgres-main`) keeps its data, if the home has a place."""
    home = data_home()
    return home / name if home else None


def ensure_server_dir(name: str, owner: Account | None) -> Path:
    """Make the server's folder (0700, owned by whoever runs it) and return its path."""
    with file_lock(_home_lock()):  # held throughout: a destroy must not empty it meanwhile
        home = data_home(create=True, owner=owner)
        assert home is not None
        fd = open_dir(home)
        try:
            _ensure_child_dir(fd, name, 0o700, owner, home / name)
        finally:
            os.close(fd)
    return home / name


def make_subdir(folder: Path, name: str, owner: Account | None, mode: int = 0o700) -> Path:
    """Make a folder inside a server's folder without following links."""
    fd = open_dir(folder)
    try:
        _ensure_child_dir(fd, name, mode, owner, folder / name)
    finally:
        os.close(fd)
    return folder / name


def remove_server_dir(name: str, refuse_links: bool = False) -> None:
    """Delete a server's folder and everything in it, never following a link.

    As root, the home's folder under /var/lib/sdtutor goes too once it is empty.
    With `refuse_links`, a symbolic link where the folder belongs raises ProviderError.
    """
    home = data_home()
    if home is None:
        return
    with file_lock(_home_lock()):
        if not os.path.lexists(home):
            if runs_as_root():
                _forget_data_home()
            return
        fd = open_dir(home)
        try:
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            if info is not None and not stat.S_ISDIR(info.st_mode):
                if refuse_links:
                    raise ProviderError(
                        f"{home / name} is not a folder sdtutor made (it is a "
                        f"{'symbolic link' if stat.S_ISLNK(info.st_mode) else 'file'}); "
                        "refusing to use it.",
                        "Remove it and try again.",
                    )
                os.unlink(name, dir_fd=fd)
            elif info is not None:
                shutil.rmtree(name, dir_fd=fd)
            left = os.listdir(fd)
        finally:
            os.close(fd)
        if runs_as_root() and not left:
            base_fd = open_dir(SYSTEM_DATA_ROOT)
            try:
                os.rmdir(home.name, dir_fd=base_fd)
            finally:
                os.close(base_fd)
            _forget_data_home()


def _forget_data_home() -> None:
    _home_state_file().unlink(missing_ok=True)


# ---------------------------------------------------------------- files


def write_private(
    folder: Path, name: str, text: str, owner: Account | None, mode: int = 0o600
) -> Path:
    """Write a file only its owner can read, replacing any file or link of that name."""
    dfd = open_dir(folder)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dfd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=dfd)
    finally:
        os.close(dfd)
    with os.fdopen(fd, "w") as fh:
        if owner is not None:
            os.fchown(fh.fileno(), owner.uid, owner.gid)
        fh.write(text)
        os.fchmod(fh.fileno(), mode)
    return folder / name


def append_line(folder: Path, name: str, text: str) -> None:
    """Append to an existing regular file without following a link."""
    dfd = open_dir(folder)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    finally:
        os.close(dfd)
    with os.fdopen(fd, "a") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ProviderError(f"{folder / name} is not a regular file.")
        fh.write(text)


def open_log(folder: Path, name: str, owner: Account | None) -> int:
    """A fresh log file for a server's own output (a descriptor to hand to Popen)."""
    write_private(folder, name, "", owner)
    dfd = open_dir(folder)
    try:
        return os.open(name, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    finally:
        os.close(dfd)


def read_text(folder: Path | None, name: str, limit: int = 1_000_000) -> str | None:
    """The end (`limit` bytes) of a regular file in a server's folder; None if there is none."""
    if folder is None:
        return None
    try:
        dfd = open_dir(folder)
    except (ProviderError, OSError):
        return None
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        fh.seek(max(0, info.st_size - limit))
        return fh.read().decode(errors="replace")


def read_tail(folder: Path | None, name: str, lines: int = 12) -> str:
    """The last lines of a regular file in a server's folder ('' if there is none)."""
    text = read_text(folder, name, limit=64_000) or ""
    return "\n".join(text.strip().splitlines()[-lines:])


def remove_file(folder: Path, name: str) -> None:
    """Remove a file (or link) from a server's folder, if it is there."""
    try:
        dfd = open_dir(folder)
    except ProviderError:
        return
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dfd)
    finally:
        os.close(dfd)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace a JSON file atomically; only its owner can read it (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


__all__ = [
    "SERVICE_ACCOUNT",
    "SYSTEM_DATA_ROOT",
    "Account",
    "append_line",
    "data_home",
    "ensure_account",
    "ensure_server_dir",
    "existing_account",
    "file_lock",
    "make_subdir",
    "open_dir",
    "open_log",
    "read_tail",
    "read_text",
    "remove_file",
    "remove_server_dir",
    "runs_as_root",
    "server_dir",
    "useradd_path",
    "write_json",
    "write_private",
]
