"""Every lab proves itself on both providers: its untouched starter fails, its reference
solution passes, and each wrong case fails exactly the checks it names, with a message
that teaches. One `content check` per provider proves the labs side by side."""

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
def test_every_lab_proves_itself(
    provider: str, local_home: Path, home: Path, system_postgres: str
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
    result = sdtutor("content", "check", env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Lint: no problems" in result.stdout
    for lab in LABS:
        start = result.stdout.index(f"Proving lab {lab.name}")
        end = result.stdout.find("Proving lab", start + 1)
        block = result.stdout[start : end if end != -1 else None]
        for line in _expected_lines(lab):
            assert line in block, f"{lab.name}: {line}"
        assert f"{lab.name} is proved" in block
