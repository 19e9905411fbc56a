"""The judgement of the collector: violations of the dump ABI's contract, with evidence."""

from .contract import MAX_PER_KIND, Judge, Violation

__all__ = ["MAX_PER_KIND", "Judge", "Violation"]
