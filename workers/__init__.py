"""Celery workers: the `embed` and `consolidate` queues, thin tasks over the domain code in `memsvc/`."""
