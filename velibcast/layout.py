"""How the stage folders become `velibcast.<stage>`, and the two ways that can go wrong.

The stages are top-level folders (`datasets/`, `flows/`, ...) so a newcomer sees the pipeline,
and each is importable only as `velibcast.<stage>`, through a symbolic link
`velibcast/<stage> -> ../<stage>`. A symlink keeps import path and file path the same for every
tool (Python, mypy, editors, coverage, the editable and the wheel install) with no import hook
and no mapping table; README.md "Layout" argues the choice.

What can go wrong:
- A checkout without symbolic links (`git config core.symlinks false`, Windows without
  Developer Mode) has one-line text files where the links should be. `check_stage_links` turns
  the otherwise puzzling "No module named 'velibcast.datasets'" into what happened and the fix.
- Python puts the current folder first on `sys.path` (`python -c`, `python -m`, the REPL), so
  from the repository root a bare `import datasets` would find our folder before Hugging Face's
  `datasets` (or any other package of a stage's name). Each stage's `__init__.py` calls
  `step_aside` when it is imported under its bare name: the import then resolves as if the
  repository were not there, to the installed package of that name or to ModuleNotFoundError.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

STAGES = ("batch_transform", "configs", "datasets", "flows", "training", "transform_code")


def check_stage_links(package_dir: str) -> None:
    """Fail at `import velibcast` when a stage link was checked out as a plain file."""
    for stage in STAGES:
        path = os.path.join(package_dir, stage)
        if os.path.isfile(path):
            raise ImportError(
                f"{path} is a file, not a link to ../{stage}: this checkout was made without symbolic links "
                "(git core.symlinks=false). Fix: `git config core.symlinks true && git checkout -- velibcast` "
                "(on Windows, enable Developer Mode first).")


def step_aside(name: str, init_file: str) -> None:
    """Replace the bare-named import of stage `name` by what `import name` finds outside the repository."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(init_file)))
    elsewhere = [p for p in sys.path if os.path.abspath(p or os.curdir) != repo]
    spec = importlib.machinery.PathFinder.find_spec(name, elsewhere)
    if spec is None or spec.loader is None:
        del sys.modules[name]
        raise ModuleNotFoundError(
            f"No module named {name!r}: the folder {os.path.dirname(os.path.abspath(init_file))} is "
            f"imported as velibcast.{name}", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # the import statement returns what sys.modules holds once this __init__ ends
    spec.loader.exec_module(module)
