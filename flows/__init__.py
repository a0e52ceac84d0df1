"""velibcast.flows: the Prefect flows, the stages they run, the publish stage and the `velibcast` CLI."""

from velibcast.layout import step_aside

# Imported as velibcast.flows; a bare `import flows` from the repository root resolves elsewhere (velibcast/layout.py).
if __name__ == "flows":
    step_aside(__name__, __file__)
