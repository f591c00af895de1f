"""Course-wide marks (a module of its own so `sdtutor list` can read them for free)."""

PASS_MARK = 0.7
"""A quiz passes at this share of right answers (`quiz` exits 0 from here, 1 below)."""

__all__ = ["PASS_MARK"]
