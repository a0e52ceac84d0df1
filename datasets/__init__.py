"""velibcast."""
