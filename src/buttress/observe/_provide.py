"""What observe offers the composition root: the process-wide metrics, error aggregator and profiler."""

from buttress.container import Container

__all__ = ["register_services"]


def register_services(container: Container) -> None:
    """Register :class:`MetricsRegistry`, :class:`ErrorAggregator`, :class:`Profiler` and
    :class:`SecretScrubber` as singletons.

    Each is built on first resolve with its defaults (the system clock: registering a ``Clock`` does
    not reach them; the scrubber starts with the secrets of ``get_settings()``); none holds anything the
    container must close.
    """
    from buttress.observe.errors import ErrorAggregator  # noqa: PLC0415 - registering loads only what it names
    from buttress.observe.metrics import MetricsRegistry  # noqa: PLC0415 - as above
    from buttress.observe.profiler import Profiler  # noqa: PLC0415 - as above
    from buttress.observe.secrets import SecretScrubber, default_scrubber  # noqa: PLC0415 - as above

    # Lambdas, not the classes: a factory without parameters gets nothing wired by the container.
    container.register(MetricsRegistry, lambda: MetricsRegistry())  # noqa: PLW0108 - see above
    container.register(ErrorAggregator, lambda: ErrorAggregator())  # noqa: PLW0108
    container.register(Profiler, lambda: Profiler())  # noqa: PLW0108
    container.register(SecretScrubber, default_scrubber)
