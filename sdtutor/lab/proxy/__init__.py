"""A wire-level proxy between learner code and a lab service.

It counts what the server sees (PostgreSQL statements and rows, Redis commands, AMQP
methods) whatever client API or connection the learner uses, and injects faults:
latency, dropped connections, refused connections, a paused server.

    with Proxy("postgres", ("127.0.0.1", 5432)) as proxy:
        url = proxy.url_for("postgresql://app:pw@127.0.0.1:5432/shop")
        ...  # the learner's code talks to `url`
        proxy.stats.statements   # every statement executed, as the server saw it
"""

from sdtutor.lab.proxy.base import Proxy, upstream_of
from sdtutor.lab.proxy.stats import ProxyStats

__all__ = ["Proxy", "ProxyStats", "upstream_of"]
