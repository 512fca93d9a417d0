"""ipywidgets + bqplot panels over workbench engine snapshots (panels arrive with the live engine)."""

__all__: list[str] = []
