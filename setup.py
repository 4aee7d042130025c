"""Build of the compiled CPU core; all metadata lives in pyproject.toml.

One C extension, ``colorquant._cpu._kernels``: plain C99, with OpenMP where the compiler has it.
Its source is one translation unit: ``src/colorquant/_cpu/module.c`` includes ``common.h`` and the
stage files (``hist.c``, ``nearest.c``, ``lloyd.c``, ...), which are listed as its dependencies, so
that a change to any of them rebuilds it (and the sdist carries them).
The build probes the compiler: it compiles and links a small OpenMP program with the compiler's
OpenMP flags, and builds the extension with them when that works, serially (one thread, the same
results bit for bit) when it does not, as with Apple clang without libomp.
``COLORQUANT_OPENMP=0`` forces the serial build, ``COLORQUANT_OPENMP=1`` makes a missing OpenMP an
error. Flags per compiler: gcc and clang ``-O3 -ffp-contract=off -std=c99`` (no fused
multiply-add, so the float64 results equal NumPy's bit for bit on every architecture), MSVC
``/O2 /fp:precise`` (which does not contract either) and ``/openmp``.

The stable ABI: the C uses only the limited API (the buffer protocol, ``PyArg_ParseTuple``), so on
CPython 3.11 and later it builds with ``Py_LIMITED_API`` 3.11 into one ``cp311-abi3`` wheel that
every later CPython loads; on 3.10 it is an ordinary ``cp310`` build (the buffer protocol joined
the limited API in 3.11). Free-threaded CPython has no limited API before 3.15: ordinary build.
``COLORQUANT_STRIP=1`` (set by the wheel builds: ``make wheel-test`` and cibuildwheel) links
gcc and clang with ``-s`` on Linux and ``-Wl,-x`` on macOS, which drops the symbol table and the
debugging sections of the release binary; MSVC keeps its debugging data out of the ``.pyd``
unless ``/DEBUG`` is asked for, so it needs nothing.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PROBE = r"""
#include <omp.h>
int main(void)
{
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += omp_get_num_threads() > 0;
    return n > 0 ? 0 : 1;
}
"""


def flags(compiler_type: str) -> tuple[list[str], list[str], list[str]]:
    """``(base compile flags, OpenMP compile flags, OpenMP link flags)`` of a compiler type."""
    if compiler_type == "msvc":
        return ["/O2", "/fp:precise"], ["/openmp"], []
    return ["-O3", "-ffp-contract=off", "-std=c99"], ["-fopenmp"], ["-fopenmp"]


def switch(name: str) -> str:
    """An environment switch: ``"0"``, ``"1"`` or ``""`` (unset), else the build stops."""
    wanted = os.environ.get(name, "").strip()
    if wanted not in ("", "0", "1"):
        raise SystemExit(f"{name} must be 0 or 1, got {wanted!r}")
    return wanted


def strip_flags(compiler_type: str, platform: str) -> list[str]:
    """Link flags that strip the binary, where ``COLORQUANT_STRIP=1`` asks for it."""
    if switch("COLORQUANT_STRIP") != "1" or compiler_type == "msvc":
        return []
    return ["-Wl,-x"] if platform == "darwin" else ["-s"]


# The stable ABI from CPython 3.11 (not on free-threaded builds, which have none before 3.15).
LIMITED_API = (
    sys.implementation.name == "cpython"
    and sys.version_info >= (3, 11)
    and not sysconfig.get_config_var("Py_GIL_DISABLED")
)


class BuildExt(build_ext):
    """``build_ext`` that chooses OpenMP by probing the compiler."""

    def build_extensions(self) -> None:
        base, omp_compile, omp_link = flags(self.compiler.compiler_type)
        wanted = switch("COLORQUANT_OPENMP")
        openmp = wanted != "0" and self.links(omp_compile, omp_link)
        if wanted == "1" and not openmp:
            raise SystemExit("COLORQUANT_OPENMP=1, but the compiler cannot build with OpenMP")
        print(f"colorquant: building the CPU core {'with' if openmp else 'without'} OpenMP")
        strip = strip_flags(self.compiler.compiler_type, sys.platform)
        for ext in self.extensions:
            ext.extra_compile_args = base + (omp_compile if openmp else [])
            ext.extra_link_args = (omp_link if openmp else []) + strip
        super().build_extensions()

    def copy_extensions_to_source(self) -> None:
        """The in-place copy (``--inplace``, ``pip install -e``), without a stale build of another
        ABI tag beside it (``_kernels.cpython-311-…`` from before the stable ABI), which the
        import system would prefer."""
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            package = ".".join(ext.name.split(".")[:-1])
            built = (
                Path(build_py.get_package_dir(package)) / Path(self.get_ext_filename(ext.name)).name
            )
            stem = built.name.split(".")[0]
            for suffix in EXTENSION_SUFFIXES:
                stale = built.with_name(stem + suffix)
                if stale.name != built.name and stale.exists():
                    print(f"colorquant: removing the stale build {stale}")
                    stale.unlink()

    def links(self, compile_args: list[str], link_args: list[str]) -> bool:
        """Whether a small OpenMP program compiles and links with these flags."""
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "probe.c"
            source.write_text(PROBE)
            try:
                objects = self.compiler.compile(
                    [str(source)], output_dir=tmp, extra_postargs=compile_args
                )
                self.compiler.link_executable(
                    objects, "probe", output_dir=tmp, extra_postargs=link_args
                )
            except Exception:  # CompileError, LinkError, or a missing compiler driver
                return False
        return True


CORE = Path("src/colorquant/_cpu")
# The stage files module.c includes (relative paths, as setuptools wants them).
STAGES = sorted(
    p.as_posix() for p in (*CORE.glob("*.c"), *CORE.glob("*.h")) if p.name != "module.c"
)

setup(
    ext_modules=[
        Extension(
            "colorquant._cpu._kernels",
            sources=[(CORE / "module.c").as_posix()],
            depends=STAGES,
            py_limited_api=LIMITED_API,
            define_macros=[("Py_LIMITED_API", "0x030B0000")] if LIMITED_API else [],
        )
    ],
    cmdclass={"build_ext": BuildExt},
    # The wheel's tag: cp311-abi3 for the limited-API build, the interpreter's own otherwise.
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if LIMITED_API else {},
)
