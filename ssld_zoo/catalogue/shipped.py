"""Where the files the project ships beside its code live: `recipes/` and the trained-here weights in `weights/`.

In a checkout they sit next to the package (`REPO/recipes`, `REPO/weights`). A wheel carries copies in
`ssld_zoo/_shipped/` (the build step in `setup.py` puts them there), so an installed zoo has every shipped weight and
recipe without the checkout. Catalogue paths (`"file": "../../weights/NAME/model.safetensors"`) are relative to the
catalogue's folder (`ssld_zoo/catalogue/`); `locate` finds them in either place. No torch here.
"""
from __future__ import annotations

from pathlib import Path

from ssld_zoo.errors import SsldZooError

CATALOGUE_DIR = Path(__file__).resolve().parent  # where the built-in catalogue.json lives
PACKAGE = CATALOGUE_DIR.parent
SHIPPED = PACKAGE / "_shipped"  # inside an installed wheel
CHECKOUT = PACKAGE.parent  # a source checkout: the folders beside the package
RECIPE_SUFFIX = ".yaml"


def locate(base: Path, relative: str) -> Path:
    """`base / relative` (a checkout, or a catalogue of its own), else the wheel's copy of a built-in catalogue's
    `../../FOLDER/...` path."""
    path = (base / relative).resolve()
    parts = Path(relative).parts
    if path.exists() or base.resolve() != CATALOGUE_DIR or parts[:2] != ("..", ".."):
        return path
    shipped = SHIPPED.joinpath(*parts[2:])
    return shipped if shipped.exists() else path


def recipes_dir() -> Path:
    """The shipped recipes: `REPO/recipes` in a checkout, `ssld_zoo/_shipped/recipes` in a wheel."""
    for root in (CHECKOUT, SHIPPED):
        if (root / "recipes").is_dir() and (root / "recipes" / "cifar10").is_dir():
            return root / "recipes"
    raise SsldZooError(f"The shipped recipes are missing: neither {CHECKOUT / 'recipes'} nor {SHIPPED / 'recipes'} "
                       "exists. Reinstall ssld-zoo (the wheel carries them) or run from a checkout.")


def list_recipes() -> list[str]:
    """Every shipped recipe by name, e.g. `cifar10/b_ssld` (its file is `recipes/cifar10/b_ssld.yaml`)."""
    root = recipes_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob(f"*{RECIPE_SUFFIX}"))


def find_recipe(spec: str) -> Path:
    """A recipe file: `spec` itself when it is a file, else a shipped recipe named `cifar10/b_ssld`,
    `cifar10/b_ssld.yaml` or `recipes/cifar10/b_ssld.yaml`."""
    given = Path(spec).expanduser()
    if given.is_file():
        return given
    name = spec.removeprefix("recipes/").removesuffix(RECIPE_SUFFIX)
    shipped = recipes_dir() / f"{name}{RECIPE_SUFFIX}"
    if name and shipped.is_file():
        return shipped
    return given  # the recipe reader says it cannot be read, naming the path
