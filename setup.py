"""Build of the compiled CPU core; all metadata lives in pyproject.toml.

One C extension, ``colorquant._cpu._kernels``: plain C99 with OpenMP. ``-ffp-contract=off``
keeps every multiply and add separately rounded (no fused multiply-add), so the float64 results
equal NumPy's bit for bit on every architecture.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "colorquant._cpu._kernels",
            sources=["src/colorquant/_cpu/kernels.c"],
            extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off", "-std=c99"],
            extra_link_args=["-fopenmp"],
        )
    ],
)
