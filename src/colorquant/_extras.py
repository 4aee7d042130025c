"""The optional dependencies: which extra installs each, and the one-line error when one is missing.

``pip install colorquant`` brings only what the file path needs (NumPy, Pillow, click, tqdm). An
entry point that needs more says so in one line naming the extra, never with a bare
``ModuleNotFoundError``: ``colorquant.nn needs PyTorch: pip install 'colorquant[torch]'``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ._checks import InputError

# module -> (what it is called, the extra that installs it)
EXTRAS = {
    "torch": ("PyTorch", "torch"),
    "matplotlib": ("matplotlib", "plot"),
}


class MissingExtraError(InputError, ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that installs it.

    Both an :class:`InputError` (the command line reports it as its usual one-line error) and a
    ``ModuleNotFoundError`` (``except ImportError`` still catches it).
    """


def extra_message(what: str, module: str) -> str:
    """``"<what> needs PyTorch: pip install 'colorquant[torch]'"`` for ``module``'s extra."""
    name, extra = EXTRAS[module]
    return f"{what} needs {name}: pip install 'colorquant[{extra}]'"


def missing_extra(what: str, module: str) -> MissingExtraError:
    """The error for ``what`` needing ``module`` ("torch" or "matplotlib"), to raise."""
    error = MissingExtraError(extra_message(what, module))
    error.name = module
    return error


def has(module: str) -> bool:
    """Whether ``module`` can be imported here (found, not imported)."""
    return importlib.util.find_spec(module) is not None


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` ("torch" or "matplotlib"), or raise the one line naming its extra.

    Raises:
        MissingExtraError: ``module`` is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is not None and error.name.split(".")[0] == module:
            raise missing_extra(what, module) from None
        raise


def is_missing(error: ModuleNotFoundError, module: str) -> bool:
    """Whether ``error`` says that ``module`` itself (not one of its own dependencies) is absent."""
    return error.name is not None and error.name.split(".")[0] == module
