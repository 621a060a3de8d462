"""SSRL inference service: an OpenAI-compatible server around an in-process vLLM engine."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ssrl-service")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
