"""Training, evaluation and packaging of the model (does not ship in model.tar.gz)."""
