"""registro: a registry of uniquely named records."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("registro")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
