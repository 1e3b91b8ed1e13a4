"""Incremental, header-only archive scan into the restricted catalog table."""
