"""Webhooks: per-key URLs called, signed, when a job finishes or a live run gets an error finding."""
