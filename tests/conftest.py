"""Settings every test process needs, set once before any test module imports aws_cdk."""

from __future__ import annotations

import os

# jsii (aws_cdk's bridge to Node) prints a large banner about Node versions on
# every synth; CI machines run Node 20, which jsii calls end-of-life.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
