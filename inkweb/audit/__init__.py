"""Audit log: an append-only record of who changed what, with a filtered list and CSV export."""
