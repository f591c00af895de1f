"""Moved to sdtutor.services.postgres (the PostgreSQL service kind); kept for old imports."""

from sdtutor.services.postgres import *  # noqa: F403
from sdtutor.services.postgres import __all__  # noqa: F401
