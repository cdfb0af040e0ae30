"""A module that fails to import."""

raise ImportError("the app's client is not installed")
