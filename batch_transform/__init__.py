"""velibcast.batch_transform: the Batch Transform engine (spec, data plane, model server, local runtime, SageMaker backend)."""

from velibcast.layout import step_aside

# Imported as velibcast.batch_transform; a bare `import batch_transform` from the repository root resolves elsewhere (velibcast/layout.py).
if __name__ == "batch_transform":
    step_aside(__name__, __file__)
