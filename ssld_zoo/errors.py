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


class MissingDependencyError(SsldZooError, ImportError):
    """An optional dependency of the feature asked for is not installed; `package` names what to install."""

    def __init__(self, message: str, *, package: str | None = None) -> None:
        super().__init__(message)
        self.package = package


class FileSystemError(SsldZooError, OSError):
    """A file or folder that cannot be read or written: full disk, read-only or unwritable place, a file where a
    folder is needed (or the reverse). `path` names it and `errno` says why."""

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path, self.errno = path, errno

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    @classmethod
    def from_os_error(cls, error: OSError) -> "FileSystemError":
        """One line for an `OSError` raised by the operating system, naming the file and what to do."""
        import errno as codes
        if isinstance(error, (ConnectionError, TimeoutError)):
            return cls(f"Network error: {error}. Check the connection (or set HF_HUB_OFFLINE=1 to use cached files "
                       "only).", errno=error.errno)
        path = error.filename if error.filename is not None else None
        reason = error.strerror or str(error)
        hints = {codes.ENOSPC: "free some space or choose another folder",
                 codes.EROFS: "the file system is read-only: choose a writable folder",
                 codes.EACCES: "you may not write there: choose a folder you own or fix its permissions",
                 codes.EPERM: "you may not write there: choose a folder you own or fix its permissions",
                 codes.ENOTDIR: "a file stands where a folder is needed: choose another path",
                 codes.EISDIR: "a folder stands where a file is needed: name a file",
                 codes.EEXIST: "something already exists there: choose another path or remove it",
                 codes.ENOENT: "check the path"}
        hint = hints.get(error.errno or -1, "check the path and try again")
        where = f" {path}" if path else ""
        return cls(f"Cannot use{where}: {reason} ({hint}).", path=None if path is None else str(path),
                   errno=error.errno)
