"""The named schedules: ``post-morning``, ``post-noon`` and ``post-evening``, each a fire of ``post_slot``.

Every worker runs a scheduler and each fire becomes exactly one job, however many workers run. All three
schedules always fire; ``POSTER_POSTS_PER_DAY`` (1, 2 or 3) decides which slots publish, so changing the
cadence needs no schedule change. Run them with ``python -m examples.poster worker`` or
``buttress worker --import examples.poster.jobs``.
"""

from __future__ import annotations

from typing import Final

from buttress.container import get_container
from buttress.jobs import JobContext, define_queue, job, schedule
from examples.poster.client import Poster

__all__ = ["GREETINGS", "QUEUE", "compose", "get_poster", "post_slot"]

QUEUE: Final = "poster"
GREETINGS: Final = {"morning": "Good morning", "noon": "Lunchtime reading", "evening": "Tonight's pick"}

define_queue(QUEUE, concurrency=1)  # one post at a time across every worker


def get_poster() -> Poster:
    """The process's Poster, from the default container (tests override it there)."""
    container = get_container()
    if not container.is_registered(Poster):
        container.register(Poster, factory=Poster.from_env)
    return container.resolve(Poster)


def compose(slot: str, number: int) -> str:
    return f"{GREETINGS[slot]}: post #{number} from the buttress poster example"


@schedule(at="19:00", name="post-evening", kwargs={"slot": "evening"}, catch_up="skip")
@schedule(at="13:00", name="post-noon", kwargs={"slot": "noon"}, catch_up="skip")
@schedule(at="09:00", name="post-morning", kwargs={"slot": "morning"}, catch_up="skip")
@job(queue=QUEUE, retry=3)
def post_slot(ctx: JobContext, slot: str) -> dict[str, int]:
    """Post the slot's text to every network, unless the cadence leaves this slot out."""
    poster = get_poster()
    if slot not in poster.config.slots:
        return {}
    # the job id is the idempotency key: a retried attempt re-sends the same post, never a second one
    return poster.post_all(compose(slot, ctx.job_id), key=f"job-{ctx.job_id}")
