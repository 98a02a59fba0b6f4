"""Bulk loader: ``python -m tools.ingest --env NAME FILE...`` fills the semantic index.

    python -m tools.ingest --env dev corpus.jsonl
    python -m tools.ingest --env dev --format csv --text-field body --id-field doc_id - < docs.csv
    python -m tools.ingest --env dev corpus.jsonl --resume      # after a kill or failures

It signs as the environment's least-privilege search-client role (stack output
``SearchClientRoleArn``), never as the master role, and resolves the endpoint,
alias and semantic field from the stack outputs as the smoke test does.

Guarantee: every input record ends either indexed (acknowledged by OpenSearch)
or in the dead-letter file with its reason, never both; ``--resume`` skips ids
already indexed and retries the dead letters. Modules: ``sources`` (reading),
``pace`` (back-pressure), ``loader`` (bulk and per-item decisions),
``deadletter``, ``cli`` (arguments, identity, summary, metrics).
"""
