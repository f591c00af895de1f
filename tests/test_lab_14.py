"""The containers lab (14): other answers than the reference, judged.

No server and no learner code: each test lays files over the solution in a temporary
workspace and runs one check in this process. Other correct recipes pass (a digest, a
named user created in the final stage, numbered stages, ARG-substituted FROM, a wheel
house, a bind-mounted requirements file, an allow-list .dockerignore, tcpSocket
liveness, PORT moved in the pod, Kubernetes' default rolling update); other wrong ones
fail and say why (`python`, `3-slim`, an ARG with no default, an unpinned COPY --from,
a final stage FROM the builder or the full image, USER 0:0 or an unknown name, ARG
NPM_TOKEN, a token under an innocent name, .gitignore habits, a pattern that drops
app.py, a misspelt field, liveness on /readyz, the wrong port or path, memory in
millibytes, maxUnavailable 1, :latest, a user name with runAsNonRoot), and hostile
files (huge, binary, linked, a YAML bomb) are refused with their file and line.

From the review: heredocs, --platform, COPY --link and a user made from an ARG; a
distroless :nonroot final stage (no USER, UID 65532) and its `nonroot` user by name; a
shared base stage; alpine's adduser; uv copied from a pinned image, with a checksum and
a public key in ENV; exec probes that fetch the service (python's urlopen, curl -f where
the image has curl) pass. A compiler in a final-stage heredoc, the group's name given as
USER, distroless without a digest, a global ARG not declared again in the stage, curl
on a slim image or without --fail, sh on distroless, an exec probe that asks nothing,
grpc, a probe to the Service's name, 25% of 4 replicas, maxSurge "1" and a CPU limit
below its request fail and say why.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "14-containers"
LAB = load_lab(LAB_DIR)
DEPLOY = "k8s/deployment.yaml"
SOLUTION = {
    p.relative_to(LAB_DIR / "solution").as_posix(): p.read_text()
    for p in (LAB_DIR / "solution").rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
}
STARTER = ("app.py", "requirements.txt", "k8s/deployment.schema.json")


@pytest.fixture(autouse=True)
def no_build(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The variants are judged from the files; only the docker-marked test builds."""
    if request.node.get_closest_marker("docker") is None:
        monkeypatch.setenv("SDTUTOR_LAB_DOCKER_BUILD", "0")


def judge(check_id: str, files: Mapping[str, str | bytes | None]) -> CheckResult:
    """One check over the solution with `files` laid over it (None removes a file)."""
    only = dataclasses.replace(LAB, checks=tuple(c for c in LAB.checks if c.id == check_id))
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab14-") as tmp:
        ws = Path(tmp)
        for name in STARTER:
            (ws / name).parent.mkdir(parents=True, exist_ok=True)
            (ws / name).write_bytes((LAB_DIR / "starter" / name).read_bytes())
        for name, text in {**SOLUTION, **files}.items():
            if text is None:
                continue
            (ws / name).parent.mkdir(parents=True, exist_ok=True)
            (ws / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        [result] = run_checks(only, ws, {}, deadline=60)
    return result


def edit(name: str, *edits: tuple[str, str]) -> str:
    """A solution file with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION[name]
    for old, new in edits:
        assert old in text, f"the solution's {name} no longer has {old!r}"
        text = text.replace(old, new)
    return text


# Keyword names for the files `passes` lays over the solution.
NAMES = {"deployment_yaml": DEPLOY, "_dockerignore": ".dockerignore"}


def passes(check_id: str, **files: str | bytes | None) -> CheckResult:
    result = judge(check_id, {NAMES.get(k, k): v for k, v in files.items()})
    assert result.passed, result.message
    return result


def fails(check_id: str, says: str, files: Mapping[str, str | bytes | None]) -> CheckResult:
    result = judge(check_id, files)
    assert not result.passed, f"{check_id} passed: {result.message}"
    assert result.status == "failed", result.message
    assert says in result.message, result.message
    return result


DIGEST = "sha256:" + "ab" * 32

# ------------------------------------------------------------------ correct Dockerfiles

NAMED_USER = """\
# syntax=docker/dockerfile:1
ARG PY_VERSION=3.12.7
FROM python:${PY_VERSION}-slim-bookworm@DIGEST AS builder
RUN apt-get update && \\
    apt-get install -y --no-install-recommends \\
        gcc libpq-dev
COPY requirements.txt /tmp/
RUN pip wheel --wheel-dir /wheels -r /tmp/requirements.txt

FROM python:${PY_VERSION}-slim-bookworm@DIGEST
RUN apt-get update && apt-get install -y libpq5 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system app && useradd --system --gid app app
COPY --from=builder /wheels /wheels
COPY requirements.txt .
RUN pip install --no-index --find-links=/wheels -r requirements.txt && rm -rf /wheels
WORKDIR /srv
COPY --chown=app:app app.py ./
USER root
RUN chmod 0555 /srv
USER app:app
CMD ["python", "app.py"]
""".replace("DIGEST", DIGEST)

NUMBERED = """\
FROM python:3.12-slim
RUN apt-get update && apt-get install -y build-essential libpq-dev
RUN --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \\
    --mount=type=cache,target=/root/.cache/pip \\
    python -m venv /venv && /venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.12-slim
RUN apt-get update && apt-get install -y libpq5
COPY --from=0 /venv /venv
COPY . /app
ARG APP_UID=10001
USER ${APP_UID}
CMD ["/venv/bin/python", "/app/app.py"]
"""


def test_the_schema_is_small_and_says_where_it_comes_from() -> None:
    path = LAB_DIR / "starter" / "k8s" / "deployment.schema.json"
    assert path.stat().st_size < 300_000
    schema = json.loads(path.read_text())
    assert "Apache-2.0" in schema["$comment"] and "kubernetes-validate" in schema["$comment"]
    assert all(r.startswith("#/$defs/") for r in _refs(schema))


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_a_digest_pinned_wheel_house_with_a_named_user_passes() -> None:
    files = {"Dockerfile": NAMED_USER}
    for check_id in ("multi-stage", "base-pinned", "no-secrets", "cache-friendly"):
        assert judge(check_id, files).passed, judge(check_id, files).message
    result = judge("non-root", files)
    assert result.passed and "creates it" in result.message, result.message


def test_numbered_stages_a_bind_mount_and_an_arg_user_pass() -> None:
    files = {"Dockerfile": NUMBERED}
    for check_id in ("multi-stage", "base-pinned", "cache-friendly", "non-root"):
        result = judge(check_id, files)
        assert result.passed, f"{check_id}: {result.message}"


def test_a_secret_file_path_is_not_a_secret() -> None:
    dockerfile = edit(
        "Dockerfile",
        ("    PORT=8080\n", "    PORT=8080 \\\n    DATABASE_PASSWORD_FILE=/run/secrets/db\n"),
    )
    passes("no-secrets", Dockerfile=dockerfile)


def test_the_starter_fails_first_on_its_single_stage() -> None:
    starter = (LAB_DIR / "starter" / "Dockerfile").read_text()
    result = fails("multi-stage", "one stage", {"Dockerfile": starter})
    assert "build-essential" in result.message


# ------------------------------------------------------------------ wrong Dockerfiles

SOLUTION_FROM = "ARG PYTHON=python:3.12.7-slim-bookworm"


@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("python", "no tag"),
        ("python:3-slim", "every release of that major version"),
        ("python:slim-bookworm", "names no version"),
    ],
)
def test_unpinned_bases_fail(base: str, says: str) -> None:
    fails(
        "base-pinned",
        says,
        {"Dockerfile": edit("Dockerfile", (SOLUTION_FROM, f"ARG PYTHON={base}"))},
    )


def test_an_arg_without_default_in_from_fails() -> None:
    dockerfile = edit("Dockerfile", (SOLUTION_FROM, "ARG PYTHON"))
    fails("base-pinned", "has no default", {"Dockerfile": dockerfile})


def test_an_unpinned_copy_from_image_fails() -> None:
    dockerfile = edit(
        "Dockerfile",
        (
            "RUN python -m venv",
            "COPY --from=ghcr.io/astral-sh/uv:latest /uv /bin/uv\nRUN python -m venv",
        ),
    )
    fails("base-pinned", "COPY --from=ghcr.io/astral-sh/uv:latest", {"Dockerfile": dockerfile})


def test_python_latest_as_the_final_stage_ships_a_compiler() -> None:
    dockerfile = edit("Dockerfile", ("FROM ${PYTHON}\n", "FROM python:latest\n"))
    fails("multi-stage", "full python image", {"Dockerfile": dockerfile})
    fails("base-pinned", ":latest", {"Dockerfile": dockerfile})


def test_a_final_stage_built_from_the_builder_inherits_its_tools() -> None:
    dockerfile = edit("Dockerfile", ("FROM ${PYTHON}\n", "FROM build AS final\n"))
    fails("multi-stage", "inherits them", {"Dockerfile": dockerfile})


@pytest.mark.parametrize(
    ("user", "says"),
    [
        ("USER 0:0", "runs as root"),
        ("USER appuser", "no user named appuser"),
        ("USER $NOBODY_SET", "expands to nothing"),
    ],
)
def test_root_and_unknown_users_fail(user: str, says: str) -> None:
    fails("non-root", says, {"Dockerfile": edit("Dockerfile", ("USER 10001", user))})


def test_no_user_at_all_fails() -> None:
    fails("non-root", "no USER", {"Dockerfile": edit("Dockerfile", ("USER 10001\n", ""))})


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("ARG NPM_TOKEN", "ARG NPM_TOKEN"),
        ("ENV INDEX_URL=https://ci:hunter2hunter2@pypi.example.com/simple", "password"),
        ("ENV PIP_EXTRA=ghp_" + "a1B2c3D4e5" * 4, "GitHub token"),
        ("ARG dbPassword=changeme", "ARG dbPassword"),
        ("ENV SIGNING=Q2hhbmdlIG1lIGluIHByb2R1Y3Rpb24gcGxlYXNlIDEyMw", "random string"),
    ],
)
def test_secrets_by_name_or_value_fail(line: str, says: str) -> None:
    dockerfile = edit("Dockerfile", ("RUN python -m venv", f"{line}\nRUN python -m venv"))
    fails("no-secrets", says, {"Dockerfile": dockerfile})


def test_copying_the_code_with_the_requirements_fails() -> None:
    dockerfile = edit("Dockerfile", ("COPY requirements.txt .", "COPY requirements.txt app.py ./"))
    fails("cache-friendly", "copies app.py", {"Dockerfile": dockerfile})


def test_dependencies_never_installed_fail() -> None:
    dockerfile = edit("Dockerfile", ("RUN pip install --no-cache-dir -r requirements.txt\n", ""))
    fails("cache-friendly", "No RUN installs", {"Dockerfile": dockerfile})


# ------------------------------------------------------------------ .dockerignore


def test_an_allow_list_dockerignore_passes() -> None:
    passes("dockerignore", _dockerignore="*\n!app.py\n!requirements.txt\n")


def test_slashes_and_double_stars_pass() -> None:
    text = "/.git/\n**/.env\n.venv/\nvenv/\n**/__pycache__/**\n.pytest_cache\n"
    passes("dockerignore", _dockerignore=text)


def test_a_dockerfile_specific_ignore_file_wins() -> None:
    files = {".dockerignore": "", "Dockerfile.dockerignore": SOLUTION[".dockerignore"]}
    result = judge("dockerignore", files)
    assert result.passed and "Dockerfile.dockerignore" in result.message, result.message


def test_gitignore_habits_fail_on_nested_caches() -> None:
    text = SOLUTION[".dockerignore"].replace("**/__pycache__", "__pycache__")
    text = text.replace("**/*.py[cod]", "*.pyc")
    fails("dockerignore", "use **/", {".dockerignore": text})


def test_a_pattern_that_drops_app_py_fails() -> None:
    text = SOLUTION[".dockerignore"] + "*.py\n"
    fails("dockerignore", "leaves out app.py", {".dockerignore": text})


def test_an_exception_brings_a_secret_back() -> None:
    text = SOLUTION[".dockerignore"] + "!.env\n"
    fails("dockerignore", ".env", {".dockerignore": text})


def test_no_dockerignore_fails() -> None:
    fails("dockerignore", "There is no .dockerignore", {".dockerignore": None})


# ------------------------------------------------------------------ correct Deployments


def test_tcp_liveness_and_a_port_moved_in_the_pod_pass() -> None:
    deployment = edit(
        DEPLOY,
        ("              containerPort: 8080", "              containerPort: 9000"),
        (
            "          env:\n",
            '          env:\n            - name: PORT\n              value: "9000"\n',
        ),
        (
            "            httpGet:\n              path: /healthz\n              port: http\n",
            "            tcpSocket:\n              port: 9000\n",
        ),
    )
    passes("probes", deployment_yaml=deployment)


def test_the_default_rolling_update_with_two_replicas_passes() -> None:
    deployment = edit(
        DEPLOY,
        ("  replicas: 3", "  replicas: 2"),
        (
            "    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n"
            "      maxUnavailable: 0\n",
            "    type: RollingUpdate\n",
        ),
    )
    result = passes("rolling-update", deployment_yaml=deployment)
    assert "25%" in result.message


def test_cpu_limits_and_other_quantities_pass() -> None:
    deployment = edit(
        DEPLOY,
        (
            "              cpu: 100m\n              memory: 128Mi",
            '              cpu: "0.1"\n              memory: 134217728',
        ),
        ("              memory: 256Mi", "              cpu: 1\n              memory: 0.25Gi"),
    )
    passes("resources", deployment_yaml=deployment)


def test_a_named_user_with_run_as_user_passes() -> None:
    deployment = edit(DEPLOY, ("runAsNonRoot: true", "runAsNonRoot: true\n        runAsUser: 999"))
    passes("pod-non-root", Dockerfile=NAMED_USER, deployment_yaml=deployment)


# ------------------------------------------------------------------ wrong Deployments


def test_a_misspelt_field_fails_the_schema_with_its_line() -> None:
    deployment = edit(DEPLOY, ("readinessProbe:", "readinesProbe:"))
    result = fails("deployment-valid", "readinesProbe", {DEPLOY: deployment})
    assert "k8s/deployment.yaml:" in result.message
    fails("probes", "not a valid Deployment yet", {DEPLOY: deployment})


def test_a_selector_that_misses_the_pods_fails() -> None:
    deployment = edit(
        DEPLOY,
        (
            "  selector:\n    matchLabels:\n      app: orders-api",
            "  selector:\n    matchLabels:\n      app: orders",
        ),
    )
    fails("deployment-valid", "does not match", {DEPLOY: deployment})


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("path: /healthz", "path: /readyz", "one database blip"),
        ("path: /readyz", "path: /health", "answers 404"),
        (
            "port: http\n            periodSeconds: 5",
            "port: 8000\n            periodSeconds: 5",
            "listens on 8080",
        ),
        (
            "port: http\n            periodSeconds: 10",
            "port: web\n            periodSeconds: 10",
            "no port of the",
        ),
    ],
)
def test_probes_that_ask_the_wrong_thing_fail(old: str, new: str, says: str) -> None:
    fails("probes", says, {DEPLOY: edit(DEPLOY, (old, new))})


def test_memory_in_millibytes_fails() -> None:
    deployment = edit(DEPLOY, ("memory: 256Mi", "memory: 256m"))
    fails("resources", "milli", {DEPLOY: deployment})


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("  replicas: 3", "  replicas: 1", "1 replica"),
        ("      maxUnavailable: 0", "      maxUnavailable: 1", "2 of 3 serve"),
        ("orders-api:1.4.2", "orders-api:latest", "rollout undo"),
    ],
)
def test_rollouts_that_lose_capacity_fail(old: str, new: str, says: str) -> None:
    fails("rolling-update", says, {DEPLOY: edit(DEPLOY, (old, new))})


def test_a_user_name_with_run_as_non_root_fails() -> None:
    fails("pod-non-root", "non-numeric", {"Dockerfile": NAMED_USER})


# ------------------------------------------------------------------ hostile files


def test_hostile_files_are_refused_with_file_and_line() -> None:
    fails("base-pinned", "bytes", {"Dockerfile": "# x\n" * 20_000})
    fails("non-root", "not UTF-8", {"Dockerfile": b"FROM python:3.12.7\n\xff\xfe\n"})
    fails("multi-stage", "unknown instruction", {"Dockerfile": "FROM a:1.2\nFOO bar\n"})
    fails("deployment-valid", "not valid YAML", {DEPLOY: "a: [\n"})
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    fails("deployment-valid", "too large", {DEPLOY: bomb + "kind: Deployment\n"})


def test_a_linked_dockerfile_is_refused() -> None:
    only = dataclasses.replace(LAB, checks=tuple(c for c in LAB.checks if c.id == "non-root"))
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab14-") as tmp:
        ws = Path(tmp)
        os.symlink("/etc/passwd", ws / "Dockerfile")
        [result] = run_checks(only, ws, {}, deadline=30)
    assert not result.passed and "symbolic link" in result.message


# ------------------------------------------------------------------ with an engine


def test_without_an_engine_the_message_says_the_image_was_not_built() -> None:
    result = passes("non-root")
    assert "not built" in result.message


@pytest.mark.docker
def test_the_solution_builds_small_and_not_as_root() -> None:
    import docker

    try:
        docker.from_env(timeout=3).ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine answers here ({exc})")
    result = judge("non-root", {})
    assert result.passed and "Built with Docker" in result.message, result.message
    result = judge("multi-stage", {})
    assert result.passed and "Built with Docker" in result.message, result.message


# ------------------------------------------------------------------ more spellings (review)

HEREDOCS = """\
# syntax=docker/dockerfile:1
ARG BASE=python:3.12.7-slim-bookworm
FROM --platform=$BUILDPLATFORM ${BASE} AS build
RUN <<EOT
set -e
apt-get update  # the compiler and libpq's headers, for this stage only
apt-get install -y --no-install-recommends gcc libpq-dev
EOT
RUN python -m venv /opt/venv
COPY --link requirements.txt .
RUN /opt/venv/bin/pip install -r requirements.txt

FROM ${BASE}
ARG APP_USER=app
RUN <<EOT bash
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends libpq5
# a group, then the user in it
groupadd --system --gid 10001 "$APP_USER"
useradd --system --uid 10001 --gid "$APP_USER" --no-create-home "$APP_USER"
EOT
COPY --link --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --link --chown=app:app app.py .
USER app
ENV PATH=/opt/venv/bin:$PATH
CMD ["python", "app.py"]
"""

DISTROLESS = f"""\
FROM python:3.11.2-slim-bookworm@{DIGEST} AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev
RUN python -m venv /venv
COPY requirements.txt .
RUN /venv/bin/pip install -r requirements.txt
FROM gcr.io/distroless/python3-debian12:nonroot@{DIGEST}
COPY --from=build /venv /venv
COPY app.py /app/
CMD ["/venv/bin/python", "/app/app.py"]
"""

SHARED_BASE = """\
FROM python:3.12.7-slim-bookworm AS base
RUN apt-get update && apt-get install -y --no-install-recommends libpq5
RUN useradd --uid 10001 --create-home app

FROM base AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libpq-dev
COPY requirements.txt .
RUN pip install --prefix=/install -r requirements.txt

FROM base AS final
COPY --from=build /install /usr/local
COPY --chown=app app.py /home/app/
USER 10001
CMD ["python", "/home/app/app.py"]
"""

ALPINE = """\
FROM python:3.12.7-alpine3.20 AS build
RUN apk add --no-cache build-base postgresql16-dev
COPY requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt

FROM python:3.12.7-alpine3.20
RUN apk add --no-cache libpq && addgroup -S app && adduser -S -D -H -u 10001 -G app app
COPY --from=build --chown=app:app /root/.local /home/app/.local
COPY app.py /srv/
USER app
CMD ["python", "/srv/app.py"]
"""

UV = """\
# syntax=docker/dockerfile:1.7
FROM python:3.12.7-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.4.20 /uv /bin/uv
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=bind,source=requirements.txt,target=requirements.txt \\
    uv venv /opt/venv && uv pip install --python /opt/venv/bin/python -r requirements.txt

FROM python:3.12.7-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl
COPY --link --from=build /opt/venv /opt/venv
COPY --link app.py /app/
ENV GPG_KEY=7169605F62C751356D054A26A821E680E5FA6305 \\
    SSH_PUBLIC_KEY="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8k2h4mQ1r9wXyzPq7c0d3Lm5N6o8p9Q0r1s2 ci"
USER 10001:10001
CMD ["/opt/venv/bin/python", "/app/app.py"]
"""


@pytest.mark.parametrize(
    ("name", "dockerfile", "says"),
    [
        ("heredocs, --platform, COPY --link, an ARG-named user", HEREDOCS, "creates it"),
        ("distroless :nonroot with no USER", DISTROLESS, "UID 65532"),
        ("a shared base stage", SHARED_BASE, "UID 10001"),
        ("alpine, adduser -S -D -H -u -G", ALPINE, "creates it"),
        ("uv from a pinned image, a bind mount", UV, "UID 10001"),
    ],
)
def test_other_dockerfiles_pass(name: str, dockerfile: str, says: str) -> None:
    files = {"Dockerfile": dockerfile}
    for check_id in ("multi-stage", "base-pinned", "no-secrets", "cache-friendly"):
        result = judge(check_id, files)
        assert result.passed, f"{name}, {check_id}: {result.message}"
    result = judge("non-root", files)
    assert result.passed and says in result.message, f"{name}: {result.message}"


def test_a_distroless_nonroot_image_satisfies_run_as_non_root() -> None:
    passes("pod-non-root", Dockerfile=DISTROLESS)
    named = DISTROLESS.replace("CMD [", "USER nonroot\nCMD [")
    passes("non-root", Dockerfile=named)
    fails("pod-non-root", "non-numeric", {"Dockerfile": named})
    deployment = edit(
        DEPLOY, ("runAsNonRoot: true", "runAsNonRoot: true\n        runAsUser: 65532")
    )
    passes("pod-non-root", Dockerfile=named, deployment_yaml=deployment)


WRONG_DOCKERFILES = [
    (  # the final stage's heredoc installs a compiler "just in case"
        "multi-stage",
        HEREDOCS.replace("libpq5\n# a group", "libpq5 gcc\n# a group"),
        "still installs build tools: gcc",
    ),
    (  # the group's name where the user's belongs
        "non-root",
        SHARED_BASE.replace(
            "useradd --uid 10001 --create-home app", "groupadd app && useradd -g app -m appuser"
        ).replace("USER 10001", "USER app"),
        "no user named app is created in the final stage (it creates appuser)",
    ),
    (  # distroless publishes no version tags: only a digest pins it
        "base-pinned",
        DISTROLESS.replace(f":nonroot@{DIGEST}", ":nonroot"),
        "distroless images have no version tags",
    ),
    (  # a digest alone says nothing of :nonroot, and distroless's default user is root
        "non-root",
        DISTROLESS.replace(f":nonroot@{DIGEST}", f"@{DIGEST}"),
        "keep the tag beside it",
    ),
    (  # an ARG before FROM is not seen in a stage that does not declare it again
        "non-root",
        "ARG UID=10001\n" + SHARED_BASE.replace("USER 10001", "USER $UID"),
        "declared before the first FROM",
    ),
]


@pytest.mark.parametrize(("check_id", "dockerfile", "says"), WRONG_DOCKERFILES)
def test_other_wrong_dockerfiles_fail(check_id: str, dockerfile: str, says: str) -> None:
    fails(check_id, says, {"Dockerfile": dockerfile})


READINESS = "          readinessProbe:\n            httpGet:\n              path: /readyz\n"
LIVENESS = "          livenessProbe:\n            httpGet:\n              path: /healthz\n"
HTTP_PORT = "              port: http\n"


def probe(kind: str, body: str) -> str:
    """The solution's Deployment with one probe replaced by `body` (indented under it)."""
    old = (READINESS if kind == "readiness" else LIVENESS) + HTTP_PORT
    new = f"          {kind}Probe:\n" + "".join(
        f"            {line}\n" for line in body.splitlines()
    )
    return edit(DEPLOY, (old, new))


URLOPEN = (
    "exec:\n  command:\n    - python\n    - -c\n"
    '    - import urllib.request as u; u.urlopen("http://127.0.0.1:8080/readyz", timeout=2)'
)
CURL = 'exec:\n  command: ["sh", "-c", "curl -fsS http://localhost:${PORT}/healthz || exit 1"]'
WITH_CURL = UV  # its final stage installs curl


def test_exec_probes_that_fetch_the_service_pass() -> None:
    result = passes("probes", deployment_yaml=probe("readiness", URLOPEN))
    assert "exec probe (readiness)" in result.message, result.message
    passes("probes", deployment_yaml=probe("liveness", CURL), Dockerfile=WITH_CURL)


@pytest.mark.parametrize(
    ("kind", "body", "dockerfile", "says"),
    [
        ("liveness", CURL, None, "curl, which the final image does not hold"),
        ("liveness", CURL.replace("-fsS", "-sS"), WITH_CURL, "without --fail"),
        ("liveness", 'exec:\n  command: ["cat", "/tmp/healthy"]', None, "asks the service nothing"),
        ("liveness", "grpc:\n  port: 8080", None, "no gRPC health service"),
        (
            "liveness",
            'exec:\n  command: ["curl", "-f", "http://orders-api:8080/healthz"]',
            WITH_CURL,
            "not the pod itself",
        ),
        ("readiness", URLOPEN.replace("8080", "8000"), None, "listens on 8080"),
        ("liveness", URLOPEN, None, "one database blip"),
        ("liveness", CURL, DISTROLESS, "sh, which the final image does not hold"),
    ],
)
def test_exec_and_grpc_probes_that_cannot_work_fail(
    kind: str, body: str, dockerfile: str | None, says: str
) -> None:
    files = {DEPLOY: probe(kind, body)}
    if dockerfile:
        files["Dockerfile"] = dockerfile
    fails("probes", says, files)


def test_a_service_and_a_startup_probe_beside_the_deployment_pass() -> None:
    service = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: orders-api}\nspec:\n"
        "  selector: {app: orders-api}\n  ports: [{port: 80, targetPort: http}]\n---\n"
    )
    startup = (
        "          startupProbe:\n            httpGet: {path: /healthz, port: http}\n"
        "            failureThreshold: 30\n"
    )
    deployment = service + edit(DEPLOY, (READINESS, startup + READINESS))
    for check_id in ("deployment-valid", "probes"):
        passes(check_id, deployment_yaml=deployment)


SURGE = "      maxSurge: 1\n      maxUnavailable: 0\n"


@pytest.mark.parametrize(
    ("check_id", "edits", "says"),
    [
        ("rolling-update", [(SURGE, "      maxSurge: 50%\n      maxUnavailable: 25%\n")], None),
        (
            "rolling-update",
            [("  replicas: 3", "  replicas: 4"), (SURGE, "      maxUnavailable: 25%\n")],
            "lets 1 pod(s) stop",
        ),
        (
            "deployment-valid",
            [(SURGE, '      maxSurge: "1"\n      maxUnavailable: 0\n')],
            "neither a number",
        ),
        (
            "resources",
            [
                (
                    "              memory: 256Mi",
                    "              cpu: 50m\n              memory: 256Mi",
                )
            ],
            "below requests.cpu",
        ),
    ],
)
def test_rollout_and_resource_arithmetic(
    check_id: str, edits: list[tuple[str, str]], says: str | None
) -> None:
    files = {DEPLOY: edit(DEPLOY, *edits)}
    if says is None:
        result = judge(check_id, files)
        assert result.passed, result.message
    else:
        fails(check_id, says, files)


def test_a_linked_k8s_folder_is_refused() -> None:
    only = dataclasses.replace(LAB, checks=tuple(c for c in LAB.checks if c.id == "probes"))
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab14-") as tmp:
        ws, elsewhere = Path(tmp) / "ws", Path(tmp) / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "deployment.yaml").write_text(SOLUTION[DEPLOY])
        ws.mkdir()
        os.symlink(elsewhere, ws / "k8s")
        [result] = run_checks(only, ws, {}, deadline=30)
    assert not result.passed and "k8s is a symbolic link" in result.message, result.message


def test_a_file_where_the_k8s_folder_belongs_is_refused() -> None:
    only = dataclasses.replace(
        LAB, checks=tuple(c for c in LAB.checks if c.id == "deployment-valid")
    )
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab14-") as tmp:
        (Path(tmp) / "k8s").write_text("replicas: 3\n")
        [result] = run_checks(only, Path(tmp), {}, deadline=30)
    assert result.status == "failed" and "k8s is a file" in result.message, result.message
