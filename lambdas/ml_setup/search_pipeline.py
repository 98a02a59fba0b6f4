"""Custom::HybridSearchPipeline: the search pipeline that makes ``hybrid`` queries work.

A ``hybrid`` query (a lexical ``match`` and a ``neural`` clause) returns scores
on two incomparable scales; neural-search's ``normalization-processor``, in a
search pipeline, normalises each sub-query's scores and combines them with
weights. Without a deployed pipeline every application would have to create its
own (and hold ``cluster:admin/search/pipeline/put`` to do it), so the stack owns
one per environment and clients name it with ``?search_pipeline=``.

The weights apply to the sub-queries by position (neural-search 3.7.0.0
``processor/combination/ScoreCombinationUtil.java:88-90``): the README's query
puts the lexical clause first and the neural one second, in that order.

Lifecycle:
* Create and Update ``PUT`` the whole pipeline (a search pipeline has no partial
  update; ``PUT`` replaces it atomically in the cluster state), so every property
  but the name changes in place and a query never sees a half-made pipeline.
* A new name is a new physical id: CloudFormation creates the new pipeline,
  then its cleanup deletes the old one.
* Delete tolerates a pipeline that is already gone (404). OpenSearch deletes
  every pipeline whose id matches the given one as a wildcard pattern
  (``SearchPipelineService.innerDelete``, ``Regex.simpleMatch``), so an id that
  is not exactly one of ours is never sent.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .common import Ctx, Outcome
from .properties import PropertyError, Props

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = "Custom::HybridSearchPipeline"
# Lowercase letters, digits, '_' and '-': in particular no '*' or ',' (a delete
# would match other pipelines) and nothing that needs escaping in a URL path.
PIPELINE_NAME = r"[a-z0-9][a-z0-9_\-]{0,127}"
# neural-search 3.7.0.0 processor/normalization/ScoreNormalizationFactory.java:38-59
# lists the combinations each normalization accepts. Offered: what both that code
# and the OpenSearch API specification accept (search_pipeline._common___Score*
# enums). z_score exists in 3.7 but not in the specification; rrf is a rank
# fusion with a processor of its own (score-ranker-processor).
COMBINATIONS_FOR = {
    "min_max": ("arithmetic_mean", "geometric_mean", "harmonic_mean"),
    "l2": ("arithmetic_mean", "geometric_mean", "harmonic_mean"),
}
WEIGHT = r"(0(\.[0-9]{1,3})?|1(\.0{1,3})?)"


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    normalization: str
    combination: str
    weights: tuple[Decimal, ...]

    @classmethod
    def parse(cls, props: Props) -> Spec:
        normalization = props.choice("Normalization", tuple(COMBINATIONS_FOR), default="min_max")
        combination = props.choice(
            "Combination", COMBINATIONS_FOR[normalization], default="arithmetic_mean"
        )
        raw = props.string_list(
            "Weights",
            pattern=WEIGHT,
            what="a list of decimal weights from 0 to 1 (at most 3 decimals), one per sub-query",
        )
        weights = tuple(Decimal(w) for w in raw)
        # ScoreCombinationUtil.java:120-139 accepts a sum within 0.01 of 1; we
        # ask for exactly 1 so that what the template says is what is applied.
        if len(weights) < 2 or sum(weights) != 1:
            raise PropertyError(
                f"{RESOURCE_TYPE} property Weights: {raw!r}; expected at least two weights "
                "that sum to exactly 1"
            )
        return cls(
            name=props.string("Name", pattern=PIPELINE_NAME, what="a search pipeline name"),
            description=props.string("Description", default="hybrid search: BM25 + semantic"),
            normalization=normalization,
            combination=combination,
            weights=weights,
        )

    def body(self) -> dict[str, Any]:
        """The pipeline as neural-search's NormalizationProcessorFactory reads it."""
        return {
            "description": self.description,
            "phase_results_processors": [
                {
                    "normalization-processor": {
                        "normalization": {"technique": self.normalization},
                        "combination": {
                            "technique": self.combination,
                            "parameters": {"weights": [float(w) for w in self.weights]},
                        },
                    }
                }
            ],
        }


def _put(spec: Spec, ctx: Ctx) -> Outcome:
    client = ctx.setup_client()
    client.wait_until_available()
    client.request("PUT", f"/_search/pipeline/{spec.name}", body=spec.body())
    return Outcome(spec.name, {"PipelineName": spec.name})


def create(props: Props, ctx: Ctx) -> Outcome:
    return _put(Spec.parse(props), ctx)


def update(props: Props, old_props: Props, physical_id: str, ctx: Ctx) -> Outcome:
    # Always PUT, even when nothing changed: it also restores a pipeline that
    # someone deleted or edited behind CloudFormation's back.
    return _put(Spec.parse(props), ctx)


def delete(props: Props, physical_id: str, ctx: Ctx) -> None:
    if not re.fullmatch(PIPELINE_NAME, physical_id or ""):
        # Not a name we could have made: sending it could match other pipelines
        # as a wildcard. (A request id that CloudFormation sends after a failed
        # Create is a valid name and only gets a harmless 404.)
        LOG.warning("physical id %r is not a pipeline name; nothing to delete", physical_id[:80])
        return
    client = ctx.setup_client()
    client.wait_until_available()
    client.request("DELETE", f"/_search/pipeline/{physical_id}", allow=(404,))


def poll(props: Props, physical_id: str, wait: dict[str, Any], ctx: Ctx) -> Outcome | None:
    """Nothing to wait for: a pipeline is usable as soon as PUT returns."""
    return Outcome(physical_id, {"PipelineName": physical_id})
