"""Training, evaluation and packaging of the model (does not ship in model.tar.gz)."""

from velibcast.layout import step_aside

# Imported as velibcast.training; a bare `import training` from the repository root resolves elsewhere (velibcast/layout.py).
if __name__ == "training":
    step_aside(__name__, __file__)
