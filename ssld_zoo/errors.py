"""Exceptions raised by ssld_zoo. Every one says what went wrong and what to do about it."""
from __future__ import annotations


class SsldZooError(Exception):
    """Base class for every error ssld_zoo raises on purpose; the CLI prints these as one line.

    Besides the message, an error carries what it is about, where the raising code knows it (None otherwise):
    `repo_id`, `filename` and `revision` of a Hub file, `path` of a local file or folder, `key` of a recipe or
    catalogue field, `weight` (`name.tag`) and `url`.
    """

    def __init__(self, message: str = "", *, repo_id: str | None = None, filename: str | None = None,
                 revision: str | None = None, path: str | None = None, key: str | None = None,
                 weight: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.repo_id, self.filename, self.revision = repo_id, filename, revision
        self.path, self.key, self.weight, self.url = path, key, weight, url

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownModelError(SsldZooError, KeyError):
    """A model name (or weight tag) that the catalogue does not know (`key` is the name asked for)."""


class CatalogueError(SsldZooError, ValueError):
    """A catalogue file or entry that does not follow the schema."""


class WeightsUnavailableError(SsldZooError):
    """The requested weights are not published (yet) or cannot be found."""


class OfflineError(WeightsUnavailableError):
    """The weights are not in the Hub cache (or the conversion cache) and cannot be fetched."""


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

    def __str__(self) -> str:  # ImportError's own __str__ ignores the message when keyword attributes are set
        return str(self.args[0]) if self.args else ""


class FileSystemError(SsldZooError, OSError):
    """A file or folder that cannot be read or written: full disk, read-only or unwritable place, a file where a
    folder is needed (or the reverse). `path` names it and `errno` says why."""

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        SsldZooError.__init__(self, message, path=path)
        self.errno = errno

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    @classmethod
    def from_os_error(cls, error: OSError) -> "FileSystemError":
        """One line for an `OSError` raised by the operating system, naming the file and what to do."""
        import errno as codes
        if isinstance(error, (ConnectionError, TimeoutError)):
            return cls(f"Network error: {error}. Check the connection (or set HF_HUB_OFFLINE=1 to use the Hub cache "
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


class DataError(SsldZooError, ValueError):
    """Data that is missing, incomplete, or asked for in a way that does not exist (a bad split or subset)."""


class DownloadFailed(WeightsUnavailableError):
    """A download that did not complete: `url`, and the HTTP `status` when the server answered with an error."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message, url=url)
        self.status = status


class RecipeError(SsldZooError, ValueError):
    """A recipe file or override that cannot be used; the message names the file and the key."""


class ModelBuildError(SsldZooError, ValueError):
    """A student or teacher that cannot be built as the recipe asks."""


class CacheError(SsldZooError):
    """A soft-label cache that is missing, damaged, or was made for another teacher, transform or data."""


class CheckpointError(SsldZooError):
    """A checkpoint that cannot be read, or that belongs to another run."""


class TrainingDivergedError(SsldZooError):
    """The loss or the weights stopped being finite; the last good checkpoint is left as it was."""


class RunSetupError(SsldZooError):
    """A run that cannot start as asked: its folder already holds a run, or batch size and data do not fit."""


class EvaluationError(SsldZooError, ValueError):
    """An evaluation that cannot run as asked: a model whose classes do not match the labels, or a bad option."""


class OnnxExportError(SsldZooError):
    """An ONNX export that failed, or whose onnxruntime outputs differ from PyTorch's."""


class MineError(SsldZooError, ValueError):
    """A mining run that cannot start or continue as asked."""


class ReleaseError(SsldZooError):
    """A release that cannot start, or a weight that cannot be released (`weight`; `step` says where it stopped)."""

    def __init__(self, message: str, *, weight: str | None = None, step: str | None = None) -> None:
        super().__init__(message, weight=weight)
        self.step = step


class InputError(SsldZooError, ValueError):
    """An input file that cannot be read safely: not a regular file (a FIFO, device, socket or folder), too large,
    nested too deep, not UTF-8, or not valid JSON/YAML; `path` names it (`ssld_zoo.reading`)."""


class WriteTargetError(FileSystemError):
    """A place to write whose current occupant is not a regular file (a FIFO, device, socket or folder, or a symlink
    to one or to nothing): it is left as it is and nothing is written; `path` names it (`ssld_zoo.files`)."""


class FolderInUseError(RunSetupError):
    """A run folder (or output) that another running command holds; `path` names it and `holder` describes that
    command (pid, host, command line, start time) when it could be read (`ssld_zoo.files.run_lock`)."""

    def __init__(self, message: str, *, path: str | None = None, holder: dict[str, object] | None = None) -> None:
        super().__init__(message, path=path)
        self.holder = holder


class SettingError(SsldZooError, ValueError):
    """An environment variable whose value is not a number in its allowed range; `key` names the variable
    (`ssld_zoo.settings`)."""


class HubClientFailure(Exception):
    """What huggingface_hub raised in the download process (`ssld_zoo.weights.hub`), kept as the cause of the one-line
    error: `kind` is its type, the message keeps the Hub's request id and server message."""

    def __init__(self, kind: str, message: str, *, request_id: str | None = None,
                 server_message: str | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.request_id, self.server_message = kind, request_id, server_message


class DetectorBackboneError(SsldZooError, ValueError):
    """A backbone export or detector config that cannot be made as asked: an unknown layout or detector, or a weight
    whose family the layout does not fit (`weight`, `key` = the layout); the message lists what fits."""


class ShipError(SsldZooError, ValueError):
    """A training run that cannot be shipped as the catalogue weight asked for (`ssld-zoo ship`)."""


class ArgumentTypeError(SsldZooError, TypeError):
    """A Python API argument of the wrong type (a model name that is not a string, a catalogue path that is not a
    path): refused where it enters, with one line naming the argument, rather than deep inside."""
