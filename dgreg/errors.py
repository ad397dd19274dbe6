"""The one exception hierarchy every dgreg error belongs to.

Messages follow one shape: ``'<argument>' must be <expected> (got <received>)``, so a user
can fix the call without reading dgreg's source.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "CaptureError",
    "CompileError",
    "DgregError",
    "DuplicateKernelError",
    "FallbackWarning",
    "InvalidArgumentError",
    "NoKernelError",
    "PluginError",
    "SpecFileError",
    "UnsupportedDeviceError",
    "UnsupportedSpecError",
]


class DgregError(Exception):
    """Base class of every error dgreg raises on purpose."""


class InvalidArgumentError(DgregError, ValueError):
    """An argument of a public call is malformed (shape, dtype, stride, alignment, device)."""

    def __init__(self, argument: str, expected: str, received: object) -> None:
        self.argument = argument
        self.expected = expected
        self.received = received
        super().__init__(f"'{argument}' must be {expected} (got {received})")


class UnsupportedSpecError(DgregError):
    """The combination of dtypes, layout, grouping and recipe is not an operation dgreg defines."""


class UnsupportedDeviceError(DgregError):
    """The device cannot run the request; the message names the arch and what would serve it."""


class NoKernelError(DgregError):
    """No candidate accepted the call; ``explanation`` holds every candidate and its reason."""

    def __init__(self, message: str, explanation: object = None) -> None:
        self.explanation = explanation
        if explanation is not None:
            message = f"{message}\n\n{explanation}"
        super().__init__(message)


class CompileError(DgregError):
    """A kernel failed to compile; the message carries the command, the log head and its path."""


class CacheError(DgregError):
    """The kernel cache cannot be read or written as needed."""


class CaptureError(DgregError):
    """A kernel would have to be compiled while a CUDA graph is being captured."""


class PluginError(DgregError):
    """A plugin broke the contract: the message names the plugin, the hook and the problem."""

    def __init__(self, message: str, *, plugin: str | None = None, hook: str | None = None) -> None:
        self.plugin = plugin
        self.hook = hook
        super().__init__(message)


class DuplicateKernelError(PluginError):
    """Two plugins registered the same kernel id."""


class SpecFileError(DgregError):
    """A TOML spec or conformance file is malformed; the message names the file and key."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        super().__init__(f"{path}: [{key}] {problem}")


class FallbackWarning(UserWarning):
    """dgreg ran the torch reference because no accelerated kernel accepted the call."""
