"""The progress store."""

from sdtutor.progress.store import ProgressStore, TopicProgress

__all__ = ["ProgressStore", "TopicProgress"]
