"""What a source raises: the failures every market source shares, in a module of their own so
that the sources and the factory that picks one (``sources.py``) import them without a loop."""


class SourceError(RuntimeError):
    """A failure that retrying will not fix; the message names what failed."""


class RetryableSourceError(SourceError):
    """A transient failure (network, 5xx, rate limit) that outlasted the in-call retries."""
