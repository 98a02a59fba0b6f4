"""Re-embed a large index outside CloudFormation, so the next deploy adopts it.

    python -m tools.migrate --env dev
    python -m tools.migrate --env prod --assume-role ARN --poll-seconds 30

Why it exists: CloudFormation waits at most an hour for the index resource, so
a deploy whose re-embedding copy is estimated to take longer refuses it up
front (``Custom::SemanticIndex``, lambdas/ml_setup/semantic_index.py) and
leaves its plan, the new index's name and creation body, in the ``_meta`` of
the index the alias points at (``pending_migration``). This command carries
that plan out with the same rules as the deployment's copy:

1. create the new index from the plan, marked ``_meta.migration.state =
   copying`` (with the phase and the current ``_reindex`` task id once it runs);
2. stamp writes to the old index and ``_reindex`` it as a throttled task
   (``requests_per_second`` from the plan, the endpoint's copy share) so the
   destination's semantic field re-embeds every document, polled with a
   progress bar in docs/s. Clients keep reading *and writing* the old index
   through the alias meanwhile;
3. catch up what they wrote (lambdas/ml_setup/catchup.py, the same code the
   deployment's copy runs): unblocked rounds until the rest fits in the plan's
   ``write_block_seconds``, then one round under ``index.blocks.write`` that
   copies the last writes and deletes what was deleted;
4. verify: equal counts after refresh, a sample carries the new model's vectors;
5. mark the new index ``complete``, move the alias in one ``POST /_aliases``,
   lift the write block, stop stamping.

Resumable: state lives on the domain, not here. Killed while a task runs, the
next run finds the ``copying`` marker, its phase and task id, and polls the
same task (nothing is embedded twice); writes stay open meanwhile (stamped, so
caught up later), unless it was killed in the final round, whose block stays
until a rerun finishes it. A task that is gone (node restart) is started again
into the same index (documents are overwritten by id). Killed after the copy,
the next run finishes steps 4-5. A copy that fails (documents the endpoint
refused, a count mismatch, writes faster than the endpoint) is abandoned: its
task is cancelled, the new index deleted, writes unblocked and no longer
stamped, and a rerun starts clean. The
next ``make deploy`` finds the new index complete, for the same embedding
identity, and adopts it with no copy; its cleanup deletes the old index (or
keeps it with RetainOnDelete).

Identity: the domain's master role (``MasterRoleArn`` output). The setup role
that runs the deployment's copy trusts only the Lambda service, so no person
can sign as it; the master role is the one assumable role that may reindex
this app's indexes. The same HTTP client and stack outputs as tools.smoke.
Limit: a plan whose new model was registered by the refused deployment names a
model its rollback deleted; this command then stops with that reason (change
the model in one deploy, the index in the next).

Exit codes: 0 migrated (or nothing left to do), 1 the copy failed (reason on
one line; rerun to retry), 2 could not start.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from tqdm import tqdm

from lambdas.ml_setup import catchup
from tools.opensearch import SignedHttpClient, TransportError, error_text
from tools.smoke import SetupError, assume, default_app_name, stack_outputs

PLAN = "pending_migration"  # the key semantic_index.py writes (PLAN there)
COPYING, COMPLETE = "copying", "complete"
PROGRESS = ("phase", "task", "generation", "rounds")  # semantic_index.STATE_KEYS
SAMPLE_SIZE = 5


class MigrationFailed(RuntimeError):
    """The copy or its verification failed: one line, the alias has not moved (exit 1)."""


@dataclass(frozen=True)
class Result:
    source: str
    target: str
    documents: int  # in the new index at the end
    copied: int  # by this run (less than documents when it resumed a copy)
    seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.copied / self.seconds if self.seconds > 0 else 0.0


ProgressFactory = Callable[[int], Any]


def default_progress(total: int) -> Any:
    return tqdm(total=total, unit="doc", desc="re-embedding", file=sys.stderr)


class Migration:
    """One run against one domain; every decision is read back from the domain."""

    def __init__(
        self,
        client: SignedHttpClient,
        alias: str,
        *,
        poll_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress: ProgressFactory = default_progress,
    ) -> None:
        self.client = client
        self.alias = alias
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.clock = clock
        self.progress = progress
        self.copied = 0  # documents the copy advanced by during this run

    # ------------------------------------------------------------------ domain reads

    def _call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        response = self.client.request(method, path, body, params or None)
        if not response.ok:
            raise MigrationFailed(f"{method} {path}: {response.status} {error_text(response.body)}")
        return response.body

    def _index(self, name: str) -> dict[str, Any] | None:
        response = self.client.request("GET", f"/{name}")
        if response.status == 404:
            return None
        if not response.ok or not isinstance(response.body, dict):
            raise MigrationFailed(f"GET /{name}: {response.status} {error_text(response.body)}")
        return response.body.get(name)

    @staticmethod
    def _meta(index: dict[str, Any] | None) -> dict[str, Any]:
        meta = ((index or {}).get("mappings") or {}).get("_meta")
        return meta if isinstance(meta, dict) else {}

    def _holders(self) -> list[str]:
        # The same pattern-scoped alias read as the index resource (no bare _alias call).
        response = self.client.request("GET", f"/{self.alias}-*/_alias/{self.alias}")
        if response.status == 404 or not isinstance(response.body, dict):
            return []
        return sorted(i for i, e in response.body.items() if self.alias in (e.get("aliases") or {}))

    def _count(self, index: str) -> int:
        self._call("POST", f"/{index}/_refresh")
        return int(self._call("POST", f"/{index}/_count", {}).get("count", 0))

    # ------------------------------------------------------------------ steps

    def find_plan(self) -> tuple[str, dict[str, Any]] | None:
        """(old index, plan), or None when the alias is already on a completed copy."""
        holders = self._holders()
        if len(holders) != 1:
            raise SetupError(f"alias {self.alias} points at {holders or 'no index'}, not one index")
        (current,) = holders
        meta = self._meta(self._index(current))
        plan = meta.get(PLAN)
        if isinstance(plan, dict):
            return current, plan
        migration = meta.get("migration") or {}
        if migration.get("state") == COMPLETE:
            if migration.get("source"):  # a run killed after the alias moved
                self._finish(str(migration["source"]))
            return None
        raise SetupError(
            f"index {current} has no pending migration: deploy first (a deploy whose copy "
            "would take too long refuses it and records the plan this command carries out)"
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """catchup.py's transport: this tool's client, failures as MigrationFailed."""
        response = self.client.request(method, path, body, query)
        if not response.ok and response.status not in allow:
            raise MigrationFailed(f"{method} {path}: {response.status} {error_text(response.body)}")
        return response.status, response.body

    def run(self) -> Result | None:
        found = self.find_plan()
        if found is None:
            return None
        source, plan = found
        target = str(plan["target"])
        started = self.clock()
        existing = self._index(target)
        migration = (self._meta(existing).get("migration") or {}) if existing else {}
        if migration.get("state") != COMPLETE:
            model = self.client.request("GET", f"/_plugins/_ml/models/{plan['model_id']}")
            if model.status == 404:
                raise MigrationFailed(
                    f"model {plan['model_id']} of the plan no longer exists (registered by the "
                    "refused deployment and removed by its rollback): deploy the model change "
                    "alone first, then the index change"
                )
            if existing is None:
                self._call("PUT", f"/{target}", plan["body"])
                migration = dict(plan["body"]["mappings"]["_meta"]["migration"])
            try:
                self._copy(source, target, plan, migration)
                self._verify(source, target, plan)
            except (MigrationFailed, catchup.CatchUpError) as error:
                # Abandoned: the task is cancelled first (a running one would recreate the
                # index), the half copy goes (a rerun starts clean from every document
                # written meanwhile) and writers get their index back, unstamped.
                self._abandon(source, target, migration.get("task"))
                if isinstance(error, MigrationFailed):
                    raise
                raise MigrationFailed(f"{error}; alias unchanged, rerun to retry") from error
            # Killed (KeyboardInterrupt, a lost terminal) nothing is undone: writes stay
            # open and stamped during a round, blocked during the last one, until a rerun.
            done = {k: v for k, v in migration.items() if k not in PROGRESS} | {"state": COMPLETE}
            self._call("PUT", f"/{target}/_mapping", {"_meta": {"migration": done},
                                                      "properties": {}})  # fmt: skip
        documents = self._count(target)
        self._move_alias(source, target)
        self._finish(source)
        return Result(source, target, documents, self.copied, self.clock() - started)

    def _finish(self, source: str) -> None:
        self._set_write_block(source, False)
        catchup.finish(self.call, source, catchup.pipeline_id(self.alias))

    def _abandon(self, source: str, target: str, task: str | None) -> None:
        for undo in (
            lambda: catchup.cancel(self.call, task),
            lambda: self.client.request("DELETE", f"/{target}"),
            lambda: self._finish(source),
        ):
            try:
                undo()
            except (MigrationFailed, TransportError) as error:
                print(f"cleanup after the failure also failed: {error}", file=sys.stderr)

    def _set_write_block(self, index: str, blocked: bool) -> None:
        response = self.client.request(
            "PUT", f"/{index}/_settings", {"index": {"blocks": {"write": blocked}}}
        )
        if not response.ok and not (response.status == 404 and not blocked):
            raise MigrationFailed(
                f"write block on {index}: {response.status} {error_text(response.body)}"
            )

    def _limits(self, plan: dict[str, Any]) -> catchup.Limits:
        return catchup.Limits(
            float(plan.get("requests_per_second") or 1),
            float(plan.get("write_block_seconds") or 60),
        )

    def _save(self, target: str, migration: dict[str, Any]) -> None:
        # The phase and task id are the resume point: recorded before the next poll.
        self._call("PUT", f"/{target}/_mapping", {"_meta": {"migration": migration},
                                                  "properties": {}})  # fmt: skip

    def _copy(self, source: str, target: str, plan: dict[str, Any], migration: dict) -> None:
        """The copy and its catch-up rounds (catchup.step), with a bar for the copy."""
        limits = self._limits(plan)
        resumed = bool(migration.get("task"))
        if not resumed:
            migration.update(
                catchup.begin(self.call, source, target, self.alias, limits, time.time())
            )
            self._save(target, migration)
        migration.setdefault("phase", "copy")  # a copy started before catch-up existed
        migration.setdefault("generation", 1)
        bar = self.progress(self._count(source))
        before = self._count(target) if resumed else 0  # done before this run (for docs/s)
        try:
            while True:
                state = {k: migration[k] for k in PROGRESS if k in migration}
                seen = None
                if state["phase"] == "copy":
                    seen = catchup.task_state(self.call, str(state["task"]))
                    if seen.gone:
                        bar.write(f"task {state['task']} is gone (node restart?); copying again")
                        state["task"] = catchup.start_task(
                            self.call, source, target, limits.docs_per_second, None
                        )
                        migration.update(state)
                        self._save(target, migration)
                        bar.reset()
                        before = 0
                        continue
                    self.copied = seen.done - before
                    bar.update(seen.done - bar.n)
                moved = catchup.step(self.call, source, target, self.alias, state, limits,
                                     log=bar.write, seen=seen)  # fmt: skip
                if moved != state:
                    migration.update(moved)
                    self._save(target, migration)
                if moved["phase"] == "done":
                    bar.update(max(0, bar.total - bar.n))  # the catch-up copied the rest
                    return
                if moved == state:
                    self.sleep(self.poll_seconds)
        finally:
            bar.close()

    def _verify(self, source: str, target: str, plan: dict[str, Any]) -> None:
        before, after = self._count(source), self._count(target)
        if before != after:
            raise MigrationFailed(f"copy incomplete: {source} has {before}, {target} {after}")
        hits = (self._call("POST", f"/{target}/_search",
                           {"size": SAMPLE_SIZE, "query": {"match_all": {}}})
                or {}).get("hits", {}).get("hits", [])  # fmt: skip
        for hit in hits:
            info = (hit.get("_source") or {}).get(f"{plan['field']}_semantic_info") or {}
            vectors, used = _stored_vectors(info), (info.get("model") or {}).get("id")
            if not vectors or any(len(v) != plan["dimension"] for v in vectors):
                raise MigrationFailed(f"document {hit.get('_id')} has no new vector after the copy")
            if used != plan["model_id"]:
                raise MigrationFailed(f"document {hit.get('_id')} was embedded by model {used}")

    def _move_alias(self, source: str, target: str) -> None:
        holders = self._holders()
        if holders == [target]:
            return
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": self.alias}} for old in holders if old != target
        ]
        if target not in holders:
            actions.append({"add": {"index": target, "alias": self.alias}})
        self._call("POST", "/_aliases", {"actions": actions})


# ----------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.migrate", description=__doc__)
    parser.add_argument("--env", required=True, help="environment name (dev, staging, prod)")
    parser.add_argument("--app", help="app name (default: cdk.json context app_name)")
    parser.add_argument("--region", help="default: the AWS session's region")
    parser.add_argument(
        "--assume-role", action="append", default=[],
        help="assume this role first, before the master role (repeatable: a chain)",
    )  # fmt: skip
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request")
    return parser.parse_args(argv)


def connect(args: argparse.Namespace, session: boto3.Session) -> tuple[SignedHttpClient, str]:
    """Stack outputs -> a client signing as the master role, and the alias."""
    region = args.region or session.region_name
    if not region:
        raise SetupError("no region: pass --region or configure one for the AWS session")
    for role in args.assume_role:
        session = assume(session, role, region)
    app = args.app or default_app_name()
    names = [f"{app}-{args.env}-search", f"{app}-{args.env}-ml-setup"]
    outputs = stack_outputs(session, region, names)
    missing = [k for k in ("DomainEndpoint", "IndexAlias", "MasterRoleArn") if k not in outputs]
    if missing:
        raise SetupError(f"output {', '.join(missing)} not found in stacks {', '.join(names)}")
    session = assume(session, outputs["MasterRoleArn"], region)
    credentials = session.get_credentials()
    if credentials is None:
        raise SetupError("no AWS credentials found (environment, profile or role)")
    client = SignedHttpClient(
        outputs["DomainEndpoint"], region, credentials.get_frozen_credentials,
        timeout=args.timeout, max_retries=5,
    )  # fmt: skip
    return client, outputs["IndexAlias"]


def main(
    argv: Sequence[str] | None = None,
    session_factory: Callable[[], boto3.Session] = boto3.Session,
) -> int:
    args = parse_args(argv)
    try:
        client, alias = connect(args, session_factory())
        result = Migration(client, alias, poll_seconds=args.poll_seconds).run()
    except (SetupError, ValueError, BotoCoreError, ClientError) as error:
        print(f"migration could not start: {error}")
        return 2
    except (MigrationFailed, TransportError) as error:
        print(f"migration failed: {error}")
        return 1
    if result is None:
        print(f"nothing to migrate: alias {alias} is on a completed index")
        return 0
    print(
        f"migrated {result.documents} documents {result.source} -> {result.target} "
        f"({result.copied} copied in {result.seconds:.0f} s by this run, "
        f"{result.docs_per_second:.1f} docs/s); alias {alias} moved. "
        f"Deploy environment {args.env} now: it adopts {result.target} without a copy"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _stored_vectors(info: dict[str, Any]) -> list[list[Any]]:
    """The vectors of a ``<field>_semantic_info``: one, or one per chunk of a chunked field.

    neural-search 3.7.0.0 processor/dto/SemanticFieldInfo.java:88-128 (the layout the
    ML setup's own verification reads too, lambdas/ml_setup/reembed.stored_vectors).
    """
    if "chunks" in info:
        chunks = info.get("chunks")
        vectors = [c.get("embedding") for c in chunks or [] if isinstance(c, dict)]
        ok = isinstance(chunks, list) and chunks and len(vectors) == len(chunks)
        return vectors if ok and all(isinstance(v, list) for v in vectors) else []
    vector = info.get("embedding")
    return [vector] if isinstance(vector, list) else []
