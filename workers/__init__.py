"""Celery workers (embedding and consolidation queues) arrive with the worker issue; until then memsvc embeds
in-process during the write, in batches."""
