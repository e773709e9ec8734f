"""Shared plumbing of the InkWeb apps: errors, storage paths, Redis, queues and broadcasts."""
