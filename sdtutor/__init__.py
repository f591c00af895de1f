"""sdtutor: a terminal tutor for backend system design."""

__version__ = "0.1.0"
__all__ = ["__version__"]
