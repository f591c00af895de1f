"""A lab's extra PostgreSQL roles (lab.yaml `roles: [reporting]`): made before the seed,
named from the lab's login, marked, usable in seeds and apply-files as `:"reporting"`,
and dropped with the lab's login, never without the marker.

Runs against the machine's own PostgreSQL (the external provider's server), as a class
would share it; every name here carries a test home's id.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import InstanceSpec, LabSpec
from sdtutor.errors import ContentError, ProviderError
from sdtutor.services import Names, Target, kind
from sdtutor.services.names import home_id
from sdtutor.services.postgres import role_variables, substitute_variables

SEED = """-- step: a table and a grant to the reporting role
CREATE TABLE items (id int PRIMARY KEY, secret text);
INSERT INTO items SELECT g, 'secret ' || g FROM generate_series(1, 5) g;
GRANT SELECT (id) ON items TO :"reporting";
"""


def roles_lab(tmp_path: Path, roles: tuple[str, ...] = ("reporting",)) -> LabSpec:
    (tmp_path / "setup.sql").write_text(SEED)
    return LabSpec(
        path=tmp_path,
        topic="rolelab",
        title="A lab with a reporting role",
        instances=(InstanceSpec("postgres", "postgres", roles=roles),),
        setup={"postgres": "setup.sql"},
        workspace=(),
        apply=(),
        checks=(),
        hints=(),
    )


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def _role(url: str, name: str) -> tuple[bool, bool, str | None] | None:
    """(can log in, can create roles, marker) of a role, None when it does not exist."""
    with _admin(url) as conn:
        row = conn.execute(
            "SELECT rolcanlogin, rolcreaterole, shobj_description(oid, 'pg_authid') "
            "FROM pg_roles WHERE rolname = %s",
            (name,),
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


@pytest.fixture
def target(tmp_path: Path, home: Path, system_postgres: str) -> Iterator[Target]:
    t = Target(system_postgres, Names(home_id(), "rolelab"), "postgres", roles_lab(tmp_path))
    yield t
    kind("postgres").teardown(t, purge=True)


def test_the_role_is_made_before_the_seed_marked_and_usable(
    target: Target, system_postgres: str
) -> None:
    access = kind("postgres").provision(target, fresh=True)
    role = f"{target.names.role}_reporting"
    assert access.env == {"DATABASE_ROLE_REPORTING": role}
    assert role_variables(access.env) == {"reporting": role}
    login, createrole, marker = _role(system_postgres, role) or (None, None, None)
    assert login is False and createrole is False
    assert target.names.owns(marker)
    with _admin(access.url) as conn:
        # The seed's grant reached the role (it existed before the seed ran), column by column.
        assert conn.execute(
            "SELECT has_column_privilege(%s, 'items', 'id', 'SELECT'), "
            "has_column_privilege(%s, 'items', 'secret', 'SELECT'), "
            "has_database_privilege(%s, current_database(), 'CONNECT')",
            (role, role, role),
        ).fetchone() == (True, False, True)
        # The lab's login holds no membership in it: it grants as the tables' owner.
        assert conn.execute(
            "SELECT pg_has_role(current_user, %s, 'MEMBER')", (role,)
        ).fetchone() == (False,)
        assert conn.execute(
            "SELECT count(*) FROM pg_auth_members WHERE member = %s::regrole "
            "OR roleid = %s::regrole",
            (role, role),
        ).fetchone() == (0,)
        # Nor can it hand itself to the role, nor give the role away.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'GRANT "{target.names.role}" TO "{role}"')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'GRANT "{role}" TO "{target.names.role}"')


def test_an_apply_file_names_the_role_as_a_psql_variable_with_or_without_psql(
    target: Target, tmp_path: Path
) -> None:
    access = kind("postgres").provision(target, fresh=True)
    role = f"{target.names.role}_reporting"
    grants = tmp_path / "grants.sql"
    grants.write_text('GRANT SELECT (secret) ON items TO :"reporting";\n')
    for native in (True, False):
        with _admin(access.url) as conn:
            conn.execute(f'REVOKE ALL ON items FROM "{role}"')
        assert kind("postgres").apply_file(access, grants, prefer_native=native) == 1
        with _admin(access.url) as conn:
            assert conn.execute(
                "SELECT has_column_privilege(%s, 'items', 'secret', 'SELECT')", (role,)
            ).fetchone() == (True,), f"prefer_native={native}"


def test_variables_are_substituted_as_psql_does() -> None:
    names = {"reporting": 'a"b'}
    text = (
        "GRANT x TO :\"reporting\"; SELECT :'reporting', :reporting, a::reporting, "
        "':reporting', $$ :reporting $$, :other -- :reporting"
    )
    assert substitute_variables(text, names) == (
        'GRANT x TO "a""b"; SELECT \'a"b\', a"b, a::reporting, '
        "':reporting', $$ :reporting $$, :other -- :reporting"
    )
    assert substitute_variables("SELECT ':reporting", names) == "SELECT ':reporting"


def test_a_fresh_copy_takes_back_memberships_of_the_role(
    target: Target, system_postgres: str
) -> None:
    role = f"{target.names.role}_reporting"
    kind("postgres").provision(target, fresh=True)
    with _admin(system_postgres) as conn:  # as an older server let the lab's login do
        conn.execute(f'GRANT "{target.names.role}" TO "{role}"')
    kind("postgres").provision(target, fresh=True)  # `lab reset`, `lab shell -f`
    with _admin(system_postgres) as conn:
        assert conn.execute(
            "SELECT pg_has_role(%s, %s, 'MEMBER')", (role, target.names.role)
        ).fetchone() == (False,)


def test_the_role_is_dropped_with_the_lab_and_kept_while_its_template_is(
    target: Target, system_postgres: str
) -> None:
    role = f"{target.names.role}_reporting"
    kind("postgres").provision(target, fresh=True)
    kind("postgres").teardown(target)  # `lab stop`: the template (granting to it) stays
    assert _role(system_postgres, role) is not None
    kind("postgres").provision(target, fresh=False)  # a start after stop finds it again
    kind("postgres").teardown(target, purge=True)
    assert _role(system_postgres, role) is None
    assert _role(system_postgres, target.names.role) is None


def test_a_role_without_the_marker_is_never_taken_or_dropped(
    target: Target, system_postgres: str
) -> None:
    role = f"{target.names.role}_reporting"
    with _admin(system_postgres) as conn:
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        with pytest.raises(ProviderError, match="did not make it"):
            kind("postgres").provision(target, fresh=True)
        kind("postgres").teardown(target, purge=True)
        assert _role(system_postgres, role) is not None
    finally:
        with _admin(system_postgres) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_two_homes_never_collide(tmp_path: Path, home: Path, system_postgres: str) -> None:
    lab = roles_lab(tmp_path)
    first = Target(system_postgres, Names(home_id(), "rolelab"), "postgres", lab)
    other = Target(system_postgres, Names(secrets.token_hex(4), "rolelab"), "postgres", lab)
    try:
        kind("postgres").provision(first, fresh=True)
        kind("postgres").provision(other, fresh=True)
        kind("postgres").teardown(other, purge=True)
        assert _role(system_postgres, f"{first.names.role}_reporting") is not None
        assert _role(system_postgres, f"{other.names.role}_reporting") is None
    finally:
        kind("postgres").teardown(first, purge=True)
        kind("postgres").teardown(other, purge=True)


def test_lab_yaml_roles_are_checked(tmp_path: Path) -> None:
    lab = tmp_path / "19-security"
    lab.mkdir()
    text = (Path(__file__).parent.parent / "labs" / "19-security" / "lab.yaml").read_text()
    assert load_lab(Path(__file__).parent.parent / "labs" / "19-security").instances[0].roles == (
        "reporting",
    )
    for bad in ("roles: [Reporting]", "roles: reporting", "roles: [a, a]"):
        (lab / "lab.yaml").write_text(text.replace("roles: [reporting]", bad))
        with pytest.raises(ContentError, match="roles"):
            load_lab(lab)


def test_lab_info_names_the_role_for_the_learner(
    external_env: dict[str, str], tmp_path: Path
) -> None:
    import json

    from tests.conftest import lab_names, plain, sdtutor

    env = external_env
    role = lab_names(Path(env["SDTUTOR_HOME"]), "security").role + "_reporting"
    started = sdtutor("lab", "start", "security", "-w", str(tmp_path / "ws"), env=env)
    assert started.returncode == 0, started.stderr
    shown = plain(sdtutor("lab", "info", "security", env=env).stdout)
    assert f"DATABASE_ROLE_REPORTING={role}" in shown
    data = json.loads(sdtutor("lab", "info", "security", "--json", env=env).stdout)
    assert data["services"]["postgres"]["env"] == {"DATABASE_ROLE_REPORTING": role}
