"""Persistence: the job table is the one source of truth for job state."""
