"""The ssld_zoo version (one place; `ssld_zoo.__version__` and every file the project writes quote it)."""
__version__ = "0.1.0"
