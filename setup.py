"""Build mta, compiling the hotpath Cython modules unless MTA_NO_EXTENSIONS=1.

The build says, on its last line, whether it produced the accelerated package (compiled
hotpath modules) or the pure one (Python twins only). With MTA_NO_EXTENSIONS=1 nothing is
compiled; without it a missing compiler or Cython is an error, not a silent fallback, so that
CI never ships a pure build where an accelerated one was expected.
"""

import os
import sys

from setuptools import Extension, setup

COMPILED_MODULES = ("_parser", "_queue")


def _wanted_extensions() -> list[Extension]:
    if os.environ.get("MTA_NO_EXTENSIONS") == "1":
        return []
    from Cython.Build import cythonize
    from Cython.Compiler import Options

    # The project compiles with warnings as errors (STYLE.md: `cython -3 -Werror`).
    Options.warning_errors = True

    sources = [
        Extension(f"hotpath.{name}", [f"hotpath/{name}.pyx"])
        for name in COMPILED_MODULES
        if os.path.exists(f"hotpath/{name}.pyx")
    ]
    return cythonize(
        sources,
        language_level=3,
        compiler_directives={
            "warn.unused": True,
            "warn.unused_arg": True,
            "warn.unused_result": True,
            "warn.maybe_uninitialized": True,
        },
        force=False,
    )


extensions = _wanted_extensions()
setup(ext_modules=extensions)
if any(arg.startswith(("build", "bdist", "install", "develop", "editable")) for arg in sys.argv):
    built = ", ".join(ext.name for ext in extensions) or "none"
    flavour = "accelerated" if extensions else "pure (MTA_NO_EXTENSIONS=1)"
    print(f"mta: built the {flavour} package; compiled modules: {built}", file=sys.stderr)
