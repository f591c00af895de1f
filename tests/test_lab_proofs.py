"""Every lab proves itself on both providers: its untouched starter fails, its reference
solution passes, and each wrong case fails exactly the checks it names, with a message
that teaches. One test per lab and provider (`-k "caching and local"` picks one), each
with its own time limit; a lab a provider cannot run is skipped with the reason
`content check` gives (two-phase commit needs a server setting no URL can change)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO, sdtutor

LABS = sorted(p for p in (REPO / "labs").iterdir() if (p / "lab.yaml").is_file())
REDIS = os.environ.get("SDTUTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP = os.environ.get("SDTUTOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _expected_lines(lab: Path) -> list[str]:
    cases = ["starter fails", "solution passes"]
    cases += [f"wrong/{p.name} fails" for p in sorted((lab / "wrong").iterdir()) if p.is_dir()]
    return [f"✓ {case}" for case in cases]


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["local", "external"])
@pytest.mark.parametrize("lab", LABS, ids=[p.name.split("-", 1)[1] for p in LABS])
def test_the_lab_proves_itself(
    lab: Path, provider: str, local_home: Path, home: Path, system_postgres: str
) -> None:
    if provider == "local":
        env = {"SDTUTOR_HOME": str(local_home), "SDTUTOR_PROVIDER": "local"}
    else:
        env = {
            "SDTUTOR_HOME": str(home),
            "SDTUTOR_PROVIDER": "external",
            "SDTUTOR_POSTGRES_URL": system_postgres,
            "SDTUTOR_REDIS_URL": REDIS,
            "SDTUTOR_AMQP_URL": AMQP,
        }
    slug = lab.name.split("-", 1)[1]
    # The course is linted once elsewhere (tests/test_content_check.py): prove only.
    result = sdtutor("content", "check", "--no-lint", "--lab", slug, env=env, timeout=280)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    if f"Skipping lab {lab.name}:" in result.stdout:
        from sdtutor.content.loader import load_lab
        from sdtutor.lab.proof import skip_reason

        reason = skip_reason(load_lab(lab), provider)
        assert reason and reason in result.stdout.replace("\n", " "), result.stdout
        pytest.skip(f"{lab.name} on {provider}: {reason}")
    block = result.stdout[result.stdout.index(f"Proving lab {lab.name}") :]
    for line in _expected_lines(lab):
        assert line in block, f"{lab.name}: {line}"
    assert f"{lab.name} is proved" in block


def test_the_whole_course_lints_clean(home: Path) -> None:
    result = sdtutor("content", "check", "--no-labs", env={"SDTUTOR_HOME": str(home)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Lint: no problems" in result.stdout
