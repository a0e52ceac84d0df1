"""The configs and price tables velibcast reads at run time, shipped as package data.

Installed as `velibcast.configs` (see pyproject.toml), so a wheel install finds
`local.yaml`, `aws.yaml`, `pricing.yaml`, the IAM policies and the Athena DDL without a
checkout of the repository.
"""

from velibcast.layout import step_aside

# Imported as velibcast.configs; a bare `import configs` from the repository root resolves elsewhere (velibcast/layout.py).
if __name__ == "configs":
    step_aside(__name__, __file__)
