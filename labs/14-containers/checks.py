"""Checks for the containers lab: an image recipe and a Deployment, read as a reviewer would.

No learner code runs. The Dockerfile is parsed by BuildKit's own parser (the `dockerfile`
package), then modelled as stages with their ARG/ENV substitution, the way the builder
sees them; `.dockerignore` is matched with the rules of moby/patternmatcher (anchored at
the context's root, `**`, `!` exceptions, last match wins), never by spelling. The
Deployment is validated against the apps/v1 schema of one Kubernetes version, kept in
starter/k8s/deployment.schema.json (its source and licence are in its `$comment`; the
checker reads the lab's copy, never the workspace's), then judged field by field.

What several checks read (the parsed Dockerfile, the validated manifest, the built
image) is made once per `lab check` with `ctx.once`. Where a Docker engine answers, the
image is also built and its configured user and size are read; where none answers, the
messages say the image was judged from the Dockerfile alone (those checks never pass on
the engine's word alone). Every file is untrusted: bounded in size, and every problem
names its file and line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import posixpath
import re
import shlex
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

LAB_DIR = Path(__file__).resolve().parent
SCHEMA_FILE = LAB_DIR / "starter" / "k8s" / "deployment.schema.json"
K8S_VERSION = "1.36"
DOCKERFILE, DOCKERIGNORE, DEPLOYMENT = "Dockerfile", ".dockerignore", "k8s/deployment.yaml"
MAX_BYTES = {DOCKERFILE: 64_000, DOCKERIGNORE: 64_000, DEPLOYMENT: 256_000}
MAX_CONTEXT_FILES = 5_000
MAX_YAML_NODES = 20_000

# What the service is (starter/app.py): the port it listens on unless PORT says otherwise,
# the paths it answers 200 on, and the files its image needs.
APP_PORT = 8080
LIVE_PATHS = {"/healthz": "answers while the process lives", "/": "the greeting"}
READY_PATH = "/readyz"
APP_FILES = ("app.py", "requirements.txt")
MANIFESTS = re.compile(
    r"(^|/)(requirements[\w.-]*\.txt|constraints[\w.-]*\.txt|pyproject\.toml|poetry\.lock"
    r"|uv\.lock|Pipfile(\.lock)?|pdm\.lock)$"
)
MAX_IMAGE_MB = 300
BUILD_SECONDS = 240
NO_ENGINE = (
    "No Docker engine answered here, so the image was not built: this was judged from "
    "the Dockerfile alone."
)

# ----------------------------------------------------------------- reading files


def _read(ctx: CheckContext, name: str) -> str:
    """A workspace file's text, refused when it is a link, too large or not UTF-8."""
    path = ctx.workspace / name
    parts = Path(name).parts
    for n in range(1, len(parts) + 1):  # k8s/ as well as k8s/deployment.yaml
        if (ctx.workspace.joinpath(*parts[:n])).is_symlink():
            raise Fail(
                f"{'/'.join(parts[:n])} is a symbolic link: make it a regular "
                f"{'file' if n == len(parts) else 'folder'} in your workspace."
            )
    if not path.is_file():
        if path.exists():
            raise Fail(f"{name} is not a regular file: make it one in your workspace.")
        for n in range(1, len(parts)):
            if ctx.workspace.joinpath(*parts[:n]).is_file():
                raise Fail(
                    f"{'/'.join(parts[:n])} is a file, where the folder that holds {name} "
                    "should be."
                )
        ctx.read(name)  # missing: its Fail says how to get the file back
    size = path.stat().st_size
    if size > MAX_BYTES[name]:
        raise Fail(f"{name} is {size:,} bytes; the checks read files up to {MAX_BYTES[name]:,}.")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise Fail(f"{name}:{line} is not UTF-8 text ({exc.reason}).") from None


# ----------------------------------------------------------------- the Dockerfile model

KNOWN = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
}  # fmt: skip
_HEREDOC_MARK = re.compile(r"<<-?\s*([\"']?)[A-Za-z_][A-Za-z0-9_]*\1")
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-+?])?(?P<word>[^}]*)\}"
                  r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")  # fmt: skip


def expand(word: str, scope: dict[str, str], missing: set[str] | None = None) -> str:
    """BuildKit's variable substitution for $V, ${V}, ${V:-x}, ${V-x}, ${V:+x}, ${V+x}.

    Names not in `scope` expand to nothing, as the builder does; they are added to
    `missing` so a message can name them.
    """

    def one(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        op, alt = m.group("op") or "", m.group("word") or ""
        value = scope.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return expand(alt, scope, missing) if unset else str(value)
        if op in (":+", "+"):
            set_ = value is not None and (op == "+" or value != "")
            return expand(alt, scope, missing) if set_ else ""
        if value is None:
            if missing is not None:
                missing.add(name)
            return ""
        return value

    return _VAR.sub(one, word.replace("\\$", "\0")).replace("\0", "$")


def _unquote(text: str) -> str:
    """A shell word's value: quotes removed (ENV A="x y" holds x y)."""
    try:
        parts = shlex.split(text, posix=True)
    except ValueError:
        return text
    return " ".join(parts)


@dataclass
class Instr:
    """One instruction, as BuildKit's parser returned it."""

    cmd: str
    args: tuple[str, ...]
    flags: tuple[str, ...]
    line: int
    original: str
    json: bool
    heredocs: tuple[str, ...] = ()

    def flag(self, name: str) -> str | None:
        """The value of `--name=value`, if the instruction carries it."""
        for f in self.flags:
            if f.startswith(f"--{name}="):
                return f.split("=", 1)[1]
        return None

    @property
    def shell(self) -> str:
        """A RUN's command text, then each heredoc's body on lines of its own
        (`RUN <<EOF` runs the body as a script; its marker is no command)."""
        line = " ".join(self.args)
        if self.heredocs:
            line = _HEREDOC_MARK.sub(" ", line)
        return "\n".join([line, *self.heredocs])

    def short(self) -> str:
        text = " ".join(self.original.split())
        return text if len(text) <= 70 else text[:67] + "..."


@dataclass
class Stage:
    """A FROM and the instructions up to the next one."""

    index: int
    name: str | None
    base: str  # after ARG substitution
    line: int
    parent: Stage | None  # a FROM that names an earlier stage
    instrs: list[Instr] = field(default_factory=list)
    unresolved: set[str] = field(default_factory=set)

    def label(self) -> str:
        return f"stage {self.name!r}" if self.name else f"stage {self.index}"

    def lineage(self) -> list[Stage]:
        """This stage and the stages it is built FROM, oldest first."""
        chain: list[Stage] = []
        stage: Stage | None = self
        while stage is not None and stage not in chain:
            chain.insert(0, stage)
            stage = stage.parent
        return chain


@dataclass
class Dockerfile:
    """The stages of a Dockerfile, with what substitution made of them."""

    stages: list[Stage]
    meta: dict[str, str]
    meta_args: list[Instr] = field(default_factory=list)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, ref: str) -> Stage | None:
        """The earlier stage a FROM or COPY --from names (by name or number), if any."""
        for s in self.stages:
            if (s.name and s.name == ref.lower()) or ref == str(s.index):
                return s
        return None

    def scope(self, stage: Stage, upto: Instr | None = None) -> dict[str, str]:
        """The ARG and ENV values visible in `stage` before `upto` (all of it: None)."""
        scope: dict[str, str] = {}
        for s in stage.lineage():
            for ins in s.instrs:
                if ins is upto:
                    return scope
                if ins.cmd == "ARG":
                    for decl in ins.args:
                        name, eq, default = decl.partition("=")
                        if eq:
                            scope[name] = expand(_unquote(default), scope)
                        elif name in self.meta:
                            scope[name] = self.meta[name]
                elif ins.cmd == "ENV":
                    for name, value in _env_pairs(ins):
                        scope[name] = expand(value, scope)
        return scope


def _env_pairs(ins: Instr) -> list[tuple[str, str]]:
    """ENV's (name, value) pairs, in both the `A=1 B=2` and the `A 1` forms."""
    if len(ins.args) == 2 and "=" not in ins.original.split(None, 2)[1]:
        return [(ins.args[0], _unquote(ins.args[1]))]
    return [(ins.args[i], _unquote(ins.args[i + 1])) for i in range(0, len(ins.args) - 1, 2)]


def parse_dockerfile(text: str) -> Dockerfile:
    """Stages of a Dockerfile's text; Fail naming the line when BuildKit would refuse it."""
    import dockerfile  # BuildKit's parser, compiled: loaded only when a check needs it

    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        raise Fail(
            f"{DOCKERFILE} cannot be parsed: {exc}. `docker build` would refuse it."
        ) from None
    meta: dict[str, str] = {}
    meta_args: list[Instr] = []
    stages: list[Stage] = []
    for c in commands:
        heredocs = tuple(h.content for h in c.heredocs)
        ins = Instr(c.cmd.upper(), tuple(c.value), tuple(c.flags), c.start_line, c.original,
                    c.json, heredocs)  # fmt: skip
        if ins.cmd not in KNOWN:
            raise Fail(
                f"{DOCKERFILE}:{ins.line}: unknown instruction {ins.cmd} "
                f"(`{ins.short()}`). `docker build` would stop there."
            )
        if ins.cmd == "FROM":
            if not ins.args:
                raise Fail(f"{DOCKERFILE}:{ins.line}: FROM names no image.")
            missing: set[str] = set()
            base = expand(ins.args[0], meta, missing)
            name = (
                ins.args[2].lower() if len(ins.args) >= 3 and ins.args[1].upper() == "AS" else None
            )
            parent = next((s for s in stages if s.name and s.name == base.lower()), None)
            stages.append(Stage(len(stages), name, base, ins.line, parent, unresolved=missing))
            continue
        if not stages:
            if ins.cmd == "ARG":
                meta_args.append(ins)
                for decl in ins.args:
                    key, eq, default = decl.partition("=")
                    if eq:  # without a default it stays unset, unless --build-arg sets it
                        meta[key] = expand(_unquote(default), meta)
                continue
            raise Fail(
                f"{DOCKERFILE}:{ins.line}: {ins.cmd} before the first FROM: only ARG may "
                "come before it."
            )
        stages[-1].instrs.append(ins)
    if not stages:
        raise Fail(f"{DOCKERFILE} has no FROM: there is no image to build.")
    return Dockerfile(stages, meta, meta_args)


def _dockerfile(ctx: CheckContext) -> Dockerfile:
    """The workspace's Dockerfile, parsed once per `lab check`."""
    return ctx.once("dockerfile", lambda: parse_dockerfile(_read(ctx, DOCKERFILE)))


# Shell commands of a RUN, split at && ; | and newlines, each a list of words.
_SEPARATORS = {"&&", "||", ";", "|", "&", "\n", "(", ")", "{", "}"}


def commands(shell: str) -> list[list[str]]:
    """The simple commands of a shell text, as words (best effort: a reviewer's reading)."""
    lexer = shlex.shlex(shell.replace("\\\n", " "), posix=True, punctuation_chars=";&|()\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""  # a comment runs to the end of its line, not past it (below)
    out: list[list[str]] = [[]]
    comment = False
    try:
        for token in lexer:
            if token in _SEPARATORS or set(token) <= set(";&|()\n"):
                comment = comment and "\n" not in token
                out.append([])
            elif comment or token.startswith("#"):
                comment = True
            else:
                out[-1].append(token)
    except ValueError:  # an unclosed quote: fall back to plain words
        out = [line.split("#", 1)[0].split() for line in re.split(r"&&|\|\||[;|\n]", shell)]
    cleaned = []
    for words in out:
        while words and (re.fullmatch(r"\w+=\S*", words[0]) or words[0] in ("sudo", "env")):
            words = words[1:]  # VAR=x cmd, sudo cmd
        if words:
            cleaned.append(words)
    return cleaned


BUILD_PACKAGES = {
    "build-essential", "gcc", "g++", "cc", "clang", "make", "cmake", "autoconf", "automake",
    "libtool", "pkg-config", "pkgconf", "build-base", "musl-dev", "libc-dev", "libc6-dev",
    "cargo", "rust", "rustc", "gfortran", "golang", "go",
}  # fmt: skip
INSTALLERS = {
    "apt-get": "install", "apt": "install", "apk": "add", "yum": "install", "dnf": "install",
    "microdnf": "install", "zypper": "install",
}  # fmt: skip
FULL_IMAGES = {"python", "node", "ruby", "golang", "rust", "gcc", "buildpack-deps", "openjdk"}


def build_tools(ins: Instr) -> list[str]:
    """The compilers and -dev packages a RUN installs with the system's package manager."""
    found: list[str] = []
    for words in commands(ins.shell):
        tool = posixpath.basename(words[0])
        if tool not in INSTALLERS or INSTALLERS[tool] not in words[1:]:
            continue
        after = words[words.index(INSTALLERS[tool], 1) + 1 :]
        for word in after:
            pkg = re.split(r"[=<>~]", word, maxsplit=1)[0]
            if word.startswith("-") or not pkg:
                continue
            if (
                pkg in BUILD_PACKAGES
                or re.search(r"-(dev|devel)$", pkg)
                or re.match(r"(gcc|g\+\+|clang)-[\d.]+$", pkg)
            ):
                found.append(pkg)
    return found


@dataclass
class ImageRef:
    """An image reference: registry/name, tag and digest."""

    text: str
    repo: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        rest, _, digest = text.partition("@")
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        tag = rest[colon + 1 :] if colon > slash else None
        repo = rest[:colon] if colon > slash else rest
        return cls(text, repo, tag, digest or None)

    @property
    def short_name(self) -> str:
        """`python` for docker.io/library/python."""
        return self.repo.rsplit("/", 1)[-1].lower()

    def unpinned(self) -> str | None:
        """Why this reference may name different bytes tomorrow (None: it is pinned)."""
        if self.digest:
            if re.fullmatch(r"sha256:[0-9a-f]{64}", self.digest):
                return None
            return f"its digest {self.digest!r} is not a sha256 digest"
        if "distroless" in self.repo.lower():  # published as latest, nonroot, debug only
            return (
                f":{self.tag or 'latest'} moves with every rebuild, and distroless images "
                f"have no version tags: pin it by digest ({self.short_name}:"
                f"{self.tag or 'nonroot'}@sha256:...)"
            )
        if not self.tag:
            return "it has no tag, so it means :latest, whatever was pushed last"
        if self.tag == "latest":
            return ":latest is whatever was pushed last"
        if re.search(r"\d+\.\d+", self.tag) or re.search(r"(^|\D)20\d{6}(\D|$)", self.tag):
            return None
        if re.match(r"\d+($|\D)", self.tag):
            return f":{self.tag} follows every release of that major version"
        return f":{self.tag} names no version, so it moves with every release"


# ----------------------------------------------------------------- .dockerignore


def _go_clean(path: str) -> str:
    """Go's filepath.Clean for slash paths."""
    cleaned = posixpath.normpath(path) if path else "."
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


@dataclass
class IgnoreRule:
    """One .dockerignore line, compiled the way moby/patternmatcher compiles it."""

    line: int
    text: str
    pattern: str
    exclusion: bool
    kind: str = "exact"
    regex: re.Pattern[str] | None = None

    @classmethod
    def compile(cls, line: int, text: str, raw: str) -> IgnoreRule:
        exclusion = raw.startswith("!")
        if exclusion:
            raw = raw[1:].strip()
        pattern = _go_clean(raw)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
        rule = cls(line, text, _go_clean(pattern), exclusion)
        rule._build()
        return rule

    def _build(self) -> None:
        out, kind, p, i = "^", "exact", self.pattern, 0
        first = True
        while i < len(p):
            ch = p[i]
            if ch == "*":
                if i + 1 < len(p) and p[i + 1] == "*":
                    i += 2
                    if i < len(p) and p[i] == "/":
                        i += 1
                    if i >= len(p):
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            out += ".*"
                            kind = "regex"
                    else:
                        out += "(.*/)?"
                        kind = "regex"
                    if first:
                        kind = "suffix"
                    first = False
                    continue
                out += "[^/]*"
                kind = "regex"
            elif ch == "?":
                out += "[^/]"
                kind = "regex"
            elif ch in ".+()|{}$":
                out += "\\" + ch
            elif ch == "\\":
                if i + 1 < len(p):
                    out += re.escape(p[i + 1])
                    i += 1
                    kind = "regex"
                else:
                    out += "\\\\"
            elif ch in "[]":
                out += ch
                kind = "regex"
            else:
                out += ch
            first = False
            i += 1
        self.kind = kind
        if kind == "regex":
            try:
                self.regex = re.compile(out + "$")
            except re.error as exc:
                raise Fail(
                    f"{DOCKERIGNORE}:{self.line}: `{self.text}` is not a valid pattern "
                    f"({exc}); `docker build` would refuse it."
                ) from None

    def matches(self, path: str) -> bool:
        p = self.pattern
        if self.kind == "exact":
            return path == p
        if self.kind == "prefix":
            return path.startswith(p[:-2])
        if self.kind == "suffix":
            suffix = p[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return bool(self.regex and self.regex.match(path))


@dataclass
class Ignore:
    """A .dockerignore: which context paths `docker build` leaves out."""

    rules: list[IgnoreRule]
    source: str

    @classmethod
    def parse(cls, text: str, source: str = DOCKERIGNORE) -> Ignore:
        rules = []
        for n, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
            if raw.startswith("#"):
                continue
            line = raw.strip()
            if not line:
                continue
            if line == "!":
                raise Fail(f"{source}:{n}: a lone `!` is not a pattern; Docker refuses it.")
            rules.append(IgnoreRule.compile(n, line, line))
        return cls(rules, source)

    def excluded_by(self, path: str) -> IgnoreRule | None:
        """The rule that leaves `path` out (None: it is sent), as MatchesOrParentMatches."""
        path = _go_clean(path)
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched: IgnoreRule | None = None
        for rule in self.rules:
            if rule.exclusion != (matched is not None):
                continue
            hit = rule.matches(path)
            if not hit and parents:
                hit = any(rule.matches("/".join(parents[: i + 1])) for i in range(len(parents)))
            if hit:
                matched = None if rule.exclusion else rule
        return matched


def _ignore(ctx: CheckContext) -> Ignore | None:
    """The learner's ignore file (Dockerfile.dockerignore wins, as BuildKit reads it)."""
    for name in (f"{DOCKERFILE}.dockerignore", DOCKERIGNORE):
        path = ctx.workspace / name
        if path.is_file() and not path.is_symlink():
            if path.stat().st_size > MAX_BYTES[DOCKERIGNORE]:
                raise Fail(f"{name} is larger than {MAX_BYTES[DOCKERIGNORE]:,} bytes.")
            text = path.read_bytes().decode("utf-8", errors="replace")
            return Ignore.parse(text, name)
    return None


def context_files(ctx: CheckContext, ignore: Ignore | None) -> list[str]:
    """The workspace files `docker build .` would send (relative paths, bounded)."""
    files: list[str] = []
    for root, dirs, names in os.walk(ctx.workspace):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(root, name), ctx.workspace).replace(os.sep, "/")
            if ignore is None or ignore.excluded_by(rel) is None:
                files.append(rel)
            if len(files) >= MAX_CONTEXT_FILES:
                return files
    return files


# What a real project folder holds beside the code, and why it must stay out.
KEEP_OUT = [
    (".git/HEAD", "Git history", "every past commit, and any secret ever committed"),
    (".env", "local secrets", "database passwords and API keys"),
    (".venv/bin/python", "a virtualenv", "built for your machine, not the image"),
    ("venv/bin/python", "a virtualenv", "built for your machine, not the image"),
    ("__pycache__/app.cpython-312.pyc", "bytecode cache", "changes on every run"),
    ("orders/__pycache__/db.cpython-312.pyc", "bytecode cache", "in a subfolder"),
    (".pytest_cache/README.md", "test cache", "changes on every test run"),
]


# ----------------------------------------------------------------- copies and installs


def _go_glob(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match as a regex over slash paths (what COPY sources use)."""
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(ch)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def copied_files(ins: Instr, scope: dict[str, str], context: list[str]) -> list[str]:
    """The context files a COPY or ADD (not --from) brings in."""
    if ins.flag("from") is not None or len(ins.args) < 2:
        return []
    brought: list[str] = []
    for raw in ins.args[:-1]:
        src = _go_clean(expand(raw, scope)).lstrip("/")
        if src in ("", "."):
            return list(context)
        try:
            glob = _go_glob(src)
        except re.error:
            continue
        for f in context:
            parts = f.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(p == src or glob.match(p) for p in prefixes):
                brought.append(f)
    return sorted(set(brought))


_INSTALL = re.compile(
    r"\b(pip3?|uv|poetry|pipenv|pdm)\b[^\n&;|]*?\b(install|sync|wheel)\b"
    r"|\bpython3?(\.\d+)?\s+-m\s+pip\s+(install|wheel)\b"
)


def installs_dependencies(ins: Instr) -> bool:
    """Whether a RUN installs Python dependencies (pip, uv, poetry, pipenv, pdm)."""
    return ins.cmd == "RUN" and bool(_INSTALL.search(ins.shell))


# ----------------------------------------------------------------- secrets

SECRET_WORDS = {
    "TOKEN", "PASSWORD", "PASSWD", "PASS", "SECRET", "KEY", "APIKEY", "CREDENTIAL",
    "CREDENTIALS", "PRIVATEKEY", "ACCESSKEY", "PAT", "AUTHTOKEN",
}  # fmt: skip
NOT_SECRET_SUFFIXES = ("FILE", "PATH", "DIR", "FILENAME", "URL_FILE")
NOT_SECRET_WORDS = {"PUBLIC", "PUB"}  # PUBLIC_KEY, SSH_PUB_KEY: published on purpose
CHECKSUM_WORDS = {"SHA", "SHA1", "SHA256", "SHA512", "MD5", "CHECKSUM", "DIGEST", "HASH", "GPG"}
SECRET_VALUES = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), "a GitHub token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), "a GitHub token"),
    (re.compile(r"\bnpm_[A-Za-z0-9]{30,}"), "an npm token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), "a GitLab token"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\b[sr]k_(live|test)_[A-Za-z0-9]{10,}"), "a Stripe key"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "an API key"),
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@$]+@"), "a URL with a password"),
]


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.upper()) if w]


def secret_name(name: str) -> bool:
    """Whether a variable's name says it holds a secret (API_KEY, NPM_TOKEN, dbPassword)."""
    words = _words(name)
    if (
        not words
        or words[-1] in NOT_SECRET_SUFFIXES
        or set(words) & (CHECKSUM_WORDS | NOT_SECRET_WORDS)
    ):
        return False
    joined = "".join(words)
    return bool(set(words) & SECRET_WORDS) or joined in SECRET_WORDS


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def secret_value(name: str, value: str) -> str | None:
    """What a value looks like when it looks like a credential (None: it does not)."""
    for pattern, what in SECRET_VALUES:
        if pattern.search(value):
            return what
    if set(_words(name)) & (CHECKSUM_WORDS | NOT_SECRET_WORDS):
        return None  # a checksum or a public key is long and random, and no secret
    for token in re.split(r"[\s:=,;@]+", value):
        if (
            len(token) >= 24
            and re.fullmatch(r"[A-Za-z0-9+/_-]+=*", token)
            and re.search(r"\d", token)
            and re.search(r"[A-Za-z]", token)
            and _entropy(token) > 3.8
        ):
            return "a long random string, the shape of a key or token"
    return None


# ----------------------------------------------------------------- users


# Options of useradd and adduser (shadow-utils, Debian's adduser, BusyBox) that take a value.
_VALUE_OPTIONS = {
    "-b", "-c", "-d", "-e", "-f", "-g", "-G", "-h", "-k", "-K", "-p", "-P", "-R", "-s", "-u",
    "-Z", "--base-dir", "--comment", "--conf", "--expiredate", "--firstgid", "--firstuid",
    "--gecos", "--gid", "--groups", "--home", "--home-dir", "--inactive", "--ingroup", "--key",
    "--lastgid", "--lastuid", "--password", "--prefix", "--root", "--selinux-user", "--shell",
    "--skel", "--uid",
}  # fmt: skip


def created_user(words: list[str]) -> str | None:
    """The login a useradd or adduser command creates (None: it creates no user).

    useradd takes the login last (`useradd -g app -m appuser` creates appuser, not app);
    adduser takes it first (BusyBox's `adduser -D app app` creates app in group app).
    """
    tool = posixpath.basename(words[0])
    if tool not in ("useradd", "adduser"):
        return None
    positional: list[str] = []
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
        elif word.startswith("-"):  # -u 10001, -DHs /sbin/nologin; --uid=10001 holds its own
            skip = word in _VALUE_OPTIONS or (
                bool(re.fullmatch(r"-[A-Za-z]+", word)) and f"-{word[-1]}" in _VALUE_OPTIONS
            )
        elif not word.startswith("/"):
            positional.append(word)
    if not positional or (tool == "adduser" and "--group" in words and "--system" not in words):
        return None  # Debian's `adduser --group NAME` makes a group only
    return positional[-1] if tool == "useradd" else positional[0]


# Base images that hold users of their own: their names (beyond root), and the user the
# image runs as when no USER says otherwise ("" for root).
def base_users(base: str) -> tuple[dict[str, str], str]:
    """({name: uid} of the users a base image holds, its default user; "" is root)."""
    ref = ImageRef.parse(base)
    if ref.repo.lower() == "scratch":
        return {}, ""
    if "distroless" in ref.repo.lower():  # gcr.io/distroless/*: :nonroot tags run as 65532
        default = "65532" if "nonroot" in (ref.tag or "") else ""
        return {"nonroot": "65532", "nobody": "65534"}, default
    return {"nobody": "65534"}, ""  # Debian, Ubuntu, Alpine and the images built on them


def users_created(stage: Stage, dockerfile: Dockerfile) -> list[str]:
    """The logins useradd or adduser create in a stage and the stages it is built FROM."""
    found: list[str] = []
    for s in stage.lineage():
        for ins in s.instrs:
            if ins.cmd == "RUN":
                scope = dockerfile.scope(stage, ins)
                for words in commands(ins.shell):
                    login = created_user([expand(w, scope) for w in words])
                    if login and login not in found:
                        found.append(login)
    return found


def _user_created(stage: Stage, name: str, dockerfile: Dockerfile) -> str | None:
    """Where a user name is created in the final image (None: nowhere we can see)."""
    lineage = stage.lineage()
    base = lineage[0].base
    if name in base_users(base)[0]:
        return f"{base} has a {name} user, UID {base_users(base)[0][name]}"
    for s in lineage:
        for ins in s.instrs:
            if ins.cmd == "RUN":
                scope = dockerfile.scope(stage, ins)  # ARG and ENV reach the RUN's shell
                for words in commands(ins.shell):
                    if created_user([expand(w, scope) for w in words]) == name:
                        return f"{DOCKERFILE}:{ins.line} creates it"
            if ins.cmd in ("COPY", "ADD") and ins.flag("from") and "/etc/passwd" in ins.args[:-1]:
                src = dockerfile.stage(ins.flag("from") or "")
                if src and _user_created(src, name, dockerfile):
                    return f"{DOCKERFILE}:{ins.line} copies /etc/passwd from {src.label()}"
    return None


@dataclass
class FinalUser:
    """The user the final stage runs as, and where that comes from."""

    user: str  # as written after substitution; the base image's default when no USER
    ins: Instr | None  # the last USER (None: the base image's default user)
    uid: str  # the user part of user:group ("" is root)

    @property
    def numeric(self) -> bool:
        return self.uid.isdigit()


def final_user(dockerfile: Dockerfile) -> FinalUser:
    last: Instr | None = None
    for s in dockerfile.final.lineage():
        for ins in s.instrs:
            if ins.cmd == "USER":
                last = ins
    if last is None:
        default = base_users(dockerfile.final.lineage()[0].base)[1]
        return FinalUser(default, None, default)
    user = expand(last.args[0] if last.args else "", dockerfile.scope(dockerfile.final, last))
    return FinalUser(user, last, user.split(":", 1)[0])


# ----------------------------------------------------------------- the engine


def built_image(ctx: CheckContext) -> tuple[dict[str, Any] | None, str]:
    """(the built image's attributes, a note) where a Docker engine answers; else
    (None, why it was not built). Built once per `lab check`, for every check that asks."""
    return ctx.once("image", lambda: _built_image(ctx))


def _built_image(ctx: CheckContext) -> tuple[dict[str, Any] | None, str]:
    if os.environ.get("SDTUTOR_LAB_DOCKER_BUILD", "1") == "0":
        return None, "SDTUTOR_LAB_DOCKER_BUILD=0: " + NO_ENGINE
    client = _engine()
    if client is None:
        return None, NO_ENGINE
    digest = hashlib.sha256()
    for rel in context_files(ctx, _ignore(ctx)):
        digest.update(rel.encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update((ctx.workspace / rel).read_bytes())
    return _build(ctx, client, digest.hexdigest()[:12])


def _engine() -> Any:
    """A docker client whose engine answers a ping (None: no engine)."""
    try:
        import docker  # the SDK: loaded only where an image may be built

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception:
        return None
    return client


def _build(ctx: CheckContext, client: Any, key: str) -> tuple[dict[str, Any] | None, str]:
    tag = f"sdtutor-lab-containers:{key}"
    cli = shutil.which("docker")
    budget = BUILD_SECONDS
    remaining = ctx.remaining()
    if remaining is not None:
        budget = int(min(budget, remaining - 10))
    if budget < 30:
        return None, "Too little time was left to build the image: " + NO_ENGINE
    log = ""
    try:
        if cli:  # the CLI builds with BuildKit, which RUN --mount and heredocs need
            done = subprocess.run(
                [cli, "build", "--quiet", "--label", "sdtutor.lab=containers", "-t", tag, "."],
                cwd=ctx.workspace, capture_output=True, text=True, timeout=budget, check=False,
            )  # fmt: skip
            ok, log = done.returncode == 0, (done.stderr or done.stdout)[-1500:]
        else:
            client.images.build(path=str(ctx.workspace), tag=tag, rm=True, forcerm=True,
                                labels={"sdtutor.lab": "containers"}, timeout=budget)  # fmt: skip
            ok = True
    except Exception as exc:  # no network, a timeout, a refused Dockerfile
        ok, log = False, str(exc)[-1500:]
    if not ok:
        note = (
            "Docker answered, but the image did not build (below), so this was judged from "
            "the Dockerfile alone. Run `docker build .` in your workspace to see why."
        )
        return None, note + "\n" + log
    try:
        image = client.images.get(tag)
        attrs = dict(image.attrs)
        with contextlib.suppress(Exception):
            client.images.remove(tag, noprune=True)  # keep the layers: the next build is quick
    except Exception as exc:
        return None, f"The image built but could not be read ({exc}): " + NO_ENGINE
    return attrs, "built with Docker"


# ----------------------------------------------------------------- Dockerfile checks


@check("multi-stage")
def multi_stage(ctx: CheckContext) -> Pass:
    df = _dockerfile(ctx)
    final = df.final
    lineage = final.lineage()
    tools = [
        (ins, pkgs)
        for s in lineage
        for ins in s.instrs
        if ins.cmd == "RUN" and (pkgs := build_tools(ins))
    ]
    shown = [f"{DOCKERFILE}:{ins.line}  {ins.short()}" for ins, _ in tools]
    if len(df.stages) == 1:
        found = sorted({p for _, pkgs in tools for p in pkgs})
        what = (
            f"It installs {', '.join(found)}, which stay in the image you ship"
            if found
            else "Whatever it needs only to build stays in the image you ship"
        )
        raise Fail(
            f"{DOCKERFILE} has one stage, so the image that runs is the image that built. "
            f"{what}: more to pull, more to scan, more for an attacker to use. Build in a "
            "first stage (FROM ... AS build) and start the final stage afresh, copying only "
            "the result with COPY --from=build.",
            *(
                [Evidence("build tools in the final image", "text", "\n".join(shown))]
                if shown
                else []
            ),
        )
    if tools:
        via = (
            f" ({final.label()} is built FROM {lineage[0].label()}, so it inherits them)"
            if len(lineage) > 1
            else ""
        )
        raise Fail(
            f"The final stage still installs build tools{via}: "
            f"{', '.join(sorted({p for _, pkgs in tools for p in pkgs}))}. Compilers and "
            "headers belong in the build stage; the final stage needs only runtime "
            "libraries (libpq5, not libpq-dev).",
            Evidence("build tools in the final image", "text", "\n".join(shown)),
        )
    ref = ImageRef.parse(lineage[0].base)
    variant = ref.tag or ""
    if ref.short_name in FULL_IMAGES and not re.search(r"slim|alpine|distroless", variant):
        raise Fail(
            f"The final stage starts FROM {lineage[0].base} ({DOCKERFILE}:{lineage[0].line}): "
            f"the full {ref.short_name} image ships compilers and headers of its own. "
            "Start the final stage from a -slim (or alpine) variant."
        )
    copies = [
        ins
        for s in lineage
        for ins in s.instrs
        if ins.cmd in ("COPY", "ADD") and (src := ins.flag("from")) is not None and df.stage(src)
    ]
    if not copies and len(lineage) == 1:
        raise Fail(
            f"{DOCKERFILE} has {len(df.stages)} stages, but the final one takes nothing from "
            "the others (no COPY --from=...): the build stage's work never reaches the "
            "image. Copy what it built (a virtualenv, wheels) into the final stage."
        )
    attrs, note = built_image(ctx)
    if attrs is not None:
        size_mb = int(attrs.get("Size", 0)) / 1e6
        if size_mb > MAX_IMAGE_MB:
            raise Fail(
                f"Built with Docker, the image is {size_mb:.0f} MB; a slim Python image with "
                f"this service is well under {MAX_IMAGE_MB} MB. Look for what the final stage "
                "carries that only the build needed (`docker history` lists each layer)."
            )
        note = f"Built with Docker: {size_mb:.0f} MB."
    return Pass(
        f"{len(df.stages)} stages; the final one ({final.label()}, from {lineage[0].base}) "
        f"installs no build tools and copies what it needs with COPY --from. {note}"
    )


@check("base-pinned")
def base_pinned(ctx: CheckContext) -> Pass:
    df = _dockerfile(ctx)
    rows: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for s in df.stages:
        if s.parent is not None:
            rows.append((f"{DOCKERFILE}:{s.line}", s.base, f"the stage {s.parent.label()}"))
            continue
        if s.base.lower() == "scratch":
            rows.append((f"{DOCKERFILE}:{s.line}", "scratch", "empty, nothing to pin"))
            continue
        why = ImageRef.parse(s.base).unpinned()
        if s.unresolved:
            names = ", ".join(sorted(s.unresolved))
            why = f"ARG {names} has no default before the first FROM: the tag is up to --build-arg"
        rows.append((f"{DOCKERFILE}:{s.line}", s.base or "(empty)", why or "pinned"))
        if why:
            problems.append(f"{DOCKERFILE}:{s.line} FROM {s.base or '(empty)'}: {why}")
    for s in df.stages:
        for ins in s.instrs:
            src = ins.flag("from") if ins.cmd in ("COPY", "ADD") else None
            if src is None or df.stage(src):
                continue
            ref = expand(src, df.meta)
            why = ImageRef.parse(ref).unpinned()
            rows.append((f"{DOCKERFILE}:{ins.line}", f"COPY --from={ref}", why or "pinned"))
            if why:
                problems.append(f"{DOCKERFILE}:{ins.line} COPY --from={ref}: {why}")
    table = Evidence("base images", "table", (["where", "image", "verdict"], rows))
    if problems:
        raise Fail(
            "A base image is not pinned, so the same Dockerfile builds a different image "
            "next month: " + "; ".join(problems) + ". Name an exact version "
            "(python:3.12.7-slim-bookworm), or a digest (@sha256:...) for byte-identical builds.",
            table,
        )
    digests = sum(1 for s in df.stages if ImageRef.parse(s.base).digest)
    extra = (
        ""
        if digests
        else " A digest (@sha256:...) would make rebuilds byte-identical; a bot can bump it."
    )
    return Pass(f"Every base image names a version.{extra}", table)


@check("non-root")
def non_root(ctx: CheckContext) -> Pass:
    df = _dockerfile(ctx)
    user = final_user(df)
    base = df.final.lineage()[0].base
    if user.ins is None and not user.uid:
        digest_only = "distroless" in base and ImageRef.parse(base).tag is None
        raise Fail(
            f"The final stage has no USER, so the service runs as its base image's user: "
            f"root for {base}. A process that escapes the container as root is root on the "
            "host. Create a user (useradd) and switch to it with USER, by number."
            + (
                " (If that digest is a :nonroot image, keep the tag beside it, "
                "name:nonroot@sha256:..., or say USER 65532.)"
                if digest_only
                else ""
            )
        )
    where = f"{DOCKERFILE}:{user.ins.line}" if user.ins else f"the base image {base}"
    if user.ins is not None and not user.uid:
        missing: set[str] = set()
        expand(user.ins.args[0] if user.ins.args else "", df.scope(df.final, user.ins), missing)
        global_only = sorted(missing & set(df.meta))
        why = (
            f"ARG {global_only[0]} is declared before the first FROM, and such an ARG is "
            f"seen inside a stage only once the stage declares it again (`ARG {global_only[0]}`)"
            if global_only
            else "an ARG or ENV without a value?"
        )
        raise Fail(
            f"{where} `{user.ins.short()}` expands to nothing ({why}), so the container "
            "runs as root."
        )
    if user.uid in ("root", "0") or re.fullmatch(r"0+", user.uid):
        raise Fail(
            f"The last USER of the final stage is {user.user} ({where}): the service runs as "
            "root. Do the work that needs root first, then switch to your user as the last "
            "USER."
        )
    tail = ""
    if user.ins is None:
        how = f"UID {user.uid}: it sets no USER, and {base} is configured with that user"
    elif not user.numeric:
        created = _user_created(df.final, user.uid, df)
        if created is None:
            made = users_created(df.final, df)
            raise Fail(
                f"{where} USER {user.user}: no user named {user.uid} is created in the final "
                "stage"
                + (f" (it creates {', '.join(made)})" if made else "")
                + ", and its base image has none: the container would not start. Create "
                "it there (useradd, adduser) or give a number."
            )
        how = f"{user.uid}, set at {where} ({created})"
        tail = " A number would let Kubernetes check runAsNonRoot."
    else:
        how = f"UID {user.uid}, set at {where}"
    attrs, note = built_image(ctx)
    if attrs is not None:
        built = str((attrs.get("Config") or {}).get("User") or "")
        if built.split(":", 1)[0] in ("", "root", "0"):
            raise Fail(
                f"Built with Docker, the image's configured user is {built or '(none): root'}, "
                f"although {where} says USER {user.user}. Look at what the final stage "
                "inherits and where its USER comes from."
            )
        note = f"Built with Docker: its configured user is {built}."
    return Pass(f"The final stage runs as {how}.{tail} {note}")


@check("no-secrets")
def no_secrets(ctx: CheckContext) -> Pass:
    df = _dockerfile(ctx)
    found: list[tuple[str, str, str]] = []

    def look(ins: Instr, name: str, value: str) -> None:
        where = f"{DOCKERFILE}:{ins.line}"
        if secret_name(name):
            found.append((where, f"{ins.cmd} {name}", "its name says it holds a secret"))
        elif value and (what := secret_value(name, value)):
            found.append((where, f"{ins.cmd} {name}", f"its value looks like {what}"))

    for ins in df.meta_args + [i for s in df.stages for i in s.instrs]:
        if ins.cmd == "ARG":
            for decl in ins.args:
                name, _, value = decl.partition("=")
                look(ins, name, _unquote(value))
        elif ins.cmd == "ENV":
            for name, value in _env_pairs(ins):
                look(ins, name, value)
    if found:
        table = Evidence("secrets in the image recipe", "table", (["where", "what", "why"], found))
        raise Fail(
            f"{found[0][0]} {found[0][1]}: {found[0][2]}. ENV values are stored in the "
            "image's configuration and ARG values in its build history: anyone who can pull "
            "the image reads them (docker history, docker inspect). Pass build-time secrets "
            "with RUN --mount=type=secret, and give the running service its secrets from a "
            "Kubernetes Secret.",
            table,
        )
    names = sorted(
        {
            i.cmd
            for i in df.meta_args + [i for s in df.stages for i in s.instrs]
            if i.cmd in ("ARG", "ENV")
        }
    )
    seen = " and ".join(names) if names else "ARG or ENV"
    return Pass(f"No {seen} holds a credential, by name or by value.")


@check("cache-friendly")
def cache_friendly(ctx: CheckContext) -> Pass:
    df = _dockerfile(ctx)
    ignore = _ignore(ctx)
    context = context_files(ctx, ignore)
    # The stages whose work reaches the final image: its lineage and what it copies from.
    wanted: list[Stage] = []
    todo = [df.final]
    while todo:
        stage = todo.pop()
        for s in stage.lineage():
            if s in wanted:
                continue
            wanted.append(s)
            for ins in s.instrs:
                src = ins.flag("from") if ins.cmd in ("COPY", "ADD") else None
                if src and (other := df.stage(src)) and other not in wanted:
                    todo.append(other)
    install_seen = False
    for stage in sorted(wanted, key=lambda s: s.index):
        brought: dict[str, Instr] = {}
        for s in stage.lineage():
            for ins in s.instrs:
                if ins.cmd in ("COPY", "ADD"):
                    scope = df.scope(stage, ins)
                    for f in copied_files(ins, scope, context):
                        brought.setdefault(f, ins)
                    continue
                if not installs_dependencies(ins):
                    continue
                manifests = [f for f in brought if MANIFESTS.search(f)]
                mounted = any(
                    "type=bind" in f or "source=" in f or "src=" in f
                    for f in ins.flags
                    if f.startswith("--mount=")
                )
                if not manifests and not mounted:
                    continue
                install_seen = True
                early = sorted(
                    (f for f in brought if not MANIFESTS.search(f)),
                    key=lambda f: (not f.endswith(".py"), f),
                )
                if early:
                    first = brought[early[0]]
                    shown = ", ".join(early[:4]) + (
                        f" and {len(early) - 4} more" if len(early) > 4 else ""
                    )
                    raise Fail(
                        f"{DOCKERFILE}:{first.line} `{first.short()}` copies {shown} before "
                        f"{DOCKERFILE}:{ins.line} installs the dependencies. The builder reuses "
                        "cached layers until the first one whose input changed, so every edit "
                        "to app.py reinstalls every package. Copy requirements.txt alone, "
                        "install, and copy the rest after.",
                        Evidence(
                            "in build order",
                            "text",
                            f"{DOCKERFILE}:{first.line}  {first.short()}\n"
                            f"{DOCKERFILE}:{ins.line}  {ins.short()}",
                        ),
                    )
                break
    if not install_seen:
        raise Fail(
            "No RUN installs the dependencies from requirements.txt in a stage that reaches "
            "the final image (pip install -r requirements.txt, after copying it in), so the "
            "service would start without psycopg."
        )
    return Pass(
        "requirements.txt is copied and installed before any other source file: editing "
        "app.py rebuilds from the COPY of the code, with the installed packages cached."
    )


@check("dockerignore")
def dockerignore(ctx: CheckContext) -> Pass:
    ignore = _ignore(ctx)
    if ignore is None:
        raise Fail(
            f"There is no {DOCKERIGNORE}: `docker build .` sends the whole folder to the "
            "builder, .git and .env included, and COPY . . puts them in the image."
        )
    rows: list[tuple[str, str, str]] = []
    sent: list[tuple[str, str]] = []
    for path, what, why in KEEP_OUT:
        rule = ignore.excluded_by(path)
        rows.append((path, what, f"line {rule.line}: {rule.text}" if rule else "SENT"))
        if rule is None:
            sent.append((path, f"{what}: {why}"))
    needed = []
    for name in APP_FILES:
        rule = ignore.excluded_by(name)
        if rule is not None:
            needed.append(f"{name} ({ignore.source}:{rule.line} `{rule.text}`)")
            rows.append((name, "needed by the image", f"line {rule.line}: {rule.text}"))
    table = Evidence(
        "paths of a real project folder, as Docker would treat them",
        "table",
        (["path", "what it is", f"left out by {ignore.source}"], rows),
    )
    if sent:
        first, why = sent[0]
        sent_paths = {p for p, _ in sent}
        anchored = (
            "orders/__pycache__/db.cpython-312.pyc" in sent_paths
            and "__pycache__/app.cpython-312.pyc" not in sent_paths
        )
        tip = (
            " Patterns are matched from the root of the context, not in every folder as "
            "in .gitignore: use **/ to reach subfolders."
            if anchored
            else ""
        )
        raise Fail(
            f"{ignore.source} lets {len(sent)} of {len(KEEP_OUT)} paths into the build context, "
            f"first {first} ({why}). Whatever is in the context can land in the image "
            f"through COPY . . and busts the build cache when it changes.{tip}",
            table,
        )
    if needed:
        raise Fail(
            f"{ignore.source} leaves out {', '.join(needed)}, which the image needs: COPY "
            "would fail. Add an exception (!app.py) or narrow the pattern.",
            table,
        )
    return Pass(
        f"{ignore.source} keeps Git history, .env, virtualenvs and caches out, nested ones "
        "too, and lets app.py and requirements.txt in.",
        table,
    )


# ----------------------------------------------------------------- the Deployment


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python objects)."""


@dataclass
class Manifest:
    """The Deployment from deployment.yaml, and where each field is written."""

    data: dict[str, Any]
    lines: dict[tuple[Any, ...], int]
    errors: list[str]

    def line(self, *path: Any) -> str:
        """`deployment.yaml:N` for the nearest written field on `path`."""
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in self.lines:
                return f"{DEPLOYMENT}:{self.lines[tuple(path[:n])]}"
        return DEPLOYMENT


def _walk(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int],
          budget: list[int], depth: int = 0) -> None:  # fmt: skip
    budget[0] -= 1
    if budget[0] < 0 or depth > 60:
        raise Fail(f"{DEPLOYMENT} is too large or too deeply nested to be a Deployment.")
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
            lines.setdefault((*path, k), key.start_mark.line + 1)
            _walk(value, (*path, k), lines, budget, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, budget, depth + 1)


_SCHEMA: dict[str, Any] = {}


def _validator() -> Any:
    import jsonschema  # loaded only for the Deployment checks

    if not _SCHEMA:
        _SCHEMA.update(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    return jsonschema.Draft202012Validator(_SCHEMA)


def load_manifest(ctx: CheckContext) -> Manifest:
    """The Deployment in deployment.yaml, validated; Fail when there is none to judge."""
    text = _read(ctx, DEPLOYMENT)
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{DEPLOYMENT}:{mark.line + 1}" if mark else DEPLOYMENT
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise Fail(f"{where} is not valid YAML: {problem}.") from None
    budget = [MAX_YAML_NODES]
    for node in nodes:
        if node is None:
            continue
        lines: dict[tuple[Any, ...], int] = {}
        _walk(node, (), lines, budget)
        loader = _Loader("")
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise Fail(f"{DEPLOYMENT} cannot be read: {exc}.") from None
        finally:
            loader.dispose()
        if isinstance(data, dict) and data.get("kind") == "Deployment":
            errors = []
            for err in sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path)):
                path = tuple(err.absolute_path)
                where = ".".join(str(p) for p in path) or "(top)"
                message = err.message
                if err.validator == "oneOf" and err.context:
                    message = err.context[0].message
                loc = Manifest(data, lines, []).line(*path)
                errors.append(f"{loc} {where}: {message[:160]}")
            return Manifest(data, lines, errors)
    raise Fail(f"{DEPLOYMENT} holds no document with kind: Deployment.")


def _loaded(ctx: CheckContext) -> Manifest:
    """The workspace's Deployment, read and validated once per `lab check`."""
    return ctx.once("manifest", lambda: load_manifest(ctx))


def _manifest(ctx: CheckContext) -> Manifest:
    """The Deployment, for a check that needs one Kubernetes would accept."""
    m = _loaded(ctx)
    if m.errors:
        raise Fail(
            f"{DEPLOYMENT} is not a valid Deployment yet (see deployment-valid), so this "
            "is judged once it is."
        )
    if _api_problems(m):
        raise Fail(
            f"Kubernetes would refuse {DEPLOYMENT} (see deployment-valid), so this is judged "
            "once it would accept it."
        )
    return m


def _api_problems(m: Manifest) -> list[str]:
    """What the API server refuses beyond the schema: a missing name, a selector that
    does not pick the template's pods, no container."""
    problems = []
    spec = m.data.get("spec") or {}
    if not (m.data.get("metadata") or {}).get("name"):
        problems.append(f"{m.line('metadata')} metadata.name is missing")
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector and not (spec.get("selector") or {}).get("matchExpressions"):
        problems.append(f"{m.line('spec', 'selector')} spec.selector is missing or empty")
    elif any(labels.get(k) != v for k, v in selector.items()):
        problems.append(
            f"{m.line('spec', 'selector')} spec.selector {selector} does not match the "
            f"template's labels {labels}"
        )
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers:
        problems.append(f"{m.line('spec', 'template', 'spec')} the pod has no container")
    for i, c in enumerate(containers):
        if not (c or {}).get("image"):
            problems.append(f"{m.line('spec', 'template', 'spec', 'containers', i)} no image")
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = (c or {}).get(kind) or {}
            handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in probe]
            if len(handlers) > 1:
                problems.append(
                    f"{m.line('spec', 'template', 'spec', 'containers', i, kind)} {kind} has "
                    f"{' and '.join(handlers)}: a probe may have one handler only"
                )
    strategy = spec.get("strategy") or {}
    ru = strategy.get("rollingUpdate")
    if ru is not None and strategy.get("type") == "Recreate":
        problems.append(
            f"{m.line('spec', 'strategy', 'rollingUpdate')} rollingUpdate may not be given "
            "with strategy type Recreate"
        )
    for key in ("maxSurge", "maxUnavailable"):
        value = (ru or {}).get(key)
        if isinstance(value, str) and not re.fullmatch(r"\d+%", value.strip()):
            problems.append(
                f"{m.line('spec', 'strategy', 'rollingUpdate', key)} {key} {value!r} is "
                "neither a number of pods (write it without quotes) nor a percentage (25%)"
            )
    return problems


def _container(m: Manifest) -> tuple[int, dict[str, Any]]:
    """The service's container: the one that exposes the app's port, else the first."""
    containers = m.data["spec"]["template"]["spec"]["containers"]
    for i, c in enumerate(containers):
        if any(p.get("containerPort") == APP_PORT for p in c.get("ports") or []):
            return i, c
    return 0, containers[0]


@check("deployment-valid")
def deployment_valid(ctx: CheckContext) -> Pass:
    m = _loaded(ctx)
    if m.errors:
        raise Fail(
            f"{DEPLOYMENT} does not fit the apps/v1 Deployment schema of Kubernetes "
            f"{K8S_VERSION}: {m.errors[0]}. `kubectl apply` would refuse it (a misspelt field "
            "is refused too, not ignored).",
            Evidence("schema errors", "text", "\n".join(m.errors[:8])),
        )
    problems = _api_problems(m)
    if problems:
        raise Fail(
            f"The schema accepts {DEPLOYMENT}, but the API server would not: {problems[0]}.",
            Evidence("what Kubernetes would refuse", "text", "\n".join(problems)),
        )
    return Pass(f"A valid apps/v1 Deployment for Kubernetes {K8S_VERSION}, with a selector "
                "that picks its own pods.")  # fmt: skip


def _app_port(ctx: CheckContext, container: dict[str, Any]) -> int | None:
    """The port the service listens on: PORT from the pod, else the image, else 8080.
    None when the pod takes PORT from elsewhere (a ConfigMap) and it cannot be known."""
    for env in container.get("env") or []:
        if env.get("name") == "PORT":
            value = env.get("value")
            if value is None:
                return None
            return int(value) if str(value).isdigit() else -1
    with contextlib.suppress(Fail):
        df = _dockerfile(ctx)
        value = df.scope(df.final).get("PORT")
        if value is not None:
            return int(value) if value.isdigit() else -1
    return APP_PORT


def _probe_port(port: Any, container: dict[str, Any]) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p.get("containerPort", -1))
    return None


def image_programs(df: Dockerfile) -> set[str] | None:
    """The programs an exec probe can run in the final image (None: a base we do not know).

    What its base image ships (the slim Python images have sh and bash but neither curl
    nor wget; alpine has BusyBox's wget; distroless has no shell at all, :debug has
    BusyBox), plus what the final stage installs with the system's package manager.
    """
    lineage = df.final.lineage()
    ref = ImageRef.parse(lineage[0].base)
    repo, tag = ref.repo.lower(), (ref.tag or "").lower()
    if repo == "scratch":
        have: set[str] = set()
    elif "distroless" in repo:
        have = {"python"} if "python" in repo else set()
        if "debug" in tag:
            have |= {"sh", "busybox", "wget"}
    elif ref.short_name == "python":
        have = {"sh", "python"}
        if "alpine" in tag:
            have |= {"ash", "busybox", "wget"}
        else:
            have |= {"bash", "dash"} | (set() if "slim" in tag else {"curl", "wget"})
    else:
        return None
    for s in lineage:
        for ins in s.instrs:
            if ins.cmd != "RUN":
                continue
            for words in commands(ins.shell):
                tool = posixpath.basename(words[0])
                if tool in INSTALLERS and INSTALLERS[tool] in words[1:]:
                    have |= {w for w in words[1:] if not w.startswith("-")}
    return have


def _program(word: str) -> str:
    """`python` for /opt/venv/bin/python3.12, else the command's own name."""
    name = posixpath.basename(word)
    return "python" if re.fullmatch(r"python(3(\.\d+)?)?", name) else name


_SHELLS = {"sh", "bash", "ash", "dash"}
_URL = re.compile(
    r"\b(?P<scheme>https?)://(?P<host>\[[^\]]*\]|[^/:\s'\"]+)(?::(?P<port>[^/\s'\"]+))?"
    r"(?P<path>/[^\s'\"),;]*)?"
)
_LOCAL = {"localhost", "127.0.0.1", "[::1]", "0.0.0.0"}


@dataclass
class ProbeTarget:
    """What a probe asks: a port and, for HTTP, a path (None: a TCP connect)."""

    port: int | None  # None: $PORT, whatever it is
    path: str | None
    via: str  # how the probe asks, for the pass message


def _exec_target(ctx: CheckContext, where: str, kind: str, command: Any) -> ProbeTarget:
    """What an exec probe asks, judged by the URL it fetches and the program fetching it."""
    argv = [str(a) for a in command] if isinstance(command, list) else []
    if not argv:
        raise Fail(f"{where} {kind} exec has no command to run.")
    simple = [argv]
    if _program(argv[0]) in _SHELLS and "-c" in argv[1:-1]:
        simple = commands(argv[argv.index("-c") + 1])
    hit = next(
        ((words, m) for words in simple for w in words if (m := _URL.search(w))), None
    )  # fmt: skip
    shown = " ".join(argv)
    shown = shown if len(shown) <= 90 else shown[:87] + "..."
    if hit is None:
        raise Fail(
            f"{where} {kind} runs `{shown}`, which asks the service nothing the checks can "
            "see. The service shows its health over HTTP only: an exec probe must fetch "
            f"http://localhost:<port>{READY_PATH} or /healthz (curl -f, wget, or python's "
            "urllib.request.urlopen), or use httpGet, which the kubelet makes itself."
        )
    words, url = hit
    programs = None
    with contextlib.suppress(Fail):
        programs = image_programs(_dockerfile(ctx))
    needed = [_program(words[0])]
    if len(simple) > 1 or simple[0] is not argv:
        needed.insert(0, _program(argv[0]))
    if programs is not None:
        for prog in needed:
            if prog not in programs:
                base = _dockerfile(ctx).final.lineage()[0].base
                raise Fail(
                    f"{where} {kind} runs {prog}, which the final image does not hold ({base} "
                    f"has none, and the Dockerfile installs none): every probe would fail with "
                    '"executable file not found". Use httpGet, or a program the image has '
                    "(python with urllib.request)."
                )
    prog = needed[-1]
    if prog == "curl" and not any(
        w in ("--fail", "--fail-with-body") or re.fullmatch(r"-[a-zA-Z]*f[a-zA-Z]*", w)
        for w in words[1:]
    ):
        raise Fail(
            f"{where} {kind} runs curl without --fail: curl exits 0 on a 503 too, so the "
            f"probe passes while the service says it is not ready. Add -f (--fail)."
        )
    if prog == "python" and "urlopen" not in " ".join(words):
        raise Fail(
            f"{where} {kind} runs python, but not urllib.request.urlopen, so the checks cannot "
            "tell it fails on an error status. Fetch the URL with urlopen (it raises on 503), "
            "or use httpGet."
        )
    if prog not in ("curl", "wget", "python", "busybox"):
        raise Fail(
            f"{where} {kind} runs {prog}, and the checks cannot tell what it makes of an "
            "error status. Fetch the URL with curl -f, wget or python's urlopen, or use httpGet."
        )
    host = url.group("host").lower()
    if host not in _LOCAL:
        raise Fail(
            f"{where} {kind} fetches {url.group(0)}: a probe runs inside the pod, and "
            f"{host} is not the pod itself. Ask localhost."
        )
    if url.group("scheme") == "https":
        raise Fail(f"{where} {kind} fetches over HTTPS; the service speaks plain HTTP.")
    raw = url.group("port")
    if raw is None:
        number: int | None = 80
    elif raw.isdigit():
        number = int(raw)
    elif re.fullmatch(r"\$(PORT|\{PORT\}|\(PORT\))", raw):
        number = None
    else:
        raise Fail(f"{where} {kind} fetches {url.group(0)}, whose port {raw!r} is not a number.")
    return ProbeTarget(number, url.group("path") or "/", f"exec {prog}")


@check("probes")
def probes(ctx: CheckContext) -> Pass:
    m = _manifest(ctx)
    i, c = _container(m)
    base = ("spec", "template", "spec", "containers", i)
    port = _app_port(ctx, c)
    declared = {p.get("containerPort") for p in c.get("ports") or []}
    paths: dict[str, str] = {}
    execs: list[str] = []
    for kind, good in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
        probe = c.get(kind)
        where = m.line(*base, kind)
        if not probe:
            raise Fail(
                f"Container {c.get('name')!r} has no {kind} ({m.line(*base)}). Without "
                + (
                    "readiness, a Service sends traffic to a pod before it can serve and "
                    "while it shuts down, and a rolling update cannot wait for new pods."
                    if good == "readiness"
                    else "liveness, a process that is stuck (alive but answering nothing) "
                    "is never restarted."
                )
                + f" The service answers {READY_PATH} and /healthz on port {port or APP_PORT}."
            )
        if "grpc" in probe:
            raise Fail(
                f"{where} {kind} uses grpc: the service speaks plain HTTP and serves no gRPC "
                "health service, so every probe would fail. Use httpGet."
            )
        if "exec" in probe:
            asked = _exec_target(ctx, where, kind, (probe["exec"] or {}).get("command"))
            execs.append(good)
        else:
            action = probe.get("httpGet") or probe.get("tcpSocket")
            if not action:
                raise Fail(f"{where} {kind} has no httpGet or tcpSocket action.")
            number = _probe_port(action.get("port"), c)
            if number is None:
                raise Fail(
                    f"{where} {kind} names port {action.get('port')!r}, which no port of the "
                    "container is called: the probe can never connect."
                )
            path = None
            if "httpGet" in probe:
                if str(action.get("scheme", "HTTP")).upper() != "HTTP":
                    raise Fail(f"{where} {kind} uses HTTPS; the service speaks plain HTTP.")
                if action.get("host"):
                    raise Fail(
                        f"{where} {kind} sets host {action['host']!r}: the probe would ask "
                        "another machine, not this pod. Leave host out."
                    )
                path = str(action.get("path") or "/")
            asked = ProbeTarget(number, path, "httpGet" if path else "tcpSocket")
        if asked.port is not None:
            right = asked.port == port if port is not None else asked.port in declared
            if not right:
                raise Fail(
                    f"{where} {kind} knocks on port {asked.port}, but the service listens on "
                    f"{port}: every probe would fail"
                    + (
                        ", and the pod would never be ready."
                        if good == "readiness"
                        else ", and the kubelet would restart it again and again."
                    )
                )
        if asked.path is None:
            paths[good] = f"tcp:{asked.port}"
            continue
        path = asked.path.split("?", 1)[0]
        if path != READY_PATH and path not in LIVE_PATHS:
            raise Fail(
                f"{where} {kind} asks for {path}, where the service answers 404: "
                f"the probe always fails. It answers {READY_PATH} and /healthz."
            )
        if good == "liveness" and path == READY_PATH:
            raise Fail(
                f"{where} liveness asks {READY_PATH}, which says 503 whenever PostgreSQL "
                "does not answer: one database blip and the kubelet restarts every "
                "pod at once. Liveness asks only whether the process answers (/healthz)."
            )
        paths[good] = path
    notes = []
    if paths.get("readiness") != READY_PATH:
        notes.append(
            f"readiness on {paths['readiness']} keeps a pod in the Service while the "
            f"database is away or the pod shuts down; {READY_PATH} would take it out"
        )
    elif paths.get("liveness") == paths.get("readiness"):
        notes.append("liveness and readiness ask the same thing")
    if execs:
        notes.append(
            f"an exec probe ({' and '.join(execs)}) starts a process in the container every "
            "period, charged to its CPU and memory; httpGet costs the container nothing"
        )
    note = f" (Worth knowing: {'; '.join(notes)}.)" if notes else ""
    return Pass(
        f"readiness asks {paths['readiness']} and liveness {paths['liveness']}, on port "
        f"{port or 'the declared port'}.{note}"
    )


_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$"
)
_FACTORS = {
    "": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
    "Ei": 2**60,
}  # fmt: skip


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity (250m, 128Mi, 1e3, 2) as a number; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = _QUANTITY.match(str(value).strip())
    if not m:
        return None
    number = float(m.group(1))
    if m.group(3):
        return number * 10 ** int(m.group(3))
    return number * _FACTORS[m.group(2) or ""]


@check("resources")
def resources(ctx: CheckContext) -> Pass:
    m = _manifest(ctx)
    rows = []
    containers = m.data["spec"]["template"]["spec"]["containers"]
    for i, c in enumerate(containers):
        base = ("spec", "template", "spec", "containers", i, "resources")
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        name = c.get("name")
        for key, table in (("requests", requests), ("limits", limits)):
            for resource, raw in table.items():
                if resource in ("cpu", "memory") and quantity(raw) is None:
                    raise Fail(
                        f"{m.line(*base, key, resource)} {key}.{resource} is {raw!r}, which is "
                        "not a Kubernetes quantity (250m, 0.5, 128Mi, 1Gi)."
                    )
        missing = [r for r in ("cpu", "memory") if r not in requests]
        if missing:
            copied = [r for r in missing if r in limits]
            tail = (
                f" With only a limit, Kubernetes copies it into the request: each pod "
                f"reserves its peak ({', '.join(f'{r} {limits[r]}' for r in copied)}) all "
                "the time, and fewer fit on a node."
                if copied
                else " Without one, the scheduler places the pod as if it needed nothing, "
                "and a busy node starves it."
            )
            raise Fail(
                f"Container {name!r} requests no {' and no '.join(missing)} "
                f"({m.line(*base)}).{tail} Request what the service usually uses.",
            )
        if "memory" not in limits:
            raise Fail(
                f"Container {name!r} has no memory limit ({m.line(*base)}): one leaking pod "
                "can eat its node's memory and get its neighbours killed. Set "
                "limits.memory; past it, only this container is OOMKilled."
            )
        mem_req, mem_lim = quantity(requests["memory"]) or 0, quantity(limits["memory"]) or 0
        cpu_req = quantity(requests["cpu"]) or 0
        for what, value in (("requests.memory", mem_req), ("limits.memory", mem_lim)):
            if value < 2**20:
                raise Fail(
                    f"{m.line(*base, *what.split('.'))} {what} is {value:g} bytes: an 'm' "
                    "means milli, not mega, for memory. Write Mi (mebibytes) or Gi."
                )
        if cpu_req <= 0:
            raise Fail(f"{m.line(*base, 'requests', 'cpu')} requests.cpu must be above zero.")
        if mem_lim < mem_req:
            raise Fail(
                f"{m.line(*base, 'limits', 'memory')} limits.memory ({limits['memory']}) is "
                f"below requests.memory ({requests['memory']}): Kubernetes refuses that."
            )
        if "cpu" in limits and (quantity(limits["cpu"]) or 0) < cpu_req:
            raise Fail(
                f"{m.line(*base, 'limits', 'cpu')} limits.cpu ({limits['cpu']}) is below "
                f"requests.cpu ({requests['cpu']}): Kubernetes refuses that."
            )
        rows.append((name, requests["cpu"], requests["memory"], limits.get("cpu", "none"),
                     limits["memory"]))  # fmt: skip
    table = Evidence(
        "resources",
        "table",
        (["container", "cpu request", "memory request", "cpu limit", "memory limit"], rows),
    )
    return Pass("Every container requests cpu and memory and has a memory limit.", table)


def _resolve(value: Any, replicas: int, round_up: bool) -> int | None:
    """maxSurge / maxUnavailable as a number of pods (percentages as Kubernetes rounds)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if re.fullmatch(r"\d+%", text):
        exact = int(text[:-1]) * replicas / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    if text.isdigit():
        return int(text)
    return None


@check("rolling-update")
def rolling_update(ctx: CheckContext) -> Pass:
    m = _manifest(ctx)
    spec = m.data["spec"]
    replicas = spec.get("replicas", 1)
    if replicas is None:
        replicas = 1
    if replicas < 2:
        written = (
            "leaves replicas out, so it runs one pod"
            if "replicas" not in spec
            else (f"asks for {replicas} replica{'s' if replicas != 1 else ''}")
        )
        raise Fail(
            f"{m.line('spec', 'replicas')} The Deployment {written}: when it crashes, its "
            "node is drained or a new version rolls out, nobody is serving. Run two or more."
        )
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type") or "RollingUpdate"
    if kind != "RollingUpdate":
        raise Fail(
            f"{m.line('spec', 'strategy', 'type')} strategy {kind}: every old pod is stopped "
            "before any new one starts, so each release is an outage. Use RollingUpdate."
        )
    ru = strategy.get("rollingUpdate") or {}
    surge_raw, unavail_raw = ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%")
    surge = _resolve(surge_raw, replicas, round_up=True)
    unavailable = _resolve(unavail_raw, replicas, round_up=False)
    if surge is None or unavailable is None:
        raise Fail(
            f"{m.line('spec', 'strategy', 'rollingUpdate')} maxSurge and maxUnavailable are "
            "a number of pods or a percentage (25%)."
        )
    if surge == 0 and unavailable == 0:
        raise Fail(
            f"{m.line('spec', 'strategy', 'rollingUpdate')} maxSurge and maxUnavailable both "
            "come to 0: the rollout could neither add a pod nor remove one, and Kubernetes "
            "refuses it."
        )
    if unavailable > 0:
        raise Fail(
            f"{m.line('spec', 'strategy', 'rollingUpdate', 'maxUnavailable')} maxUnavailable "
            f"{unavail_raw!s} of {replicas} replicas lets {unavailable} pod(s) stop before "
            f"their replacements are ready: {replicas - unavailable} of {replicas} serve the "
            "whole load during every rollout. Set maxUnavailable to 0 and let maxSurge add "
            "the new pods first."
        )
    i, c = _container(m)
    image = ImageRef.parse(str(c.get("image", "")))
    if image.tag in (None, "latest") and not image.digest:
        raise Fail(
            f"{m.line('spec', 'template', 'spec', 'containers', i, 'image')} image "
            f"{c.get('image')}: {image.unpinned()}. A rollout to :latest changes nothing "
            "Kubernetes can see, and `kubectl rollout undo` cannot go back to what ran "
            "before. Deploy a version tag (orders-api:1.4.2) or a digest."
        )
    defaults = "" if "rollingUpdate" in strategy else (
        " (the default 25%/25%: write maxUnavailable: 0, or a fourth replica makes it 1)"
    )  # fmt: skip
    return Pass(
        f"{replicas} replicas, rolled {surge} new pod(s) at a time with none taken away "
        f"first{defaults}, image {c.get('image')}."
    )


@check("pod-non-root")
def pod_non_root(ctx: CheckContext) -> Pass:
    m = _manifest(ctx)
    pod = m.data["spec"]["template"]["spec"]
    pod_sc = pod.get("securityContext") or {}
    i, c = _container(m)
    sc = c.get("securityContext") or {}
    where = m.line("spec", "template", "spec", "containers", i)
    if sc.get("privileged"):
        raise Fail(f"{where} the container is privileged: it can do anything root can on the node.")
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    run_as = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if run_as == 0:
        raise Fail(f"{where} runAsUser: 0 runs the container as root, whatever the image says.")
    if non_root is not True:
        raise Fail(
            f"Neither the pod nor container {c.get('name')!r} sets runAsNonRoot: true "
            f"({where}): nothing stops an image that runs as root (a rebuilt base, a "
            "forgotten USER) from starting. Set it in the pod's securityContext."
        )
    image_user: str | None = None
    with contextlib.suppress(Fail):
        image_user = final_user(_dockerfile(ctx)).uid
    if run_as is None and image_user is None:
        raise Fail(
            f"runAsNonRoot: true, and no runAsUser: whether the pod starts depends on the "
            f"image's user, and {DOCKERFILE} cannot be read yet (see the checks above)."
        )
    if run_as is None and image_user is not None:
        if image_user in ("", "root") or re.fullmatch(r"0+", image_user or "x"):
            raise Fail(
                "runAsNonRoot: true, but the image runs as root (its final stage's USER is "
                f"{image_user or 'unset or empty'}): every pod would stop with "
                'CreateContainerConfigError "container has runAsNonRoot and image will run '
                "as root\". Fix the Dockerfile's USER or set runAsUser."
            )
        if not image_user.isdigit():
            raise Fail(
                f"runAsNonRoot: true, and the image's USER is {image_user!r}, a name: the "
                "kubelet cannot tell from a name that the user is not root, so every pod "
                'would stop with "image has non-numeric user, cannot verify user is '
                'non-root". Use USER with a number, or set runAsUser in the pod.'
            )
    extras = []
    if sc.get("allowPrivilegeEscalation") is not False:
        extras.append("allowPrivilegeEscalation: false")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        extras.append("capabilities drop [ALL]")
    tip = f" Going further: {', '.join(extras)}." if extras else ""
    who = f"UID {run_as}" if run_as is not None else f"the image's UID {image_user}"
    return Pass(
        f"runAsNonRoot: true, and the pod runs as {who}, which the kubelet can verify.{tip}"
    )
