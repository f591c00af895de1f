"""The CLI's small libpq session, through ctypes and through psycopg's wrapper, against
the machine's real PostgreSQL: values, NULLs, parameters, quoting, errors, passwords."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pytest

from sdtutor.errors import ProviderError
from sdtutor.services.libpq import PgError, session

VIA = pytest.mark.parametrize("via", ["ctypes", "psycopg"])


@VIA
def test_rows_values_nulls_and_parameters(system_postgres: str, via: str) -> None:
    with session(system_postgres, via=via) as s:
        rows = s.rows("SELECT $1::int + 1, NULL::text, $2 || 'é'", "41", "caf")
        assert rows == [("42", None, "café")]
        assert s.value("SELECT 1 WHERE false") is None
        assert [r[0] for r in s.rows("SELECT generate_series(1, 3)")] == ["1", "2", "3"]


@VIA
def test_quoting_survives_hostile_names(system_postgres: str, via: str) -> None:
    name = f'sdtutor_test "q"; DROP -- {secrets.token_hex(3)} ü'
    with session(system_postgres, via=via) as s:
        assert s.ident(name).startswith('"') and '""q""' in s.ident(name)
        s.run(f"CREATE DATABASE {s.ident(name)}")
        try:
            s.run(f"COMMENT ON DATABASE {s.ident(name)} IS {s.literal(chr(39) + name + chr(92))}")
            comment = s.value(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                name,
            )
            assert comment == "'" + name + "\\"
        finally:
            s.run(f"DROP DATABASE {s.ident(name)}")
        assert s.value("SELECT 1 FROM pg_database WHERE datname = $1", name) is None


@VIA
def test_a_refused_statement_is_an_error_with_its_sqlstate(system_postgres: str, via: str) -> None:
    with session(system_postgres, via=via) as s:
        with pytest.raises(PgError) as caught:
            s.run("SELECT * FROM sdtutor_no_such_table")
        assert caught.value.sqlstate == "42P01"
        assert "sdtutor_no_such_table" in caught.value.message
        # The session is still usable after the error (autocommit: no aborted transaction).
        assert s.value("SELECT 2") == "2"


@VIA
def test_notices_are_not_printed(
    system_postgres: str, via: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with session(system_postgres, via=via) as s:
        s.run("DROP DATABASE IF EXISTS sdtutor_test_never_made")
    out, err = capfd.readouterr()
    assert "NOTICE" not in out + err and "does not exist" not in out + err


@VIA
def test_an_unreachable_server_says_what_to_do_and_hides_the_password(via: str) -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/postgres"
    with pytest.raises(ProviderError) as caught, session(url, timeout=2, via=via):
        pass
    text = str(caught.value)
    assert "Cannot reach PostgreSQL at" in text and "127.0.0.1:1" in text
    assert "s3cret-pw" not in text
    assert "sdtutor doctor" in caught.value.hint


def _scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier (RFC 5803 form) was made from `password`."""
    scheme, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return scheme == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == (
        base64.b64decode(stored_key)
    )


@VIA
def test_a_password_reaches_the_server_only_as_its_verifier(system_postgres: str, via: str) -> None:
    role = f"sdtutor_test_pw_{secrets.token_hex(4)}"
    password = "p@ss:word/" + secrets.token_hex(4)
    with session(system_postgres, via=via) as s:
        literal = s.password(password, role)
        assert password not in literal
        s.run(f"CREATE ROLE {s.ident(role)} LOGIN PASSWORD {literal}")
        try:
            stored = s.value("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
            assert stored is not None and _scram_matches(stored, password)
            assert not _scram_matches(stored, password + "x")
        finally:
            s.run(f"DROP ROLE {s.ident(role)}")


@VIA
def test_a_script_runs_several_statements_and_names_the_refusal(
    system_postgres: str, via: str
) -> None:
    with session(system_postgres, via=via) as s:
        s.script("CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1), (2);")
        assert s.value("SELECT sum(x) FROM t") == "3"
        with pytest.raises(PgError) as caught:
            s.script("INSERT INTO t VALUES (3); SELECT * FROM sdtutor_missing;")
        assert caught.value.detail.startswith('relation "sdtutor_missing" does not exist')
        # One batch is one implicit transaction: the INSERT before the error is undone.
        assert s.value("SELECT sum(x) FROM t") == "3"
