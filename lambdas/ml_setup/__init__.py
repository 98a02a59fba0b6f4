"""Custom-resource runtime that sets up ML Commons and the semantic index on OpenSearch.

Entry points: ``ml_setup.handler.on_event`` and ``ml_setup.handler.is_complete``.
Nothing here imports from ``stacks/``: the CDK code and this package meet only
through resource properties and environment variables.
"""
