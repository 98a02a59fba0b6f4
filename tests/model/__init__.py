"""Tests of the SageMaker inference code (model/) and the local model server."""
