"""The package version, alone in a module at the bottom floor so that `io` can stamp saved files
with it without importing the package's curated `__init__` (which imports everything above)."""

__version__ = "0.1.0"
