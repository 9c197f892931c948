"""A module that records being imported: a data_source naming it must never import it."""

IMPORTED = True
TASK = object()
