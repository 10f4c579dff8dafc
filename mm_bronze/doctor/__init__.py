"""``mm-bronze doctor``: checks of a deployment, each passed, failed with its fix, or skipped."""
