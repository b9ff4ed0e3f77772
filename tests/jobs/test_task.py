"""A job type called directly runs here and now, with a context even when it asks for one."""

from __future__ import annotations

from buttress.jobs import JobContext, Registry, Task


def test_a_job_that_takes_a_context_can_be_called_directly() -> None:
    def label(ctx: JobContext, word: str) -> str:
        ctx.progress(0.5)
        return f"{ctx.job_id}:{ctx.task}:{word}"

    task: Task[..., str] = Task(label, name="direct.label", queue="direct", registry=Registry())
    assert task("hi") == "0:direct.label:hi"  # a detached context: id 0, outside any job
    own = JobContext(job_id=7, task="x", queue="q", attempt=1, max_attempts=1)
    assert task(own, "hi") == "7:x:hi"  # one passed explicitly is used as is
    assert task.wants_context


def test_a_plain_job_is_called_as_it_is() -> None:
    task: Task[..., int] = Task(lambda a, b=1: a + b, name="direct.add", registry=Registry())
    assert task(1, b=2) == 3
    assert not task.wants_context
