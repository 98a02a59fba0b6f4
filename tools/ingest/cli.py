"""``python -m tools.ingest``: arguments, the environment's outputs and identity, the summary."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tools.ingest.deadletter import DeadLetters, origin_file
from tools.ingest.loader import Counts, Loader, Settings
from tools.ingest.pace import Backoff, Pace
from tools.ingest.sources import (
    FORMATS,
    Document,
    Fields,
    InputError,
    Record,
    count_records,
    format_of,
    read,
)
from tools.opensearch import assumed_role_credentials, connect
from tools.smoke import DEFAULT_FIELD, SetupError, default_app_name, stack_outputs

NAMESPACE = "E5Search/Ingest"
DEFAULT_DEAD_LETTERS = "ingest-dead-letters.jsonl"
# Default pace (docs/ingest-capacity.md): bulk requests of one semantic sub-batch
# each (output SemanticIngestBatchSize, the index's
# index.neural_search.semantic_ingest_batch_size), so every request is one endpoint
# invocation, and as many in flight as the endpoint's guaranteed capacity serves
# with at most one request waiting per model-server worker (output IngestConcurrency,
# stacks/ingest_capacity.py). Without those outputs: the figures of the default
# configuration (1 x ml.m5.large: 2 workers x 2 = 4) and neural-search's default 10.
DEFAULT_CONCURRENCY = 4
DEFAULT_SEMANTIC_BATCH = 10
# The smallest bulk request the pace shrinks to on throttling (never above the batch).
DEFAULT_MIN_BATCH = 10


@dataclass
class Target:
    endpoint: str
    index: str
    field: str
    region: str
    client_role_arn: str | None
    semantic_batch_size: int
    # Output IngestConcurrency of the ML setup stack, if deployed with it.
    concurrency: int | None = None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ingest",
        description="Load documents into an environment's semantic index (signs as the "
        "search-client role).",
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="JSON Lines, CSV or Parquet file; '-' reads standard input",
    )
    parser.add_argument(
        "--env",
        help="environment: read outputs of <app>-<env>-search and "
        "-ml-setup, sign as their SearchClientRoleArn",
    )
    parser.add_argument("--app", help="app name (default: cdk.json app_name)")
    parser.add_argument("--region", help="region (default: from the AWS session)")
    parser.add_argument(
        "--stack",
        action="append",
        default=[],
        help="read outputs from this stack instead (repeatable)",
    )
    parser.add_argument(
        "--assume-role",
        action="append",
        default=[],
        metavar="ARN",
        help="assume this role first, before the client role (repeatable)",
    )
    parser.add_argument(
        "--endpoint",
        help="domain endpoint; without --env, requests are "
        "signed with the session's own credentials",
    )
    parser.add_argument("--index", help="index or alias (default: output IndexAlias)")
    parser.add_argument("--field", help="semantic field (default: output SemanticField)")
    parser.add_argument("--format", choices=FORMATS, help="input format (default: by suffix)")
    parser.add_argument("--text-field", default="text", help="input field with the text")
    parser.add_argument("--id-field", default="id", help="input field with the document id")
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="FIELD",
        help="also index this input field as it is (repeatable)",
    )
    parser.add_argument(
        "--ids-from-content",
        action="store_true",
        help="no id field: the id is a SHA-256 prefix of the text",
    )
    parser.add_argument(
        "--dead-letters",
        default=DEFAULT_DEAD_LETTERS,
        type=Path,
        help=f"dead-letter JSON Lines file (default {DEFAULT_DEAD_LETTERS})",
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip ids already indexed and retry the dead letters"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="most bulk requests in flight (default: output IngestConcurrency, sized to the "
        f"endpoint, or {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="most documents per bulk request (default: the semantic batch size, one endpoint "
        "invocation per request)",
    )
    parser.add_argument(
        "--min-batch-size",
        type=int,
        help=f"smallest bulk request when throttled (default {DEFAULT_MIN_BATCH}, at most the "
        "batch size)",
    )
    parser.add_argument(
        "--semantic-batch-size",
        type=int,
        help="index.neural_search.semantic_ingest_batch_size, for the endpoint "
        "invocation estimate (default: output SemanticIngestBatchSize or 10)",
    )
    parser.add_argument("--max-attempts", type=int, default=8)
    parser.add_argument("--backoff-base", type=float, default=0.5, help="seconds")
    parser.add_argument("--backoff-cap", type=float, default=30.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument(
        "--metrics",
        action="store_true",
        help=f"publish the counts to CloudWatch ({NAMESPACE}: DocumentsIndexed, DocumentsFailed, "
        "BulkThrottled)",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--json", action="store_true", help="summary as one JSON document")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)  # jitter, for tests
    args = parser.parse_args(argv)
    if not args.env and not args.stack and not (args.endpoint and args.index):
        parser.error("give --env (or --stack), or both --endpoint and --index")
    for name in ("concurrency", "batch_size", "min_batch_size", "max_attempts"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.min_batch_size and args.batch_size and args.min_batch_size > args.batch_size:
        parser.error("--min-batch-size must not exceed --batch-size")
    if args.semantic_batch_size is not None and not 1 <= args.semantic_batch_size <= 100:
        parser.error("--semantic-batch-size must be 1-100 (the index setting's range)")
    if args.files.count("-") > 1:
        parser.error("standard input ('-') can be read once")
    return args


def resolve(args: argparse.Namespace, session: boto3.Session) -> tuple[Target, Any]:
    """The target and the credentials to sign with (the search-client role's, with --env)."""
    region = args.region or session.region_name
    if not region:
        raise SetupError("no region: pass --region or configure one for the AWS session")
    for role in args.assume_role:
        credentials = assumed_role_credentials(session, role, region, "e5search-ingest")
        session = boto3.Session(
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
            region_name=region,
        )
    outputs: dict[str, str] = {}
    if args.env or args.stack:
        app = args.app or default_app_name()
        names = args.stack or [f"{app}-{args.env}-search", f"{app}-{args.env}-ml-setup"]
        outputs = stack_outputs(session, region, names)
        if "SearchClientRoleArn" not in outputs:
            raise SetupError(
                f"no SearchClientRoleArn output in {', '.join(names)}: the loader signs only "
                "as the search-client role (deploy the current search stack)"
            )
    endpoint = args.endpoint or outputs.get("DomainEndpoint")
    index = args.index or outputs.get("IndexAlias") or outputs.get("IndexName")
    if not endpoint or not index:
        missing = "DomainEndpoint" if not endpoint else "IndexAlias"
        raise SetupError(f"output {missing} not found (is the ML setup stack deployed?)")
    batch = args.semantic_batch_size or _positive(outputs, "SemanticIngestBatchSize")
    target = Target(
        endpoint=endpoint,
        index=index,
        field=args.field or outputs.get("SemanticField") or DEFAULT_FIELD,
        region=region,
        client_role_arn=outputs.get("SearchClientRoleArn"),
        semantic_batch_size=batch or DEFAULT_SEMANTIC_BATCH,
        concurrency=_positive(outputs, "IngestConcurrency"),
    )
    if target.client_role_arn:
        return target, assumed_role_credentials(
            session, target.client_role_arn, region, "e5search-ingest"
        )
    credentials = session.get_credentials()
    if credentials is None:
        raise SetupError("no AWS credentials found (environment, profile or role)")
    return target, credentials


def _positive(outputs: dict[str, str], name: str) -> int | None:
    """A positive integer stack output, or None when the stack has no such output."""
    value = outputs.get(name)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise SetupError(f"output {name} is {value!r}; expected a positive integer")
    return int(value)


@dataclass(frozen=True)
class PaceDefaults:
    concurrency: int
    batch: int
    min_batch: int


def pace_defaults(args: argparse.Namespace, target: Target) -> PaceDefaults:
    """Flags first, then the stack's capacity outputs, then the default configuration's."""
    batch = args.batch_size or target.semantic_batch_size
    min_batch = args.min_batch_size or min(DEFAULT_MIN_BATCH, batch)
    if min_batch > batch:
        raise SetupError(f"--min-batch-size {min_batch} exceeds the batch size {batch}")
    return PaceDefaults(args.concurrency or target.concurrency or DEFAULT_CONCURRENCY, batch,
                        min_batch)  # fmt: skip


def _records(
    args: argparse.Namespace, fields: Fields, semantic_field: str, retried: list[Document]
) -> Iterator[Record]:
    yield from retried
    # A dead letter retried above is the same document as its input line: send it once.
    queued = {doc.id for doc in retried}
    for path in args.files:
        for record in read(path, format_of(path, args.format), fields, semantic_field):
            if not (isinstance(record, Document) and record.id in queued):
                yield record


def _previous(
    dead: DeadLetters, files: Sequence[str], semantic_field: str
) -> tuple[list[Document], list[dict[str, Any]]]:
    """Old dead letters: documents to send again, and entries to carry over as they are.

    A malformed line whose file is read again in this run is reported again from
    the file (so not carried); one whose file is not given is kept as it was."""
    given = {"stdin" if f == "-" else f for f in files}
    retry, carry = [], []
    for entry in dead.previous():
        source = entry.get("source")
        if "id" in entry and isinstance(source, dict):
            retry.append(Document(str(entry.get("origin")), str(entry["id"]), source))
        elif origin_file(str(entry.get("origin"))) not in given:
            carry.append(entry)
    return retry, carry


def publish(env: str | None, counts: Counts, region: str, session: boto3.Session) -> None:
    """The run's counts as CloudWatch metrics (namespace E5Search/Ingest, per Environment)."""
    dimensions = [{"Name": "Environment", "Value": env or "none"}]
    session.client("cloudwatch", region_name=region).put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": "DocumentsIndexed",
                "Dimensions": dimensions,
                "Value": float(counts.indexed),
                "Unit": "Count",
            },
            {
                "MetricName": "DocumentsFailed",
                "Dimensions": dimensions,
                "Value": float(counts.failed + counts.malformed),
                "Unit": "Count",
            },
            {
                # The monitoring dashboard graphs it (stacks/monitoring/metrics.py).
                "MetricName": "BulkThrottled",
                "Dimensions": dimensions,
                "Value": float(counts.throttled_answers),
                "Unit": "Count",
            },
        ],
    )


def summary(
    counts: Counts, seconds: float, semantic_batch: int, dead: Path, stopped: str | None
) -> dict[str, Any]:
    seconds = max(seconds, 1e-9)
    return {
        "indexed": counts.indexed,
        "failed": counts.failed + counts.malformed,
        "malformed": counts.malformed,
        "skipped_already_indexed": counts.skipped,
        "seconds": round(seconds, 3),
        "docs_per_s": round(counts.indexed / seconds, 1),
        "endpoint_invocations_per_s": round(counts.endpoint_calls_estimate / seconds, 1),
        "endpoint_invocations_estimate": counts.endpoint_calls_estimate,
        "estimate_basis": f"per answered bulk request, ceil(documents that reached the semantic "
        f"processor / semantic_ingest_batch_size {semantic_batch}), one shard",
        "bulk_requests": counts.bulk_requests,
        "retries": counts.retries,
        "throttled_answers": counts.throttled_answers,
        "confirmed_after_lost_answer": counts.confirmed_after_lost_answer,
        "dead_letters": str(dead) if counts.failed + counts.malformed else None,
        "stopped": stopped,
    }


def render(result: dict[str, Any]) -> str:
    line = (
        f"indexed {result['indexed']}, failed {result['failed']}"
        + (f" ({result['malformed']} malformed)" if result["malformed"] else "")
        + (
            f", skipped {result['skipped_already_indexed']} already indexed"
            if result["skipped_already_indexed"]
            else ""
        )
        + f" in {result['seconds']:.1f} s: {result['docs_per_s']:.1f} docs/s, "
        f"~{result['endpoint_invocations_per_s']:.1f} endpoint invocations/s "
        f"({result['endpoint_invocations_estimate']} estimated: {result['estimate_basis']})"
    )
    if result["dead_letters"]:
        line += f"\ndead letters: {result['dead_letters']} (rerun with --resume to retry them)"
    if result["stopped"]:
        line += f"\nSTOPPED: {result['stopped']}"
    return line


def main(
    argv: Sequence[str] | None = None,
    session_factory: Callable[[], boto3.Session] = boto3.Session,
    *,
    before_send: Callable[[int], None] | None = None,
) -> int:
    args = parse_args(argv)
    dead = DeadLetters(args.dead_letters)

    def fail(reason: str, code: int = 2) -> int:
        print(json.dumps({"ok": False, "reason": reason}) if args.json else reason)
        return code

    if not args.resume and (dead.path.exists() or dead.partial.exists()):
        return fail(
            f"ingest could not start: dead-letter file {dead.path} (or its .partial) "
            "exists: pass --resume to retry it, or move it away"
        )
    try:
        session = session_factory()
        target, credentials = resolve(args, session)
        defaults = pace_defaults(args, target)
        formats = [format_of(path, args.format) for path in args.files]
        totals = [count_records(p, f) for p, f in zip(args.files, formats, strict=True)]
    except (SetupError, InputError, ValueError, BotoCoreError, ClientError) as error:
        return fail(f"ingest could not start: {error}")
    fields = Fields(args.text_field, args.id_field, tuple(args.keep), args.ids_from_content)
    retried, carried = _previous(dead, args.files, target.field) if args.resume else ([], [])
    total = None if None in totals else sum(t for t in totals if t is not None) + len(retried)
    client = connect(
        target.endpoint,
        target.region,
        credentials,
        timeout=args.timeout,
        pool_maxsize=defaults.concurrency + 1,
    )
    pace = Pace(
        max_concurrency=defaults.concurrency,
        max_batch=defaults.batch,
        min_batch=defaults.min_batch,
        backoff=Backoff(
            args.backoff_base,
            args.backoff_cap,
            random.Random(args.seed),  # noqa: S311 (jitter, not secrets)
        ),
    )
    settings = Settings(
        index=target.index,
        max_attempts=args.max_attempts,
        check_existing=args.resume,
        semantic_batch_size=target.semantic_batch_size,
    )
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        unit="doc",
        desc="ingest",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=True if args.no_progress else None,
    )
    loader = Loader(client, settings, pace, dead, progress=bar.update, before_send=before_send)
    dead.open()
    finished = False
    started = time.perf_counter()
    try:
        loader.carry_over(carried)
        loader.counts.failed += len(carried)
        loader.run(_records(args, fields, target.field, retried))
        finished = loader.stopped is None
    except InputError as error:
        loader.stopped = str(error)
    except KeyboardInterrupt:
        loader.stopped = "interrupted"
    finally:
        bar.close()
        dead.close(finished=finished)
    result = summary(
        loader.counts,
        time.perf_counter() - started,
        target.semantic_batch_size,
        dead.path if finished else dead.partial,
        loader.stopped,
    )
    if args.metrics:
        try:
            publish(args.env, loader.counts, target.region, session)
        except (BotoCoreError, ClientError) as error:
            print(f"metrics not published: {error}", file=sys.stderr)
    print(json.dumps(result) if args.json else render(result))
    if loader.stopped:
        return 2
    return 1 if result["failed"] else 0
