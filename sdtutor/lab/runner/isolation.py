"""Which account learner code runs as, what it can see, and its private copy of the workspace.

Run as root (a CI box, a classroom server), learner code must not run as root: it runs as
`nobody`, with a private read-only copy of the workspace and its own scratch HOME/TMPDIR.
Where the interpreter or sdtutor sit below a folder `nobody` cannot enter (a pyenv under
/root, say), the supervisor gives its tree a private mount namespace in which that folder
is an empty tmpfs with only the needed paths bound back in; SDTUTOR_HOME is hidden under
an empty tmpfs there too. Not root: learner code runs as the user, who owns all of it
anyway. Not Linux: no namespaces and no account switch.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sdtutor.errors import LabError

SKIP_NAMES = frozenset(
    {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache"}
)
MAX_WORKSPACE_BYTES = 64 * 1024 * 1024

# Linux constants (sched.h, mount.h).
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


@dataclass(frozen=True)
class Isolation:
    """How learner processes are started on this machine (decided once per process)."""

    uid: int | None = None
    """Account to run as, or None for this process's own."""
    gid: int | None = None
    user: str = ""
    expose: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(folder to cover with a tmpfs, paths below it bound back) in a private mount namespace."""
    hide: tuple[str, ...] = ()
    """Folders covered by an empty tmpfs in that namespace (SDTUTOR_HOME)."""
    note: str = ""
    """One line for `doctor`: what isolation is in force."""

    @property
    def namespace(self) -> bool:
        """The supervisor sets up a private mount namespace."""
        return bool(self.expose or self.hide)


def can_enter(path: str, uid: int, gid: int, read: bool = False) -> bool:
    """Whether `uid`/`gid` may reach `path` (search every ancestor; read it too if asked)."""
    parts = Path(path).parts
    for depth in range(1, len(parts) + 1):
        current = os.path.join(*parts[:depth])
        try:
            st = os.stat(current)
        except OSError:
            return False
        need = stat.S_IXOTH | (stat.S_IROTH if read and depth == len(parts) else 0)
        if st.st_uid == uid:
            need <<= 6
        elif st.st_gid == gid:
            need <<= 3
        if st.st_mode & need != need:
            return False
    return True


def _needed_paths() -> list[str]:
    """Folders a learner process must read: the interpreter, its libraries, sdtutor."""
    import sdtutor

    paths = {
        sys.base_prefix,
        sys.prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        os.path.dirname(sys.executable),
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        os.path.dirname(os.path.abspath(sdtutor.__file__)),
    }
    real = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    # Keep the outermost of nested paths.
    return [p for p in real if not any(p != q and p.startswith(q + os.sep) for q in real)]


def _blocking_ancestor(path: str, uid: int, gid: int) -> str | None:
    """The outermost folder on the way to `path` that `uid` cannot enter, if any."""
    parts = Path(path).parts
    for depth in range(2, len(parts) + 1):
        current = os.path.join(*parts[:depth])
        if not can_enter(current, uid, gid):
            return current
    return None


def _namespace_works() -> bool:
    """Whether a private mount namespace with a tmpfs can be made here (tried in a child)."""
    probe = (
        "import ctypes,sys\n"
        "c=ctypes.CDLL(None,use_errno=True)\n"
        f"sys.exit(0 if c.unshare({CLONE_NEWNS})==0 and "
        f"c.mount(b'none',b'/',None,{MS_REC | MS_PRIVATE},None)==0 and "
        "c.mount(b'tmpfs',b'/tmp',b'tmpfs',0,b'size=4k')==0 else 1)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", probe], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _state_folder() -> str | None:
    from sdtutor import locations

    home = locations.home()
    return str(home) if home.is_dir() else None


@functools.cache
def _machine() -> tuple[Isolation, bool]:
    """The account and the folders to expose (cached), and whether namespaces work here."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return Isolation(note="learner code runs as this user"), False
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        note = "running as root and no `nobody` account: learner code runs as root"
        return Isolation(note=note), False
    uid, gid = nobody.pw_uid, nobody.pw_gid
    blocked: dict[str, list[str]] = {}
    for path in _needed_paths():
        if can_enter(path, uid, gid, read=True):
            continue
        top = _blocking_ancestor(path, uid, gid)
        if top is None or top == path:
            return Isolation(note=f"`nobody` cannot read {path}: learner code runs as root"), False
        blocked.setdefault(top, []).append(path)
    namespaces = _namespace_works()
    if blocked and not namespaces:
        note = (
            f"`nobody` cannot enter {', '.join(blocked)} and no mount namespace can be made "
            "here: learner code runs as root"
        )
        return Isolation(note=note), False
    expose = tuple((top, tuple(paths)) for top, paths in sorted(blocked.items()))
    return Isolation(uid=uid, gid=gid, user="nobody", expose=expose), namespaces


def current_isolation() -> Isolation:
    """How learner processes run now (SDTUTOR_HOME is looked up on every call)."""
    machine, namespaces = _machine()
    if machine.uid is None:
        return machine
    home = _state_folder() if namespaces else None
    needed = [*_needed_paths(), os.path.realpath(tempfile.gettempdir()), "/tmp"]
    hide: tuple[str, ...] = ()
    if home and not any(p == home or p.startswith(home + os.sep) for p in needed):
        hide = (home,)
    where = " in a private mount namespace" if machine.expose or hide else ""
    return replace(machine, hide=hide, note=f"learner code runs as `nobody`{where}")


def enter_namespace(expose: list[list[object]], hide: list[str]) -> None:
    """Give this process (the supervisor, as root) a private mount namespace; see the module doc."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    def mount(source: bytes, target: str, fstype: bytes | None, flags: int, data: bytes) -> None:
        check(libc.mount(source, target.encode(), fstype, flags, data or None), f"mount {target}")

    check(libc.unshare(CLONE_NEWNS), "unshare")
    mount(b"none", "/", None, MS_REC | MS_PRIVATE, b"")
    for top, paths in expose:
        assert isinstance(top, str) and isinstance(paths, list)
        # Hold each path open before the tmpfs covers it, then bind it back through the fd.
        fds = [(str(p), os.open(str(p), os.O_PATH | os.O_DIRECTORY)) for p in paths]
        mount(b"tmpfs", top, b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=64k")
        old = os.umask(0o022)
        try:
            for path, fd in fds:
                os.makedirs(path, mode=0o755, exist_ok=True)
                mount(f"/proc/self/fd/{fd}".encode(), path, None, MS_BIND | MS_REC, b"")
                os.close(fd)
        finally:
            os.umask(old)
    for path in hide:
        if os.path.isdir(path):
            flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
            mount(b"tmpfs", path, b"tmpfs", flags, b"mode=0000,size=4k")


@dataclass
class Sandbox:
    """A private copy of the workspace and a scratch HOME for one run (or one service)."""

    workdir: Path
    scratch: Path
    _dirs: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        """Delete both folders."""
        for path in self._dirs:
            shutil.rmtree(path, ignore_errors=True)


def prepare(
    workspace: Path, iso: Isolation, files: Mapping[str, str | bytes] | None = None
) -> Sandbox:
    """Copy the workspace (files 0644, folders 0755, symlinks as links) and make a scratch HOME.

    `files` (name -> content) are written into the copy too, replacing workspace files of
    the same name: a lab's own harness placed beside the learner's module, say.
    """
    base = tempfile.gettempdir()
    if iso.uid is not None and not can_enter(base, iso.uid, iso.gid or 0):
        base = "/tmp"
    workdir = Path(tempfile.mkdtemp(prefix="sdtutor-ws-", dir=base))
    scratch = Path(tempfile.mkdtemp(prefix="sdtutor-home-", dir=base))
    box = Sandbox(workdir, scratch, [workdir, scratch])
    try:
        _copy_tree(Path(workspace), workdir)
        for name, content in (files or {}).items():
            target = workdir / safe_relative(name)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            if target.is_symlink() or target.exists():
                target.unlink()
            data = content.encode() if isinstance(content, str) else content
            with open(target, "xb") as f:
                f.write(data)
            os.chmod(target, 0o644)
        os.chmod(workdir, 0o755)
        if iso.uid is not None:
            os.chown(scratch, iso.uid, iso.gid if iso.gid is not None else -1)
    except BaseException:
        box.cleanup()
        raise
    return box


def safe_relative(name: str) -> Path:
    """`name` as a path inside the workspace; ValueError if it would leave it."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{name!r} must be a path inside the workspace")
    return path


def _copy_tree(src: Path, dst: Path) -> None:
    total = 0
    for root, dirs, files in os.walk(src, followlinks=False):
        rel = Path(root).relative_to(src)
        dirs[:] = [d for d in dirs if d not in SKIP_NAMES]
        for name in dirs:
            source, target = Path(root) / name, dst / rel / name
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            else:
                target.mkdir(mode=0o755)
                os.chmod(target, 0o755)
        for name in files:
            source, target = Path(root) / name, dst / rel / name
            st = os.lstat(source)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(source), target)
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # FIFOs, sockets, devices: never opened
            total += st.st_size
            if total > MAX_WORKSPACE_BYTES:
                raise LabError(
                    f"The workspace {src} holds more than "
                    f"{MAX_WORKSPACE_BYTES // 2**20} MB of files; learner code cannot run from it.",
                    "Move large data files out of the workspace.",
                )
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fin, open(target, "xb") as fout:
                shutil.copyfileobj(fin, fout)
            os.chmod(target, 0o644)
