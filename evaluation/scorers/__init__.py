"""MLflow ``@scorer`` code over stored traces: the catalogue of available scorers and the runner."""
