"""Service kinds: PostgreSQL, Redis and RabbitMQ, each behind one small interface."""

from sdtutor.services.base import KIND_NAMES, Access, ServiceKind, Target, kind
from sdtutor.services.names import Names, home_id

__all__ = ["KIND_NAMES", "Access", "Names", "ServiceKind", "Target", "home_id", "kind"]
