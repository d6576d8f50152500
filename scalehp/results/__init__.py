"""Results as Parquet: the contract (schema), the writer (sink) and the reader (store)."""

from scalehp.results.store import Results, read_results

__all__ = ["Results", "read_results"]
