"""The sweeper enqueues a job that stays unfinished less and less often, so a backlog is not fed duplicates."""

import uuid
from datetime import timedelta

from memsvc.jobs.dispatch import SweepBackoff

AFTER = timedelta(seconds=10)


def test_a_job_is_enqueued_again_after_doubling_waits_up_to_a_cap() -> None:
    backoff, job = SweepBackoff(), uuid.uuid4()
    sent_at = []
    for second in range(0, 400):
        if backoff.due(job, AFTER, float(second)):
            backoff.sent(job, float(second))
            sent_at.append(second)

    assert sent_at[:5] == [0, 20, 60, 140, 300]  # waits of 20, 40, 80, 160 s: 2x, 4x, 8x, 16x
    assert sent_at[5:] == []  # the next one is due at 460 s (capped at 16x)


def test_a_job_that_finished_is_forgotten_and_starts_over() -> None:
    backoff, job, other = SweepBackoff(), uuid.uuid4(), uuid.uuid4()
    backoff.sent(job, 0.0)
    backoff.sent(other, 0.0)

    backoff.keep_only({other})

    assert backoff.due(job, AFTER, 1.0)
    assert not backoff.due(other, AFTER, 1.0)
