"""Pipeline runs: enqueue, execute on a GPU worker, report progress, cancel and retry."""
