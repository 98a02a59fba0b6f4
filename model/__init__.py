"""SageMaker inference code for the embedding endpoint (shipped as ``code/`` in model.tar.gz)."""
