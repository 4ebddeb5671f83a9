"""The requirements of the Dagster-free core's tests, read from pyproject.toml: the
project's dependencies and dev extras without Dagster and the linter.

`make test` installs them into .venv-core and runs tests/unit there, so the lake/ core is
shown to work where Dagster is not installed (a Lambda, a Pipes worker, a notebook).
"""

import tomllib
from pathlib import Path

LEFT_OUT = ("dagster", "ruff")

project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
    if not requirement.startswith(LEFT_OUT):
        print(requirement)
