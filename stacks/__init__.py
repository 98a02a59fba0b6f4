"""CDK infrastructure code: one module per stack or reusable construct."""
