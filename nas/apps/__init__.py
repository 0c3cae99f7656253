"""Entry points: the command-line programs (`nas-search`, `nas-train`, ...), Hydra wiring over
`conf/`, the multirun summary, and the jobs they run, which are callable from Python."""

from .jobs import SearchResult, run_search

__all__ = ["SearchResult", "run_search"]
