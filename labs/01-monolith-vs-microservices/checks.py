"""Checks for the monolith lab: module boundaries the database enforces, and an order
path that survives the inventory module being slow or gone.

The boundaries are judged by asking PostgreSQL where each table lives, what it holds and
what each module's role may do with it (the privilege functions follow grants to PUBLIC
and role membership), never by reading boundaries.sql. Order placement is judged by
what the checker's own inventory server saw (requests, idempotency keys, reservations),
what the learner's place_order returned and how long it took, and what PostgreSQL holds
afterwards.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg

from sdtutor.lab.checks import CannotCheck, CheckContext, Evidence, Fail, Pass, check
from sdtutor.lab.runner import LearnerRun
from sdtutor.services.postgres import extra_role

HARNESS = Path(__file__).with_name("harness.py")
IMPORT_FAILED = "orders.py could not be imported:"  # as harness.py says it
HARNESS_FILE = "sdtutor_monolith_harness.py"  # its name in the sandbox, beside the files
FILES: dict[str, str | bytes | Path] = {HARNESS_FILE: HARNESS}
ORDERS_PY = "orders.py"
APPLY = "`sdtutor lab shell monolith-vs-microservices -f boundaries.sql`"


def _listed(items: list[str], shown: int = 3) -> str:
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


# ------------------------------------------------------------------ task 1: boundaries

MODULES: dict[str, tuple[str, ...]] = {
    "orders": ("orders", "order_lines"),
    "inventory": ("products", "stock", "reservations"),
}
OWNER = {table: module for module, tables in MODULES.items() for table in tables}
SKUS = ["MUG-01", "TEE-02", "CAP-03", "BAG-04", "PEN-05", "NOTE-06", "LAMP-07", "GLOBE-08"]
SEEDED: dict[str, tuple[str, Any, int]] = {
    # table: (which rows setup.sql made, its parameter, how many)
    "orders": ("id <= %s", 240, 240),
    "order_lines": ("id <= %s", 480, 480),
    "reservations": ("id <= %s", 120, 120),
    "products": ("sku = ANY(%s)", SKUS, 8),
    "stock": ("sku = ANY(%s)", SKUS, 8),
}
NEEDS = ("SELECT", "INSERT", "UPDATE")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"


def _roles(ctx: CheckContext) -> dict[str, str]:
    """Each module's role, by module name; CannotCheck when one is missing."""
    user = unquote(urlsplit(ctx.url("postgres")).username or "")
    roles = {module: extra_role(user, module) for module in MODULES}
    for role in roles.values():
        if not ctx.value("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)):
            raise CannotCheck(
                f"the role {role} is missing: `sdtutor lab reset monolith-vs-microservices`"
            )
    return roles


def _homes(ctx: CheckContext) -> dict[str, list[str]]:
    """For each of the lab's tables, the schemas a table of that name is in."""
    rows = ctx.query(
        "SELECT c.relname, n.nspname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(%s) AND {SYSTEM} ORDER BY 2",
        (list(OWNER),),
    )
    homes: dict[str, list[str]] = {table: [] for table in OWNER}
    for table, schema in rows:
        homes[table].append(schema)
    return homes


def _qualified(schema: str, table: str) -> str:
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))


@check("tables-moved")
def tables_moved(ctx: CheckContext) -> Pass:
    """Every table in its module's schema, its seeded rows all there, and no foreign key
    from one module's tables to the other's."""
    homes = _homes(ctx)
    problems: list[str] = []
    misplaced: dict[str, list[str]] = {}  # module: its tables found elsewhere
    lost: list[str] = []  # tables holding fewer of their seeded rows
    rows: list[tuple[str, str, str, str]] = []
    for table, module in OWNER.items():
        where, param, seeded = SEEDED[table]
        found = homes[table]
        kept = "-"
        if found:
            home = module if module in found else found[0]
            sql = f"SELECT count(*) FROM {_qualified(home, table)} WHERE {where}"
            count = int(ctx.value(sql, (param,)))
            kept = f"{count} of {seeded}"
            if count < seeded:
                lost.append(f"{home}.{table} {count} of {seeded}")
        if not found:
            problems.append(f"the table {table} is gone (it belongs in schema {module})")
        elif module not in found:
            misplaced.setdefault(module, []).append(f"{table} (in {found[0]})")
        elif len(found) > 1:
            others = ", ".join(s for s in found if s != module)
            problems.append(
                f"{module}.{table} is there, but another {table} is still in {others}: "
                "two copies drift apart, and the old one is still readable"
            )
        rows.append((table, module, ", ".join(found) or "(nowhere)", kept))
    problems[:0] = [
        f"not yet in schema {module}: {', '.join(tables)}" for module, tables in misplaced.items()
    ]
    if lost:
        problems.insert(
            0,
            f"seeded rows are missing ({', '.join(lost)}): a move that loses rows is not a move",
        )
    crossing = []
    for name, from_schema, from_table, columns, to_schema, to_table in ctx.query(
        "SELECT c.conname, fn.nspname, f.relname, (SELECT string_agg(a.attname, ', ') "
        "FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)), "
        "tn.nspname, t.relname FROM pg_constraint c "
        "JOIN pg_class f ON f.oid = c.conrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace "
        "JOIN pg_class t ON t.oid = c.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        "WHERE c.contype = 'f' ORDER BY 1"
    ):
        a, b = OWNER.get(from_table), OWNER.get(to_table)
        if a and b and a != b:
            crossing.append(
                f"{from_schema}.{from_table}.{columns} references {to_schema}.{to_table} ({name})"
            )
    evidence = [
        Evidence(
            "where each table is, and the seeded rows it still holds",
            "table",
            (("table", "belongs in", "found in", "seeded rows"), rows),
        )
    ]
    if crossing:
        evidence.append(Evidence("foreign keys across modules", "text", "\n".join(crossing)))
    if problems:
        raise Fail(
            f"{_listed(problems)}. Give each module a schema of its own and move its "
            f"tables there with their rows (ALTER TABLE ... SET SCHEMA keeps them); "
            f"write it in boundaries.sql and apply it with {APPLY}.",
            *evidence,
        )
    if crossing:
        raise Fail(
            f"The tables are in place, but {len(crossing)} foreign key(s) tie one module's "
            f"table to the other's: {_listed(crossing, 2)}. PostgreSQL checks such a key "
            "on every write, so the two modules can never live in separate databases; "
            "keep the other module's id or sku as a plain value and drop the constraint.",
            *evidence,
        )
    return Pass(
        "orders and order_lines are in schema orders, products, stock and reservations in "
        "schema inventory, every seeded row kept, no foreign key across the line.",
        *evidence,
    )


@check("modules-can-work")
def modules_can_work(ctx: CheckContext) -> Pass:
    """Each module's role can use its schema and read and write its own tables."""
    roles = _roles(ctx)
    missing: list[str] = []
    for module, role in roles.items():
        if not ctx.value("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (module,)):
            missing.append(f"there is no schema {module} yet")
            continue
        if not ctx.value("SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, module)):
            missing.append(f"{module} (the role) has no USAGE on schema {module}")
        for table in MODULES[module]:
            name = _qualified(module, table)
            if ctx.value("SELECT to_regclass(%s)", (name,)) is None:
                missing.append(f"{module}.{table} does not exist")
                continue
            lacking = [
                p
                for p in NEEDS
                if not ctx.value("SELECT has_table_privilege(%s, %s, %s)", (role, name, p))
            ]
            if lacking:
                missing.append(f"{module} cannot {'/'.join(lacking)} {module}.{table}")
    if missing:
        raise Fail(
            f"PostgreSQL says: {_listed(missing, 4)}. A module that cannot read and write "
            "its own tables stops working the day its role is enforced. Grant each role "
            f"USAGE on its schema and {', '.join(NEEDS)} on its tables in boundaries.sql, "
            f"and apply it with {APPLY}.",
            Evidence("the roles", "text", "\n".join(f"{m}: {r}" for m, r in roles.items())),
        )
    return Pass(
        "Both roles can use their schema and read, insert and update their own tables.",
        Evidence("the roles", "text", "\n".join(f"{m}: {r}" for m, r in roles.items())),
    )


def _members_of(ctx: CheckContext, role: str) -> list[str]:
    rows = ctx.query(
        "SELECT r.rolname FROM pg_roles r WHERE r.rolname <> %s "
        "AND pg_has_role(%s, r.oid, 'USAGE') ORDER BY 1",
        (role, role),
    )
    return [str(r) for (r,) in rows]


def _route(ctx: CheckContext, role: str, kind: str, obj: str, privilege: str) -> str:
    """By which route(s) a role holds a privilege: granted to it, to PUBLIC, or to a role
    it is a member of."""
    function = {"table": "has_table_privilege", "sequence": "has_sequence_privilege"}.get(
        kind, "has_schema_privilege"
    )
    routes = []
    if kind == "schema":
        direct = ctx.value(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a "
            "WHERE n.nspname = %s AND a.grantee = %s::regrole AND a.privilege_type = %s)",
            (obj, role, privilege),
        )
    else:
        direct = ctx.value(
            "SELECT EXISTS (SELECT 1 FROM pg_class c, aclexplode(c.relacl) a "
            "WHERE c.oid = %s::regclass AND a.grantee = %s::regrole AND a.privilege_type = %s)",
            (obj, role, privilege),
        )
    if direct:
        routes.append("granted to it")
    if ctx.value(f"SELECT {function}('public', %s, %s)", (obj, privilege)):
        routes.append("through PUBLIC")
    for other in _members_of(ctx, role):
        if ctx.value(f"SELECT {function}(%s, %s, %s)", (other, obj, privilege)):
            routes.append(f"through membership in {other}")
            break
    return ", ".join(routes) or "on some of its columns"


def _leaks(ctx: CheckContext, module: str, role: str) -> list[Leak]:
    """(role, object, privilege, route) for everything the role may do outside its own
    module's tables, schema and sequences."""
    own = list(MODULES[module])
    found: list[tuple[str, str, str, str]] = []
    not_own = f"{SYSTEM} AND n.nspname <> %s AND NOT (c.relname = ANY(%s))"
    for schema, table, privilege in ctx.query(
        "SELECT n.nspname, c.relname, p FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(%s::text[]) p "
        f"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {not_own} "
        "AND has_table_privilege(%s, c.oid, p) ORDER BY 1, 2",
        (list(TABLE_PRIVILEGES), module, own, role),
    ):
        obj = _qualified(schema, table)
        found.append(
            (
                module,
                f"{schema}.{table}",
                privilege,
                _route(ctx, role, "table", obj, privilege),
            )
        )
    for schema, table, privilege in ctx.query(
        "SELECT n.nspname, c.relname, p FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(%s::text[]) p "
        f"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {not_own} "
        "AND NOT has_table_privilege(%s, c.oid, p) "
        "AND has_any_column_privilege(%s, c.oid, p) ORDER BY 1, 2",
        (["SELECT", "INSERT", "UPDATE", "REFERENCES"], module, own, role, role),
    ):
        found.append((module, f"{schema}.{table} (some columns)", privilege, "granted to it"))
    owned_by = (
        "(SELECT t.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid "
        "WHERE d.objid = c.oid AND d.deptype IN ('a', 'i') LIMIT 1)"
    )
    for schema, sequence, privilege in ctx.query(
        "SELECT n.nspname, c.relname, p FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(%s::text[]) p "
        f"WHERE c.relkind = 'S' AND {SYSTEM} AND n.nspname <> %s "
        f"AND coalesce({owned_by}, '') <> ALL(%s) "
        "AND has_sequence_privilege(%s, c.oid, p) ORDER BY 1, 2",
        (["USAGE", "UPDATE"], module, own, role),
    ):
        obj = _qualified(schema, sequence)
        found.append(
            (
                module,
                f"sequence {schema}.{sequence}",
                privilege,
                _route(ctx, role, "sequence", obj, privilege),
            )
        )
    found += _through_views(ctx, module, role)
    found += _through_rules(ctx, module, role)
    found += _through_functions(ctx, module, role)
    found += _later_tables(ctx, module, role)
    for (schema,) in ctx.query(
        f"SELECT n.nspname FROM pg_namespace n WHERE {SYSTEM} AND n.nspname <> %s ORDER BY 1",
        (module,),
    ):
        for privilege in ("USAGE", "CREATE"):
            if schema == "public" and privilege == "USAGE":
                continue  # every role may look in public; what is in it is judged above
            if ctx.value("SELECT has_schema_privilege(%s, %s, %s)", (role, schema, privilege)):
                found.append(
                    (
                        module,
                        f"schema {schema}",
                        privilege,
                        _route(ctx, role, "schema", schema, privilege),
                    )
                )
    return found


Leak = tuple[str, str, str, str]
RULE_EVENTS = {"2": "UPDATE", "3": "INSERT", "4": "DELETE"}  # pg_rewrite.ev_type


def _other(module: str) -> str:
    return next(m for m in MODULES if m != module)


def _through_rules(ctx: CheckContext, module: str, role: str) -> list[Leak]:
    """The other module's tables a role reaches through a rule on a table it may write: a
    rule's actions run with the rights of its table's owner."""
    found = []
    for table, rule, event, schema, base in ctx.query(
        "SELECT DISTINCT t.oid::regclass::text, r.rulename, r.ev_type::text, bn.nspname, "
        "b.relname FROM pg_rewrite r JOIN pg_class t ON t.oid = r.ev_class "
        "JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass "
        "AND d.refclassid = 'pg_class'::regclass "
        "JOIN pg_class b ON b.oid = d.refobjid JOIN pg_namespace bn ON bn.oid = b.relnamespace "
        "WHERE t.relkind IN ('r', 'p') AND b.oid <> t.oid AND b.relname = ANY(%s) "
        "AND has_table_privilege(%s, t.oid, CASE r.ev_type WHEN '2' THEN 'UPDATE' "
        "WHEN '3' THEN 'INSERT' WHEN '4' THEN 'DELETE' ELSE 'SELECT' END) ORDER BY 1, 2",
        (list(MODULES[_other(module)]), role),
    ):
        found.append(
            (
                module,
                f"{schema}.{base}",
                "write",
                f"through the rule {rule} on {table}, run as its owner on each "
                f"{RULE_EVENTS.get(str(event), 'use')}",
            )
        )
    return found


def _through_functions(ctx: CheckContext, module: str, role: str) -> list[Leak]:
    """SECURITY DEFINER functions a role may call (or fire, as a trigger on a table it may
    write) whose owner holds the other module's tables: inside, it has the owner's rights
    on them, whatever the function is meant to do."""
    theirs = list(MODULES[_other(module)])
    me = str(ctx.value("SELECT current_user"))  # the lab's login, owner of every table
    found = []
    for function, owner, callable_, fired_on in ctx.query(
        "SELECT format('%%s.%%s(%%s)', n.nspname, p.proname, "
        "pg_get_function_identity_arguments(p.oid)), pg_get_userbyid(p.proowner), "
        "has_function_privilege(%(role)s, p.oid, 'EXECUTE') "
        "AND has_schema_privilege(%(role)s, p.pronamespace, 'USAGE'), "
        "(SELECT min(t.tgrelid::regclass::text) FROM pg_trigger t WHERE t.tgfoid = p.oid "
        "AND NOT t.tgisinternal AND (has_table_privilege(%(role)s, t.tgrelid, 'INSERT') "
        "OR has_table_privilege(%(role)s, t.tgrelid, 'UPDATE') "
        "OR has_table_privilege(%(role)s, t.tgrelid, 'DELETE') "
        "OR has_table_privilege(%(role)s, t.tgrelid, 'TRUNCATE'))) "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        f"WHERE p.prosecdef AND {SYSTEM} AND p.proowner <> %(role)s::regrole "
        "AND EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace cn ON cn.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(%(theirs)s) "
        "AND cn.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND (has_table_privilege(p.proowner, c.oid, 'SELECT') "
        "OR has_table_privilege(p.proowner, c.oid, 'INSERT') "
        "OR has_table_privilege(p.proowner, c.oid, 'UPDATE') "
        "OR has_table_privilege(p.proowner, c.oid, 'DELETE'))) ORDER BY 1",
        {"role": role, "theirs": theirs},
    ):
        if not callable_ and not fired_on:
            continue
        whose = "its owner" if owner == me else str(owner)
        found.append(
            (
                module,
                f"function {function}"
                + ("" if callable_ else f" (a trigger on {fired_on}, a table it writes)"),
                "EXECUTE" if callable_ else "fire",
                f"SECURITY DEFINER: it runs with the rights of {whose}, who holds the "
                f"{_other(module)} tables",
            )
        )
    return found


def _later_tables(ctx: CheckContext, module: str, role: str) -> list[Leak]:
    """What a role could do with a table and a sequence made in the other module's schema
    tomorrow (ALTER DEFAULT PRIVILEGES, judged by making them and asking PostgreSQL)."""
    schema = _other(module)
    if not ctx.value("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)):
        return []
    probe = f"sdtutor_probe_{secrets.token_hex(3)}"
    table, sequence = _qualified(schema, probe), _qualified(schema, probe + "_seq")
    found: list[Leak] = []
    try:
        with ctx.scratch() as conn:
            conn.execute(f"CREATE TABLE {table} (id int)")
            conn.execute(f"CREATE SEQUENCE {sequence}")
            for kind, obj, privileges in (
                ("table", table, TABLE_PRIVILEGES),
                ("sequence", sequence, ("USAGE", "SELECT", "UPDATE")),
            ):
                function = f"has_{kind}_privilege"
                for privilege in privileges:
                    if ctx.value(f"SELECT {function}(%s, %s, %s)", (role, obj, privilege)):
                        route = _route(ctx, role, kind, obj, privilege)
                        found.append(
                            (
                                module,
                                f"any {kind} made in schema {schema} from now on",
                                privilege,
                                f"default privileges, {route}",
                            )
                        )
    except psycopg.Error:
        return []  # the lab's login cannot make a table there: nor can it hand one over
    return found


def _through_views(ctx: CheckContext, module: str, role: str) -> list[tuple[str, str, str, str]]:
    """The other module's tables a role reads through a view it may select from: a view
    reads with its owner's rights (unless security_invoker), so granting the view hands
    over the rows."""
    edges: dict[str, set[str]] = {}
    invoker: set[str] = set()
    for view, base, options in ctx.query(
        "SELECT DISTINCT vn.nspname || '.' || v.relname, tn.nspname || '.' || t.relname, "
        "coalesce(v.reloptions, '{}') "
        "FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace "
        "JOIN pg_rewrite r ON r.ev_class = v.oid "
        "JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass "
        "AND d.refclassid = 'pg_class'::regclass "
        "JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        "WHERE v.relkind IN ('v', 'm') AND t.oid <> v.oid"
    ):
        edges.setdefault(str(view), set()).add(str(base))
        if any(str(o).lower() in ("security_invoker=true", "security_invoker=on") for o in options):
            invoker.add(str(view))
    found = []
    for view in sorted(edges):
        schema, name = view.split(".", 1)
        if view in invoker or not ctx.value(
            "SELECT has_table_privilege(%s, %s, 'SELECT')", (role, _qualified(schema, name))
        ):
            continue
        seen, todo, reached = {view}, [view], set()
        while todo:
            for base in edges.get(todo.pop(), ()):
                # Inside a view that runs as its owner, nested views do too.
                if base in edges and base not in seen:
                    seen.add(base)
                    todo.append(base)
                elif base not in edges:
                    reached.add(base)
        for base in sorted(reached):
            owner = OWNER.get(base.split(".", 1)[1])
            if owner and owner != module:
                found.append((module, base, "SELECT", f"through the view {view}, run as its owner"))
    return found


@check("no-cross-module-access")
def no_cross_module_access(ctx: CheckContext) -> Pass:
    """Neither role holds any privilege outside its own module, by any route."""
    roles = _roles(ctx)
    found = [leak for module, role in roles.items() for leak in _leaks(ctx, module, role)]
    evidence = Evidence(
        "what PostgreSQL says each module's role may do outside its own module",
        "table",
        (("role", "object", "privilege", "by which route"), found or [("-", "(nothing)", "", "")]),
    )
    if found:
        shown = [f"{r} may {p} {o} ({how})" for r, o, p, how in found]
        why = ""
        if any("PUBLIC" in how for *_, how in found):
            why += (
                " Grants travel with a table when it changes schema, and a grant to PUBLIC "
                "is a grant to every role there is."
            )
        if any("SECURITY DEFINER" in how for *_, how in found):
            why += (
                " A SECURITY DEFINER function runs with its owner's rights, whoever calls "
                "it (and every role may EXECUTE a new function, through PUBLIC): a module's "
                "own helper can be SECURITY INVOKER."
            )
        raise Fail(
            f"PostgreSQL says {len(found)} privilege(s) cross a module boundary: "
            f"{_listed(shown, 3)}.{why} A boundary that holds only while everyone is "
            "careful is a convention; revoke until each role reaches its own module and "
            f"nothing else (a report that needs both belongs to neither). Apply with {APPLY}.",
            evidence,
        )
    return Pass(
        "Neither role can touch a table, sequence or schema of the other module: not "
        "directly, not through PUBLIC or a role it belongs to, not through a view, a rule "
        "or a SECURITY DEFINER function, and not on tables made there later.",
        evidence,
    )


# ------------------------------------------------------------------ task 2: placing orders

BUDGET = 1.5  # seconds checkout gives place_order, whatever inventory does (README)
ALLOWED = 2.5  # the budget plus room for a busy machine: slower than this fails
CAP = 4.0  # a call still running after this long is reported stuck and stopped
LINGER = 0.3  # seconds a process stays after place_order returned where inventory failed
SLOW = 5.0  # the slow inventory answers after this long
HOLD = 6.0  # the hung inventory holds a connection this long, then closes it
MAX_ATTEMPTS = 3  # requests one order may send to inventory (README)
SOLD_OUT = "GLOBE-08"


@dataclass(frozen=True)
class Call:
    """One order the checker places, and how its inventory behaves."""

    behaviour: str  # ok | slow | hang | drop | error | refused
    lines: tuple[tuple[str, int], ...]
    expect: str  # the status place_order must return
    what: str  # what inventory did, as the messages say it
    short: str  # the same, in the evidence table
    delay: float = 0.02


CALLS = (
    Call("ok", (("MUG-01", 2),), "confirmed", "answered in 20 ms", "20 ms"),
    Call("ok", (("TEE-02", 1), ("NOTE-06", 3)), "confirmed", "answered in 20 ms", "20 ms"),
    Call(
        "ok",
        (("CAP-03", 1),),
        "confirmed",
        "answered in 0.25 s (near its slowest healthy)",
        "0.25 s",
        0.25,
    ),
    Call(
        "ok",
        ((SOLD_OUT, 1), ("MUG-01", 1)),
        "rejected",
        f"said 409: {SOLD_OUT} is sold out",
        "409 sold out",
    ),
    Call("ok", (("PEN-05", 1),), "confirmed", "answered in 20 ms", "20 ms"),
    Call("error", (("NOTE-06", 1),), "pending", "answered 503 Service Unavailable", "503"),
    Call("refused", (("TEE-02", 2),), "pending", "refused connections (it is down)", "refused"),
    Call(
        "drop",
        (("MUG-01", 1),),
        "pending",
        "reserved, then cut the connection unanswered",
        "reserved, cut",
    ),
    Call(
        "slow",
        (("BAG-04", 1),),
        "pending",
        f"reserved, then answered after {SLOW:g} s",
        f"reserved, {SLOW:g} s",
    ),
    Call("hang", (("LAMP-07", 1),), "pending", f"never answered (held it {HOLD:g} s)", "hung"),
)
HEALTHY = [i for i, c in enumerate(CALLS) if c.behaviour == "ok"]
DOWN = [i for i, c in enumerate(CALLS) if c.behaviour != "ok"]
HELD = [i for i, c in enumerate(CALLS) if c.behaviour in ("slow", "hang")]
GROUPS = [HEALTHY, *([i] for i in DOWN if i not in HELD), HELD]
"""The runs, all started at once, each with its own deadline: the healthy orders released
together (they cannot make one another wait), each quick failure alone (code that retries
one kind of failure forever is stuck there only), and the two where inventory holds the
request together (the same to a client until it gives up: both wait, or neither does)."""


@dataclass
class Seen:
    """What the checker's inventory saw for one call."""

    requests: int = 0
    keys: list[str | None] = field(default_factory=list)
    reserved: int = 0  # reservations made for it
    replayed_from: list[int] = field(default_factory=list)  # calls whose key it reused
    bad: list[str] = field(default_factory=list)  # why a request was refused (400)
    bodies: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each arrived (checker's clock)

    def spread(self) -> float:
        """Seconds from its first request to its last."""
        return self.times[-1] - self.times[0] if self.times else 0.0


@dataclass
class Inventory:
    """The inventory module, played by the checker: reserves once per Idempotency-Key."""

    seen: dict[int, Seen] = field(default_factory=lambda: {i: Seen() for i in range(len(CALLS))})
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1

    def arrived(self, call: int, key: str | None, raw: bytes) -> tuple[Any, str]:
        """Count a request; its parsed body and what is wrong with it ('' if nothing)."""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body, problem = None, "the body is not JSON"
        else:
            problem = _body_problem(body)
        with self.lock:
            seen = self.seen[call]
            seen.requests += 1
            seen.keys.append(key)
            seen.bodies.append(body)
            seen.times.append(time.monotonic())
            if problem:
                seen.bad.append(problem)
        return body, problem

    def reserve(self, call: int, key: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """Hold the stock, once per key: a key seen before gets the first answer back."""
        with self.lock:
            if key and key in self.answers:
                first, answer = self.answers[key]
                if first != call:
                    self.seen[call].replayed_from.append(first)
                return answer
            answer = {"reservation": f"r-{self.next_id}", "order_id": body["order_id"]}
            self.next_id += 1
            self.seen[call].reserved += 1
            if key:
                self.answers[key] = (call, answer)
            return answer


def _body_problem(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("lines"), list):
        return 'the body is not {"order_id": ..., "lines": [...]}'
    if type(body.get("order_id")) is not int:
        return f"order_id is {body.get('order_id')!r}, not the order's id (a whole number)"
    for line in body["lines"]:
        if (
            not isinstance(line, dict)
            or not isinstance(line.get("sku"), str)
            or type(line.get("qty")) is not int
        ):
            return f'a line is {line!r}, not {{"sku": "...", "qty": n}}'
    return ""


def _serve(ctx: CheckContext) -> tuple[Inventory, int]:
    """The checker's inventory on a free port, shut down when the checks end."""
    inventory = Inventory()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            match = re.fullmatch(r"/c(\d+)/reservations/?", urlsplit(self.path).path)
            if not match or int(match.group(1)) >= len(CALLS):
                self._send(404, {"error": f"no such endpoint: POST {self.path}"})
                return
            number = int(match.group(1))
            call = CALLS[number]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, 1 << 20)) if length > 0 else b""
            key = self.headers.get("Idempotency-Key") or None
            body, problem = inventory.arrived(number, key, raw)
            if call.behaviour == "hang":
                inventory.stop.wait(HOLD)
                self.close_connection = True
                return
            if call.behaviour == "error":
                self._send(503, {"error": "inventory is unavailable"})
                return
            if problem:
                self._send(400, {"error": problem})
                return
            sold_out = [line["sku"] for line in body["lines"] if line["sku"] == SOLD_OUT]
            if sold_out:
                inventory.stop.wait(call.delay)
                self._send(409, {"error": "out of stock", "sku": sold_out[0]})
                return
            answer = inventory.reserve(number, key, body)
            if call.behaviour == "drop":
                self.close_connection = True  # no answer at all
                return
            inventory.stop.wait(SLOW if call.behaviour == "slow" else call.delay)
            self._send(201, answer)

        def do_GET(self) -> None:
            self._send(404, {"error": "the inventory API takes POST .../reservations"})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the caller gave up: as a real server, carry on

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def close() -> None:
        inventory.stop.set()  # held requests end now
        server.shutdown()
        server.server_close()

    ctx.on_close(close)
    return inventory, int(server.server_address[1])


def _closed_port(ctx: CheckContext) -> int:
    """A port that refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    ctx.on_close(sock.close)
    return int(sock.getsockname()[1])


@dataclass
class Placed:
    """Everything the orders' runs showed."""

    answers: list[dict[str, Any]]
    seen: dict[int, Seen]
    saved: dict[int, list[tuple[int, str]]]  # call: [(order id, status)] under its customer
    lines: dict[int, list[tuple[str, int]]]  # order id: its lines


def _orders_tables(ctx: CheckContext) -> tuple[str, str]:
    found = ctx.query(
        "SELECT coalesce(to_regclass('orders.orders'), to_regclass('public.orders'))::text, "
        "coalesce(to_regclass('orders.order_lines'), to_regclass('public.order_lines'))::text"
    )
    orders, lines = found[0]
    if orders is None or lines is None:
        raise Fail(
            "There is no orders or order_lines table, in schema orders or in public: "
            "place_order has nowhere to save. `sdtutor lab reset monolith-vs-microservices "
            "--data` brings the seeded tables back."
        )
    return str(orders), str(lines)


def _answer(run: LearnerRun, linger: float) -> dict[str, Any]:
    """One call's outcome as the checks read it; its time is the runner's (measured
    outside the learner's process), less the harness's linger."""
    if run.timed_out or run.limit == "timeout":
        return {"stuck": True, "seconds": CAP}
    if IMPORT_FAILED in run.error:
        raise Fail(
            f"orders.py does not import: {run.error.split(IMPORT_FAILED, 1)[1].strip()[:200]}. "
            "Run `python -c 'import orders'` in the workspace to see why.",
            Evidence("traceback and output", "text", run.traceback or run.output or "(none)"),
        )
    seconds = round(max(0.0, run.seconds - linger), 3)
    if run.ok:
        return {"result": run.value, "seconds": seconds}
    lines = (run.error or "it ended without an answer").strip().splitlines()
    first = (lines[0] if lines else "")[:70]
    if run.limit:  # memory, CPU or processes: the runner's words
        error, short = f"was stopped: {first}", "stopped"
    elif run.traceback:  # what place_order raised
        error, short = f"raised {first}", f"raised {first.split(':')[0]}"
    else:  # it exited, or was killed, before returning
        error, short = f"did not return: {first}", "no answer"
    return {"error": error, "short": short, "seconds": seconds}


def _place(ctx: CheckContext) -> Placed:
    """Place every order of CALLS through the learner's place_order, each in a process of
    its own: the healthy ones together, the two where inventory holds the request
    together, the others one by one (so one that loops forever is told apart)."""
    orders, lines = _orders_tables(ctx)
    inventory, port = _serve(ctx)
    dead = _closed_port(ctx)
    tag = secrets.token_hex(3)

    def args(i: int) -> list[Any]:
        call = CALLS[i]
        url = f"http://127.0.0.1:{dead if call.behaviour == 'refused' else port}/c{i}"
        order = {
            "customer": f"check-{tag}-{i}",
            "lines": [{"sku": s, "qty": q} for s, q in call.lines],
        }
        return [url, order, 0.0 if call.behaviour == "ok" else LINGER]

    def place(group: list[int]) -> list[dict[str, Any]]:
        linger = args(group[0])[2]
        common: dict[str, Any] = {"clients": ("postgres",), "files": FILES, "timeout": CAP + linger}
        if len(group) == 1:
            runs = [ctx.run(HARNESS_FILE, "place_one", *args(group[0]), **common)]
        else:
            runs = ctx.workers(
                HARNESS_FILE, "place_one", len(group), args_for=lambda k: args(group[k]), **common
            ).runs
        return [_answer(run, linger) for run in runs]

    # Every group at once: a correct answer takes as long as its slowest order, and code
    # that hangs is stopped after CAP seconds wherever it hangs.
    answers: dict[int, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=len(GROUPS)) as pool:
        for group, placed in zip(GROUPS, pool.map(place, GROUPS), strict=True):
            answers.update(zip(group, placed, strict=True))
    saved: dict[int, list[tuple[int, str]]] = {i: [] for i in range(len(CALLS))}
    for order_id, customer, status in ctx.query(
        f"SELECT id, customer, status FROM {orders} WHERE customer LIKE %s ORDER BY id",
        (f"check-{tag}-%",),
    ):
        number = int(str(customer).rsplit("-", 1)[1])
        saved[number].append((int(order_id), str(status)))
    ids = [order_id for rows in saved.values() for order_id, _ in rows]
    kept: dict[int, list[tuple[str, int]]] = {order_id: [] for order_id in ids}
    for order_id, sku, qty in ctx.query(
        f"SELECT order_id, sku, qty FROM {lines} WHERE order_id = ANY(%s) ORDER BY id", (ids,)
    ):
        kept[int(order_id)].append((str(sku), int(qty)))
    return Placed([answers[i] for i in range(len(CALLS))], inventory.seen, saved, kept)


def _placed(ctx: CheckContext) -> Placed:
    """The orders' runs, made once per `lab check` for the three checks that judge them."""
    return ctx.once("placements", lambda: _place(ctx))


def _returned(answer: dict[str, Any], short: bool = False) -> str:
    if answer.get("stuck"):
        return "still waiting" if short else f"still waiting after {CAP:g} s"
    if "error" in answer:
        return str(answer["short"] if short else answer["error"])
    result = answer.get("result")
    if short and isinstance(result, dict) and set(result) >= {"order_id", "status"}:
        return f"{result['status']} #{result['order_id']}"
    return json.dumps(result)[:60]


def _status(answer: dict[str, Any]) -> Any:
    result = answer.get("result")
    return result.get("status") if isinstance(result, dict) else None


def _table(placed: Placed, which: list[int]) -> Evidence:
    rows = []
    for i in which:
        answer, seen = placed.answers[i], placed.seen[i]
        saved = ", ".join(f"{s} #{o}" for o, s in placed.saved[i]) or "nothing"
        seconds = f"> {CAP:g}" if answer.get("stuck") else f"{answer.get('seconds', 0):.2f}"
        rows.append(
            (
                str(i + 1),
                CALLS[i].short,
                _returned(answer, short=True),
                seconds,
                str(seen.requests),
                str(seen.reserved),
                saved,
            )
        )
    return Evidence(
        "each order: what inventory did; what place_order returned, in seconds; the "
        "requests and reservations inventory saw; what PostgreSQL holds",
        "table",
        (("#", "inventory", "returned", "s", "req", "held", "saved"), rows),
    )


def _saved_problem(placed: Placed, i: int) -> tuple[str, str]:
    """What is wrong with what PostgreSQL holds for call i: ("lost" | "status", why), or
    ("", "") when nothing is."""
    rows = placed.saved[i]
    status = _status(placed.answers[i])
    if not rows:
        return "lost", "no order was saved"
    if len(rows) > 1:
        return "", ""  # judged by retries-bounded: one checkout, several orders
    order_id, saved = rows[0]
    result = placed.answers[i].get("result")
    if isinstance(result, dict) and result.get("order_id") != order_id:
        got = result.get("order_id")
        return "status", f"it returned order_id {got!r}, but the order saved is #{order_id}"
    want = sorted(CALLS[i].lines)
    if sorted(placed.lines[order_id]) != want:
        got_lines = sorted(placed.lines[order_id])
        return "lost", f"order #{order_id} was saved with lines {got_lines}, not {want}"
    if saved != status:
        return "status", f"the order is saved as {saved!r}, but place_order said {status!r}"
    return "", ""


@check("healthy-reserves")
def healthy_reserves(ctx: CheckContext) -> Pass:
    """With inventory healthy, each order is confirmed with one reservation (a sold-out
    one rejected), saved with its lines and status."""
    placed = _placed(ctx)
    problems: list[str] = []
    for i in HEALTHY:
        call, answer, seen = CALLS[i], placed.answers[i], placed.seen[i]
        label = f"order {i + 1} (inventory {call.what})"
        if answer.get("stuck") or "error" in answer:
            problems.append(f"{label}: place_order {_returned(answer)}")
            continue
        status = _status(answer)
        result = answer.get("result")
        if not isinstance(result, dict) or type(result.get("order_id")) is not int:
            problems.append(
                f'{label}: place_order returned {_returned(answer)}, not {{"order_id": <id>, '
                f'"status": "{call.expect}"}}'
            )
        elif seen.requests == 0:
            problems.append(f"{label}: inventory saw no request, yet place_order said {status!r}")
        elif seen.bad:
            problems.append(f"{label}: inventory answered 400, {seen.bad[0]}")
        elif status != call.expect:
            problems.append(f"{label}: place_order said {status!r}, not {call.expect!r}")
        elif call.expect == "confirmed" and seen.replayed_from:
            first = seen.replayed_from[0] + 1
            problems.append(
                f"{label}: confirmed, but inventory reserved nothing for it: its "
                f"Idempotency-Key had already been used by order {first}, so inventory "
                "answered with that order's reservation (one key per order)"
            )
        elif call.expect == "confirmed" and any(
            b.get("order_id") != result["order_id"] for b in seen.bodies if isinstance(b, dict)
        ):
            problems.append(
                f"{label}: inventory was asked to reserve for a different order_id than "
                f"the {result['order_id']} place_order returned"
            )
        elif call.expect == "confirmed" and any(
            sorted((x["sku"], x["qty"]) for x in b["lines"]) != sorted(call.lines)
            for b in seen.bodies
            if isinstance(b, dict)
        ):
            problems.append(f"{label}: inventory was asked for other lines than the order's")
        elif (problem := _saved_problem(placed, i))[0]:
            problems.append(f"{label}: {problem[1]}")
        elif answer["seconds"] > ALLOWED:
            problems.append(f"{label}: place_order took {answer['seconds']:.1f} s")
    evidence = _table(placed, HEALTHY)
    if problems:
        tight = any("0.25 s" in p and "'pending'" in p for p in problems)
        advice = (
            " A healthy inventory answers within 0.3 s: a timeout shorter than its normal "
            "answers turns a good day into a stream of pending orders."
            if tight
            else " Save the order, ask inventory (POST {inventory_url}/reservations), and "
            "set its status from the answer: 201 confirmed, 409 rejected."
        )
        raise Fail(f"{_listed(problems, 2)}.{advice}", evidence)
    return Pass(
        f"{len(HEALTHY)} orders on a healthy inventory: confirmed with one reservation "
        f"each, the sold-out one rejected, all saved with their lines.",
        evidence,
    )


@check("degrades-in-time")
def degrades_in_time(ctx: CheckContext) -> Pass:
    """With inventory failing five ways, place_order returns 'pending' within the
    budget, raises nothing, and keeps the order."""
    placed = _placed(ctx)
    kinds: dict[str, list[str]] = {"stuck": [], "raised": [], "slow": [], "lost": [], "status": []}
    for i in DOWN:
        call, answer = CALLS[i], placed.answers[i]
        label = f"when inventory {call.what}"
        if answer.get("stuck"):
            kinds["stuck"].append(f"{label}, place_order was still waiting after {CAP:g} s")
        elif "error" in answer:
            kinds["raised"].append(
                f"{label}, place_order {answer['error']} after {answer['seconds']:.1f} s"
            )
        elif answer["seconds"] > ALLOWED:
            kinds["slow"].append(f"{label}, place_order took {answer['seconds']:.1f} s")
        elif (problem := _saved_problem(placed, i))[0]:
            kinds[problem[0]].append(f"{label}, {problem[1]}")
        elif _status(answer) != "pending":
            kinds["status"].append(
                f"{label}, place_order returned {_returned(answer)}, not status 'pending'"
            )
    evidence = _table(placed, DOWN)
    advice = {
        "stuck": "A call with no timeout waits as long as inventory does, and every "
        "checkout behind it waits too, until the whole shop hangs. Give every request "
        f"a timeout, and keep all attempts together within {BUDGET:g} s.",
        "raised": "An error that escapes place_order is a 500 for the customer. Timeouts, "
        "refused and dropped connections and 5xx answers are what a network does: "
        "catch them and fall back to 'pending'.",
        "slow": f"Checkout gives place_order {BUDGET:g} s in all: every attempt's timeout, "
        "and the pauses between them, come out of that one budget.",
        "lost": "A fallback that loses the order fails silently: save it first, and keep "
        "it as 'pending' when inventory does not answer.",
        "status": "Inventory never said no, so nobody knows whether the stock is held: "
        "keep the order as 'pending' (a later job confirms it with the same "
        "Idempotency-Key), and return that status.",
    }
    for kind, found in kinds.items():
        if found:
            others = sum(len(v) for v in kinds.values()) - len(found)
            also = f" (and {others} other problem(s) in the table)" if others else ""
            raise Fail(f"{_listed(found, 2)}{also}. {advice[kind]}", evidence)
    slowest = max(placed.answers[i]["seconds"] for i in DOWN)
    return Pass(
        f"Inventory failed {len(DOWN)} ways; each time place_order returned 'pending' "
        f"(slowest {slowest:.2f} s of the {BUDGET:g} s budget) and the order was kept.",
        evidence,
    )


@check("retries-bounded")
def retries_bounded(ctx: CheckContext) -> Pass:
    """At most 3 requests per order, never two reservations or two orders for one
    checkout, and a sold-out answer not retried."""
    placed = _placed(ctx)
    storms, doubles, twice, retried = [], [], [], []
    for i, call in enumerate(CALLS):
        seen = placed.seen[i]
        label = f"inventory {call.what}"
        if seen.requests > MAX_ATTEMPTS:
            storms.append(
                f"{seen.requests} requests for order {i + 1} ({label}) in {seen.spread():.2f} s"
            )
        if seen.reserved > 1:
            keys = sorted({k for k in seen.keys if k})
            carrying = (
                f"its requests carrying Idempotency-Key {', '.join(keys)}"
                if keys
                else "none of its requests carrying an Idempotency-Key"
            )
            doubles.append(
                f"order {i + 1} ({label}) was reserved {seen.reserved} times, {carrying}"
            )
        if len(placed.saved[i]) > 1:
            twice.append(f"{len(placed.saved[i])} orders saved for checkout {i + 1} ({label})")
        if call.expect == "rejected" and seen.requests > 1:
            retried.append(f"order {i + 1} asked {seen.requests} times after a 409")
    evidence = _table(placed, list(range(len(CALLS))))
    if twice:
        raise Fail(
            f"{_listed(twice, 2)}: retrying the whole of place_order saves a new order "
            "each time. Retry the request to inventory, not the checkout.",
            evidence,
        )
    if doubles:
        raise Fail(
            f"{_listed(doubles, 2)}. A request that timed out may still have been done: "
            "retried without the same Idempotency-Key, it holds the stock twice. Send one "
            "key per order (derived from the order's id), the same on every attempt.",
            evidence,
        )
    if storms:
        raise Fail(
            f"{_listed(storms, 2)}: at most {MAX_ATTEMPTS} allowed. Retrying a struggling "
            "service at once and again and again is how one slow dependency becomes an "
            f"outage. Try at most {MAX_ATTEMPTS} times, with a pause that grows between tries.",
            evidence,
        )
    if retried:
        raise Fail(
            f"{_listed(retried, 2)}. A 409 is inventory's answer, not a failure: asking "
            "again gets the same no. Retry only what may succeed next time (no answer, 5xx).",
            evidence,
        )
    most = max(placed.seen[i].requests for i in range(len(CALLS)))
    return Pass(
        f"At most {most} request(s) per order, never more than one reservation or one "
        "saved order per checkout, the sold-out answer taken at its word.",
        evidence,
    )
