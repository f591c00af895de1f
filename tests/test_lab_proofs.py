"""Every lab proves itself: its untouched starter fails, its reference solution passes,
and each wrong case fails exactly the checks it names, with a message that teaches; on
the local provider every case, on the external one the starter and the solution (see
EXTERNAL_CASES in conftest). One test per lab and provider (`-k "caching and local"`
picks one); a lab a provider cannot run is skipped with the reason `content check` gives
(two-phase commit needs a server setting no URL can change). A lab that starts no server
is proved on the local provider only: every provider gives it the same.

The proofs themselves start with the session, beside the other tests (see
tests/background_proofs.py); these tests run last and judge each one's output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.background_proofs import BackgroundProofs
from tests.conftest import LABS, sdtutor, starts_no_server


def _expected_lines(lab: Path, provider: str) -> list[str]:
    cases = ["starter fails", "solution passes"]
    if provider == "local":  # external proves the starter and solution (EXTERNAL_CASES)
        wrong = sorted(p for p in (lab / "wrong").iterdir() if p.is_dir())
        cases += [f"wrong/{p.name} fails" for p in wrong]
    return [f"✓ {case}" for case in cases]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # it waits for its turn in the background pool
@pytest.mark.parametrize("provider", ["local", "external"])
@pytest.mark.parametrize("lab", LABS, ids=[p.name.split("-", 1)[1] for p in LABS])
def test_the_lab_proves_itself(lab: Path, provider: str, proofs: BackgroundProofs) -> None:
    slug = lab.name.split("-", 1)[1]
    if provider == "external" and starts_no_server(lab):
        pytest.skip(f"{lab.name} starts no server: the provider makes no difference")
    result = proofs.result(slug, provider)
    output = f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
    assert result.returncode == 0, output
    if f"Skipping lab {lab.name}:" in result.stdout:
        from sdtutor.content.loader import load_lab
        from sdtutor.lab.proof import skip_reason

        reason = skip_reason(load_lab(lab), provider)
        assert reason and reason in result.stdout.replace("\n", " "), result.stdout
        pytest.skip(f"{lab.name} on {provider}: {reason}")
    block = result.stdout[result.stdout.index(f"Proving lab {lab.name}") :]
    for line in _expected_lines(lab, provider):
        assert line in block, f"{lab.name}: {line}\n{output}"
    assert f"{lab.name} is proved" in block


def test_the_whole_course_lints_clean(home: Path) -> None:
    result = sdtutor("content", "check", "--no-labs", env={"SDTUTOR_HOME": str(home)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Lint: no problems" in result.stdout
