"""Reviews: append-only approve/reject decisions on the restored output of a run."""
