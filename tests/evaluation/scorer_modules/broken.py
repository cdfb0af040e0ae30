"""A scorer module that does not import."""

raise RuntimeError("missing API key for the scorer service")
