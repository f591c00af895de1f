"""CheckContext: what a check can look at, through helpers that fail with evidence."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from sdtutor.content.models import LabSpec
from sdtutor.lab.checks.broker import ExchangeFacts, QueueFacts, exchange_facts, queue_facts
from sdtutor.lab.checks.catalog import INDEX_QUERY, Indexes, index_from_row
from sdtutor.lab.checks.keys import Keys, escape_glob, scan_keys
from sdtutor.lab.checks.outcome import Blocked, CannotCheck, Fail, OutOfTime
from sdtutor.lab.checks.pglocks import LockWatch, blocked, connect_checker
from sdtutor.lab.checks.plans import Plan
from sdtutor.lab.checks.queries import LearnerQuery, QueryFile
from sdtutor.lab.results import Evidence

if TYPE_CHECKING:
    from sdtutor.lab.proxy import Proxy
    from sdtutor.lab.runner import LearnerRun, Limits, ServiceHandle, WorkersRun

STATEMENT_TIMEOUT = 10.0  # seconds a checker statement may run
LOCK_TIMEOUT = 3.0  # seconds a checker statement may wait for a lock
CLIENT_TIMEOUT = 5.0  # socket timeouts of the Redis and AMQP clients

# URL schemes of each service kind, to find "the" instance of a kind when a check does
# not name one.
_SCHEMES = {
    "postgres": ("postgresql", "postgres"),
    "redis": ("redis", "rediss", "unix"),
    "rabbitmq": ("amqp", "amqps"),
}
_LABELS = {"postgres": "PostgreSQL", "redis": "Redis", "rabbitmq": "RabbitMQ"}
_EXPLAIN = "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) "


T = TypeVar("T")
RUNNER_ENV = frozenset(
    {"PATH", "HOME", "TMPDIR", "LANG", "MALLOC_ARENA_MAX", "PORT"}
    | {"DATABASE_URL", "REDIS_URL", "AMQP_URL"}
)
"""Variables the runner gives learner code itself (see sdtutor.lab.runner.launch)."""


@dataclass
class CheckContext:
    """What a check can look at: the lab, the workspace and the lab's services.

    `prefixes` maps a service kind to the lab's namespace on it, e.g.
    {"redis": "sdtutor:ab12cd34:caching:", "rabbitmq": "sdtutor.ab12cd34.message-queues."};
    the Redis and RabbitMQ helpers take names relative to it. `deadline` is the
    time.monotonic() by which the whole run must end (run_checks sets it).
    """

    lab: LabSpec
    workspace: Path
    urls: dict[str, str]
    prefixes: dict[str, str] = field(default_factory=dict)
    statement_timeout: float = STATEMENT_TIMEOUT
    lock_timeout: float = LOCK_TIMEOUT
    deadline: float | None = None
    _pg: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _watches: dict[str, LockWatch] = field(default_factory=dict, init=False, repr=False)
    _redis: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _amqp: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _interrupted: bool = field(default=False, init=False, repr=False)
    _proxies: list[Any] = field(default_factory=list, init=False, repr=False)
    _services: list[Any] = field(default_factory=list, init=False, repr=False)
    _once: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _closers: list[Callable[[], object]] = field(default_factory=list, init=False, repr=False)

    # ------------------------------------------------------------ shared between checks

    def once(self, key: str, make: Callable[[], T]) -> T:
        """`make()` the first time a check of this `lab check` asks for `key`; the same
        result (or the same Fail, raised again) for every check after it.

        For what several checks judge: one learner run over thousands of inputs, one
        start of the learner's service. `ctx.once("placements", lambda: _place(ctx))`.
        """
        if key not in self._once:
            try:
                self._once[key] = (True, make())
            except Fail as failed:
                self._once[key] = (False, failed)
        made, value = self._once[key]
        if not made:
            raise value
        return value

    # ------------------------------------------------------------ services

    def url(self, kind: str, instance: str | None = None) -> str:
        """The URL of an instance (by name), or of the lab's one instance of a kind."""
        if instance is not None:
            if instance not in self.urls:
                raise CannotCheck(f"this lab has no service named '{instance}'")
            return self.urls[instance]
        return self.urls[self._instance(kind)]

    def remaining(self) -> float | None:
        """Seconds left before the run's deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    # ------------------------------------------------------------ PostgreSQL

    def pg(self, instance: str | None = None) -> Any:
        """An autocommit psycopg connection with the checker's timeouts, parallel plans off."""
        import psycopg  # costly import: only when a check needs it

        url = self.url("postgres", instance)
        conn = self._pg.get(url)
        if conn is None or conn.closed:
            try:
                conn = connect_checker(url, self.statement_timeout, self.lock_timeout)
            except psycopg.OperationalError as exc:
                raise CannotCheck(f"cannot reach the lab's PostgreSQL: {exc}") from None
            self._pg[url] = conn
            if url not in self._watches:
                self._watches[url] = LockWatch(url)
            self._watches[url].watch(conn)
        return conn

    @contextlib.contextmanager
    def _guard(self, doing: str = "", instance: str | None = None) -> Iterator[None]:
        """Turn lock and statement timeouts into a Fail that says what to do."""
        try:
            yield
        except Exception as exc:
            translated = self.translate(exc, doing, instance)
            if translated is None:
                raise
            raise translated from None

    def translate(
        self, exc: BaseException, doing: str = "", instance: str | None = None
    ) -> BaseException | None:
        """A lock timeout as Blocked, a cancelled statement as a Fail or OutOfTime."""
        import psycopg

        if isinstance(exc, Blocked | OutOfTime):
            return exc
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return self._blocked(doing, instance)
        if isinstance(exc, psycopg.errors.QueryCanceled):
            if self._interrupted:
                return OutOfTime()
            what = f" ({doing})" if doing else ""
            return Fail(
                f"PostgreSQL stopped a query of this check{what} after "
                f"{self.statement_timeout:g} s (statement_timeout). Something makes it far "
                f"slower than it should be: a query that reads much more than it needs, or a "
                f"table someone else keeps busy."
            )
        return None

    def _blocked(self, doing: str, instance: str | None) -> Blocked:
        try:
            url = self.url("postgres", instance)
        except CannotCheck:
            url = next(iter(self._pg), "")
        watch = self._watches.get(url)
        ours = [c.info.backend_pid for c in self._pg.values() if not c.closed]
        sessions = watch.blockers(ours) if watch else []
        return blocked(sessions, self.lock_timeout, doing)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run a statement on the lab's database and return its rows ([] for DDL)."""
        with self._guard():
            cur = self.pg().execute(sql, params)
            return list(cur.fetchall()) if cur.description is not None else []

    def value(self, sql: str, params: Any = None) -> Any:
        """Run a query and return the first column of its first row (None if no row)."""
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextlib.contextmanager
    def scratch(self, instance: str | None = None) -> Iterator[Any]:
        """BEGIN … ROLLBACK on the checker's connection: for throwaway objects.

        Whatever the block creates or changes (a helper index, test rows) is rolled back,
        also when the check fails inside it. Yields the connection.
        """
        conn = self.pg(instance)
        with (
            self._guard("a throwaway transaction", instance),
            conn.transaction(force_rollback=True),
        ):
            yield conn

    def analyze(self, *tables: str) -> None:
        """VACUUM ANALYZE tables (ANALYZE inside scratch), so plans see the latest DDL."""
        from psycopg import sql
        from psycopg.pq import TransactionStatus

        conn = self.pg()
        in_block = conn.info.transaction_status != TransactionStatus.IDLE
        verb = "ANALYZE" if in_block else "VACUUM ANALYZE"
        for table in tables:
            with self._guard(f"{verb} {table}"):
                conn.execute(sql.SQL(verb + " {}").format(sql.Identifier(table)))

    def plan(
        self,
        query: str | LearnerQuery,
        params: Any = None,
        *,
        title: str | None = None,
        evidence: tuple[Evidence, ...] = (),
    ) -> Plan:
        """Run a query under EXPLAIN (ANALYZE, BUFFERS) and return its executed plan.

        The query runs for real: wrap it in `ctx.scratch()` when it writes.
        """
        sql = query.psycopg_sql if isinstance(query, LearnerQuery) else query
        with self._guard("EXPLAIN ANALYZE"), self._learner_errors(query, len(_EXPLAIN)):
            row = self.pg().execute(_EXPLAIN + sql, params).fetchone()
        if isinstance(query, LearnerQuery):
            evidence = (query.evidence(), *evidence)
        return Plan(
            sql,
            row[0][0]["Plan"],
            title or "query plan",
            context=evidence,
            catalog=self._catalog_evidence,
        )

    def explain(self, query: str, params: Any = None) -> Plan:
        """Run a query under EXPLAIN (ANALYZE, BUFFERS) and return its plan."""
        return self.plan(query, params)

    def fetch(self, query: str | LearnerQuery, params: Any = None) -> list[dict[str, Any]]:
        """Run a query and return its rows as {column: value}, columns as it names them.

        A learner's query that PostgreSQL refuses is a Fail naming the file and line.
        """
        from psycopg.rows import dict_row

        sql = query.psycopg_sql if isinstance(query, LearnerQuery) else query
        with self._guard(), self._learner_errors(query):
            cur = self.pg().cursor(row_factory=dict_row)
            try:
                return list(cur.execute(sql, params).fetchall())
            finally:
                cur.close()

    @contextlib.contextmanager
    def _learner_errors(self, query: str | LearnerQuery, offset: int = 0) -> Iterator[None]:
        import psycopg

        if not isinstance(query, LearnerQuery):
            yield
            return
        try:
            yield
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
            raise
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            position = getattr(exc.diag, "statement_position", None) if exc.diag else None
            line = query.line
            if position and str(position).isdigit():
                line = query.file_line(max(1, int(position) - offset))
            raise Fail(
                f"{query.file}:{line}: PostgreSQL refused {query.name}: {first}",
                query.evidence(),
            ) from None

    def indexes(self, table: str) -> Indexes:
        """The indexes on a table, from the catalog."""
        return Indexes(index_from_row(row) for row in self.query(INDEX_QUERY, (table,)))

    def _catalog_evidence(self, tables: set[str]) -> list[Evidence]:
        try:
            return [self.indexes(t).evidence(f"indexes on {t}") for t in sorted(tables)]
        except Exception:  # evidence is a nicety: never hide the failure it explains
            return []

    def selects_same_rows(self, table: str, condition: str, reference: str) -> bool:
        """Whether two WHERE conditions pick exactly the same rows of a table, today.

        Judges a condition by what it selects, not how it is spelled: `'pending' =
        status`, `status IN ('pending')` and `status::text = 'pending'` all match
        `status = 'pending'`. Conditions are SQL from the catalog or the lab, never
        from a learner's file.
        """
        from psycopg import sql

        # A row is in a partial index when its WHERE is true: NULL counts as false.
        query = sql.SQL(
            "SELECT count(*) FILTER (WHERE coalesce(({a}), false) <> coalesce(({b}), false)) "
            "FROM {t}"
        ).format(a=sql.SQL(condition), b=sql.SQL(reference), t=sql.Identifier(table))
        return self.value(query.as_string(self.pg())) == 0

    # ------------------------------------------------------------ workspace

    def read(self, name: str) -> str:
        """A workspace file's text; Fail with a clear message when it is missing."""
        path = self.workspace / name
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise Fail(
                f"{name} is missing from your workspace ({self.workspace}).",
                Evidence(
                    "what to do",
                    "text",
                    f"Run `sdtutor lab reset {self.lab.topic}` to get the starting files back.",
                ),
            ) from None

    def queries(self, name: str) -> QueryFile:
        """The `-- name:` queries of a workspace SQL file."""
        return QueryFile(name, self.read(name))

    # ------------------------------------------------------------ learner code

    def _kind(self, name: str) -> str:
        """The kind of an instance of this lab."""
        try:
            return self.lab.instance(name).kind
        except KeyError:
            return next(
                (
                    k
                    for k, schemes in _SCHEMES.items()
                    if urlsplit(self.urls[name]).scheme in schemes
                ),
                "tcp",
            )

    def _instance(self, name: str) -> str:
        """An instance name, given itself or its kind (the lab's one instance of it)."""
        if name in self.urls:
            return name
        found = [n for n in self.urls if self._kind(n) == name]
        label = _LABELS.get(name, name)
        if not found:
            raise CannotCheck(f"this lab has no {label} service")
        if len(found) > 1:
            raise CannotCheck(
                f"this lab has several {label} services ({', '.join(found)}): "
                "the check must name one"
            )
        return found[0]

    def _learner_setup(
        self, timeout: float | None, extra_env: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], dict[str, str], Limits]:
        """Services, environment and limits for learner code (every URL is the lab's own).

        `extra_env`: more variables for the learner's code (a peer the checker plays, a
        setting); never one the runner sets itself (the URLs, prefixes, PATH, HOME...).
        """
        from sdtutor.lab.runner import Limits, Service
        from sdtutor.services import kind as service_kind

        services = {name: Service(self._kind(name), url) for name, url in self.urls.items()}
        env: dict[str, str] = {}
        for name in self.urls:
            variable = (
                service_kind(self._kind(name)).prefix_env if self._kind(name) in _SCHEMES else ""
            )
            if variable and variable not in env:
                env[variable] = self.prefixes.get(name, self.prefixes.get(self._kind(name), ""))
        for spec in self.lab.instances:
            if spec.roles and spec.name in self.urls:  # a lab's extra PostgreSQL roles
                from sdtutor.services.postgres import extra_role, role_env

                user = unquote(urlsplit(self.urls[spec.name]).username or "")
                roles = {short: extra_role(user, short) for short in spec.roles}
                for variable, role in role_env(roles).items():
                    env.setdefault(variable, role)
        for variable, value in (extra_env or {}).items():
            if variable in env or variable in RUNNER_ENV or variable.startswith("SDTUTOR_"):
                raise ValueError(f"{variable} is set by the runner; a check cannot set it")
            env[variable] = str(value)
        limit = timeout or self.lab.time_limit
        remaining = self.remaining()
        if remaining is not None:
            limit = max(0.5, min(limit, remaining))
        bounds = self.lab.limits
        limits = Limits(
            timeout=limit,
            cpu_seconds=bounds.cpu_seconds,
            memory_mb=bounds.memory_mb,
            processes=bounds.processes,
            output_bytes=bounds.output_bytes,
        )
        return services, env, limits

    @staticmethod
    def _files(files: dict[str, str | bytes | Path] | None) -> dict[str, str | bytes] | None:
        """Files for the learner's private copy of the workspace: contents, or paths to read
        (a lab's own harness beside its checks.py, say)."""
        if not files:
            return None
        return {n: v.read_bytes() if isinstance(v, Path) else v for n, v in files.items()}

    def _proxies_for(self, proxies: dict[str, Proxy] | None) -> dict[str, Proxy] | None:
        return {self._instance(k): v for k, v in proxies.items()} if proxies else None

    def run(
        self,
        file: str,
        function: str,
        *args: Any,
        clients: tuple[str, ...] | list[str] = (),
        kwargs: dict[str, Any] | None = None,
        proxies: dict[str, Proxy] | None = None,
        files: dict[str, str | bytes | Path] | None = None,
        timeout: float | None = None,
        fresh: bool = False,
        env: dict[str, str] | None = None,
    ) -> LearnerRun:
        """Call the learner's `function(*clients, *args, **kwargs)` from `file`, isolated.

        `clients` names services (by instance or kind) whose client is made in the child
        and passed first. What it sends is counted at a proxy: `run.server[instance]`.
        `fresh=True` starts a new interpreter for the call: learner calls are forked from
        one warm process and share its str hash salt, so "the same in a second process"
        compares a call with a fresh one (see runner.run_function). `env` adds variables
        (a peer the checker plays: `env={"INVENTORY_URL": url}`).
        """
        from sdtutor.lab.runner import run_function

        services, env, limits = self._learner_setup(timeout, env)
        return run_function(
            self.workspace,
            file,
            function,
            services=services,
            clients=[self._instance(c) for c in clients],
            args=list(args),
            kwargs=kwargs or {},
            env=env,
            limits=limits,
            proxies=self._proxies_for(proxies),
            files=self._files(files),
            fresh=fresh,
        )

    def workers(
        self,
        file: str,
        function: str,
        n: int,
        *,
        clients: tuple[str, ...] | list[str] = (),
        args_for: Any = (),
        proxies: dict[str, Proxy] | None = None,
        files: dict[str, str | bytes | Path] | None = None,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> WorkersRun:
        """Run `function` in `n` processes released together at a start barrier."""
        from sdtutor.lab.runner import run_workers

        services, env, limits = self._learner_setup(timeout, env)
        with _crowd(n):
            return run_workers(
                self.workspace,
                file,
                function,
                n,
                services=services,
                clients=[self._instance(c) for c in clients],
                args_for=args_for,
                env=env,
                limits=limits,
                proxies=self._proxies_for(proxies),
                files=self._files(files),
            )

    def proxy(self, service: str) -> Proxy:
        """A started proxy in front of one of the lab's services, for faults and counts;
        pass it as `proxies={service: p}`. Closed when the checks end."""
        from sdtutor.lab.proxy import Proxy
        from sdtutor.lab.proxy.base import upstream_of

        name = self._instance(service)
        kind = self._kind(name)
        proxy = Proxy(kind, upstream_of(self.urls[name], kind)).start()
        self._proxies.append(proxy)
        return proxy

    def service(
        self,
        argv: list[str] | str,
        *,
        port: int | None = None,
        ready: tuple[str, ...] = ("tcp",),
        ready_timeout: float = 10.0,
        proxies: dict[str, Proxy] | None = None,
        files: dict[str, str | bytes | Path] | None = None,
        env: dict[str, str] | None = None,
    ) -> ServiceHandle:
        """Start the learner's own server and wait until it answers; stopped at the end.
        `env` adds variables (where to find a peer the checker plays, say)."""
        from sdtutor.lab.runner import start_service

        services, env, limits = self._learner_setup(None, env)
        handle = start_service(
            self.workspace,
            argv,
            port=port,
            services=services,
            env=env,
            limits=limits,
            ready=ready,
            ready_timeout=ready_timeout,
            proxies=self._proxies_for(proxies),
            files=self._files(files),
        )
        self._services.append(handle)
        return handle

    def run_learner(
        self,
        file: str,
        function: str,
        *args: Any,
        timeout: float | None = None,
        clients: tuple[str, ...] = ("postgres",),
        **kwargs: Any,
    ) -> LearnerRun:
        """Call the learner's function with a PostgreSQL connection first (the old way)."""
        return self.run(file, function, *args, clients=clients, kwargs=kwargs, timeout=timeout)

    def call(self, file: str, function: str, *args: Any, **kwargs: Any) -> LearnerRun:
        """Run the learner's function (a PostgreSQL connection first); Fail with its output
        when it hangs, hits a limit or raises."""
        run = self.run_learner(file, function, *args, **kwargs)
        if run.timed_out or run.limit:
            what = "did not finish in time" if run.timed_out else f"hit its {run.limit} limit"
            raise Fail(
                f"{function} {what}: {run.error}. Look for a loop that never ends, "
                f"or a query that reads far more than it needs.",
                Evidence("its output", "text", run.output or "(none)"),
            )
        if not run.ok:
            raise Fail(
                f"{function} raised an error: {run.error}",
                Evidence("traceback", "text", run.traceback or run.output or run.error),
            )
        return run

    # ------------------------------------------------------------ Redis

    def prefix(self, kind: str, instance: str | None = None) -> str:
        """The lab's namespace on a service ('' when it has none).

        `prefixes` may be keyed by instance name ("cache") or by kind ("redis").
        """
        if instance is not None and instance in self.prefixes:
            return self.prefixes[instance]
        if kind in self.prefixes:
            return self.prefixes[kind]
        found = {
            self.prefixes[name]
            for name in self.urls
            if name in self.prefixes and self._kind(name) == kind
        }
        return found.pop() if len(found) == 1 else ""

    def key(self, name: str, instance: str | None = None) -> str:
        """A Redis key name under the lab's prefix."""
        prefix = self.prefix("redis", instance)
        return name if name.startswith(prefix) else prefix + name

    def redis(self, instance: str | None = None) -> Any:
        """A redis-py client (decode_responses=True, socket timeouts set)."""
        import redis  # costly import: only for labs with Redis

        url = self.url("redis", instance)
        client = self._redis.get(url)
        if client is None:
            client = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=CLIENT_TIMEOUT,
                socket_connect_timeout=CLIENT_TIMEOUT,
            )
            try:
                client.ping()
            except redis.RedisError as exc:
                raise CannotCheck(f"cannot reach the lab's Redis: {exc}") from None
            self._redis[url] = client
        return client

    def keys(self, pattern: str = "*", instance: str | None = None) -> Keys:
        """The keys matching a pattern under the lab's prefix: [(key, type, ttl)].

        Raises CannotCheck when no Redis prefix was given: a SCAN of a shared server's
        whole keyspace is never what a check means.
        """
        prefix = self.prefix("redis", instance)
        if not prefix:
            raise CannotCheck(
                "the lab's Redis key prefix is unknown (run_checks was given no prefixes)"
            )
        full = pattern if prefix and pattern.startswith(prefix) else escape_glob(prefix) + pattern
        return Keys(scan_keys(self.redis(instance), full), prefix + pattern.removeprefix(prefix))

    # ------------------------------------------------------------ RabbitMQ

    def amqp_name(self, name: str, instance: str | None = None) -> str:
        """An exchange or queue name under the lab's prefix ('' and amq.* stay as they are)."""
        prefix = self.prefix("rabbitmq", instance)
        if name == "" or name.startswith(("amq.", prefix)):
            return name
        return prefix + name

    def amqp(self, instance: str | None = None) -> Any:
        """A pika BlockingConnection (socket and blocked-connection timeouts set)."""
        import pika  # costly import: only for labs with RabbitMQ
        import pika.exceptions

        url = self.url("rabbitmq", instance)
        conn = self._amqp.get(url)
        if conn is None or not conn.is_open:
            params = pika.URLParameters(url)
            params.socket_timeout = CLIENT_TIMEOUT
            params.blocked_connection_timeout = CLIENT_TIMEOUT
            params.stack_timeout = 2 * CLIENT_TIMEOUT
            params.connection_attempts = 1
            params.client_properties = {"connection_name": "sdtutor-checker"}
            try:
                conn = pika.BlockingConnection(params)
            except pika.exceptions.AMQPError as exc:
                raise CannotCheck(f"cannot reach the lab's RabbitMQ: {exc!r}") from None
            self._amqp[url] = conn
        return conn

    def queue(self, name: str, instance: str | None = None) -> QueueFacts:
        """A queue's facts (exists, messages ready, consumers) by a passive declare."""
        return queue_facts(lambda: self.amqp(instance).channel(), self.amqp_name(name, instance))

    def exchange(self, name: str, instance: str | None = None) -> ExchangeFacts:
        """An exchange's facts (exists, type, durable), read by re-declaring it."""
        return exchange_facts(lambda: self.amqp(instance).channel(), self.amqp_name(name, instance))

    # ------------------------------------------------------------ lifetime

    def begin_check(self) -> None:
        """Forget what the lock watch saw during earlier checks."""
        for watch in self._watches.values():
            watch.forget()

    def interrupt(self) -> None:
        """Stop what the checks are doing now (the deadline came): cancel statements."""
        from psycopg.pq import TransactionStatus

        self._interrupted = True
        for conn in list(self._pg.values()):
            with contextlib.suppress(Exception):
                if not conn.closed and conn.info.transaction_status == TransactionStatus.ACTIVE:
                    conn.cancel_safe(timeout=2)

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call `callback` when the checks end (after the last check, also when one failed
        or ran out of time): for what a check made that outlives it, such as the
        checker's own servers shared through `once`. Last registered, first called."""
        self._closers.append(callback)

    def close(self) -> None:
        """Close what the checks opened."""
        closers, self._closers = self._closers, []
        for callback in reversed(closers):
            with contextlib.suppress(Exception):
                callback()
        for watch in self._watches.values():
            watch.close()
        for conn in self._pg.values():
            with contextlib.suppress(Exception):
                conn.close()
        for client in self._redis.values():
            with contextlib.suppress(Exception):
                client.close()
        for amqp in self._amqp.values():
            with contextlib.suppress(Exception):
                if amqp.is_open:
                    amqp.close()
        for handle in self._services:
            with contextlib.suppress(Exception):
                handle.kill()
        for proxy in self._proxies:
            with contextlib.suppress(Exception):
                proxy.close()
        self._pg, self._watches, self._redis, self._amqp = {}, {}, {}, {}
        self._proxies, self._services = [], []


CROWD = 10
"""Worker runs larger than this take turns within a home: each opens a connection per
worker, and the proofs of one lab run several cases at once on servers with a bounded
number of connections."""


@contextlib.contextmanager
def _crowd(n: int) -> Iterator[None]:
    if n <= CROWD:
        yield
        return
    import fcntl

    from sdtutor import locations

    path = locations.home() / "workers.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def statements_evidence(run: LearnerRun, shown: int = 6, service: str | None = None) -> Evidence:
    """The statements a learner run sent (counted at the proxy), the first few, one each."""
    statements = _statements(run, service)
    count = len(statements)
    lines = [f"{i + 1}. {' '.join(s.split())[:150]}" for i, s in enumerate(statements[:shown])]
    if count > shown:
        lines.append("...")
    return Evidence(f"statements sent ({count})", "text", "\n".join(lines) or "(none)")


def _statements(run: LearnerRun, service: str | None) -> list[str]:
    if service is not None:
        return list(run.server[service].statements) if service in run.server else []
    for stats in run.server.values():
        if stats.statements:
            return list(stats.statements)
    return []


__all__ = [
    "CLIENT_TIMEOUT",
    "LOCK_TIMEOUT",
    "STATEMENT_TIMEOUT",
    "CheckContext",
    "statements_evidence",
]
