"""Exceptions raised by ssld_zoo. Every one says what went wrong and what to do about it."""
from __future__ import annotations


class SsldZooError(Exception):
    """Base class for every error ssld_zoo raises on purpose; the CLI prints these as one line."""


class UnknownModelError(SsldZooError, KeyError):
    """A model name (or weight tag) that the catalogue does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CatalogueError(SsldZooError, ValueError):
    """A catalogue file or entry that does not follow the schema."""


class WeightsUnavailableError(SsldZooError):
    """The requested weights are not published (yet) or cannot be found."""


class OfflineError(WeightsUnavailableError):
    """The weights are not cached and the Hub cannot be reached."""


class IntegrityError(SsldZooError):
    """A weight file whose sha256 or size differs from the pinned value."""


class InvalidWeightsError(SsldZooError, ValueError):
    """A `pretrained=` value or weight folder that cannot be used."""


class UnsafePickleError(InvalidWeightsError):
    """A `.pdparams` file that asks the unpickler for anything beyond numpy array reconstruction."""


class ConversionError(SsldZooError, ValueError):
    """PaddleClas weights that do not fit the target architecture (missing, unexpected or mis-shaped keys)."""


class PublishError(SsldZooError):
    """An upload to the Hub that cannot be done: a malformed repo id, missing rights, or an unreachable Hub."""
