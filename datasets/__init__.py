"""velibcast.datasets: snapshot formats, listing and validation, the hourly state rule, windows, transform inputs."""

from velibcast.layout import step_aside

# Imported as velibcast.datasets; a bare `import datasets` from the repository root resolves elsewhere (velibcast/layout.py).
if __name__ == "datasets":
    step_aside(__name__, __file__)
