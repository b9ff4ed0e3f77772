"""``python -m examples.summarizer ...`` from the repository's root."""

from examples.summarizer.cli import app

app(prog_name="python -m examples.summarizer")
