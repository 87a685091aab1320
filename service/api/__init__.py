"""The HTTP layer: validation, jobs and serialisation, nothing else. It never imports torch."""
