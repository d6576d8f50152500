"""Trainables of the example experiments: real torch models on data that ships with a package."""
