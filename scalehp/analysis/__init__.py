"""Answers from results tables: pure functions over pandas frames."""
