"""Where the data folder is: `--data DIR` / `data_root=`, else `$SSLD_ZOO_DATA` (read in place, never copied).

Its layout follows this project's shared data::

    $SSLD_ZOO_DATA/cifar10/cifar10_jpegbytes_{train,test}.npz   CIFAR-10 as packed JPEG bytes (`ssld_zoo.data.cifar`)
    $SSLD_ZOO_DATA/cifar10/resnet{20,32,44,56}-*.th             akamaster's CIFAR-10 ResNets (catalogue `data_file`)

A foundation module (like `errors` and `files`): the catalogue asks it whether a weight's data file is there, the
data layer where its images are. Imports neither numpy nor torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


DATA_ENV = "SSLD_ZOO_DATA"
SHARED_DATA = "this project's shared data folder"


@dataclass(frozen=True)
class Missing:
    """Why a data file is not there (`reason`) and the folder it belongs in (`put_in`)."""

    reason: str
    put_in: str


def resolve_data_root(data_root: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """The data folder and where it came from: `data_root` if given, else `$SSLD_ZOO_DATA`, else `(None, ...)`."""
    if data_root is not None:
        return Path(data_root).expanduser(), "--data / data_root"
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser(), DATA_ENV
    return None, f"{DATA_ENV} is unset"


def find_data_file(relpath: str, data_root: str | os.PathLike | None = None) -> Path | Missing:
    """The path of `relpath` (e.g. `cifar10/x.npz`) in the data folder, or why it is not there."""
    root, source = resolve_data_root(data_root)
    folder = PurePosixPath(relpath).parent
    if root is None:
        return Missing(f"no data folder given ({source})", f"${DATA_ENV}/{folder}/ and set {DATA_ENV} (or pass "
                                                           "--data DIR / data_root=DIR)")
    path = root / relpath
    if path.is_file():
        return path
    return Missing(f"{path} does not exist (data folder from {source})", f"{root / folder}/")
