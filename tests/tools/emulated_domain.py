"""What the smoke test needs beyond the shared emulator, kept apart from it.

``tests/support/opensearch_emulator.py`` (issue 4) has no document delete and
no switches for the faults a post-deploy smoke test exists to catch. Rather
than edit that shared module, this subclass (of the evaluation's emulator, for
``match`` and ``hybrid`` scoring through a search pipeline) adds exactly those, following the
same rules as the rest of the emulator (security-plugin permission checks,
responses validated against the OpenSearch API specification):

* ``DELETE /{index}/_doc/{id}`` needs ``indices:data/write/delete`` and answers
  404 ``not_found`` for a missing document, like OpenSearch;
* ``health_status``: what ``_cluster/health`` reports (``red`` = a primary
  shard unassigned);
* ``drop_embeddings``: documents are stored but their semantic field is not
  embedded (an ingest path that silently does nothing), so neural queries
  cannot find them.

"Model not deployed" and "identical vectors" need no switch: undeploy the
model through the API, or give the emulator an embedder that ignores
``content_type`` (an endpoint that does not apply the E5 prefixes).
"""

from __future__ import annotations

from typing import Any

from tests.evaluate.search_emulator import SearchEmulator
from tests.support.opensearch_emulator import (
    ApiError,
    OpenSearchEmulator,
    Outcome,
    Request,
    Route,
)


class SmokeTestDomain(SearchEmulator):
    """The shared emulator plus the doc delete and fault switches the smoke test needs."""

    # The shared emulator's _bulk, not the evaluation emulator's override.
    _bulk = OpenSearchEmulator._bulk

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.health_status = "green"
        self.drop_embeddings = False

    def routes(self) -> list[Route]:
        """The base's APIs plus document delete (the base emulator has none)."""
        delete = Route(
            "DELETE",
            r"/(?P<index>[^/]+)/_doc/(?P<doc>[^/]+)",
            "indices:data/write/delete",
            self._doc_delete,
        )
        # The loader's _bulk (the shared emulator's sourced semantic-ingest rules and
        # fault hooks), ahead of the evaluation emulator's simpler one.
        return [delete, *OpenSearchEmulator._bulk_routes(self), *super().routes()]

    def _health(self, r: Request) -> Outcome:
        outcome = super()._health(r)
        if self.health_status != "green":
            body = dict(outcome.body)
            body["status"] = self.health_status
            if self.health_status == "red":
                body.update(unassigned_shards=1, active_shards_percent_as_number=50.0)
            outcome = Outcome(outcome.status, body)
        return outcome

    def _doc_put(self, r: Request, index: str, doc: str) -> Outcome:
        outcome = super()._doc_put(r, index, doc)
        if self.drop_embeddings:
            source = self.indices[index].docs[doc]
            for name in self._semantic_fields(self.indices[index]):
                source.pop(f"{name}_semantic_info", None)
        return outcome

    def _doc_delete(self, r: Request, index: str, doc: str) -> Outcome:
        state = self._index(index)
        if doc not in state.docs:
            return Outcome(404, self._write_response(index, doc, "not_found"))
        del state.docs[doc]
        return Outcome(200, self._write_response(index, doc, "deleted"))


def undeploy(domain: OpenSearchEmulator, model_id: str) -> None:
    """Put the model in the state an undeploy (or a node restart) leaves it in."""
    with domain.lock:
        if model_id not in domain.models:
            raise ApiError(404, "status_exception", "Failed to find model")
        domain.models[model_id]["model_state"] = "UNDEPLOYED"
