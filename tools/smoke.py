"""Post-deploy smoke test: prove the asymmetric semantic search path works end to end.

    python -m tools.smoke --env dev                       # outputs from CloudFormation
    python -m tools.smoke --endpoint HOST --model-id ID --index NAME
    python -m tools.smoke --env prod --assume-role ARN --as-client --json

A deployment can report success while neural queries fail (model not deployed,
endpoint ignoring the query/passage prefix, ingest not embedding). Each check
below catches one of those, in the order a request travels:

1. domain health   the domain answers and its health is not red;
2. model deployed  the ML Commons model is DEPLOYED;
3. prefix path     ``_predict`` of one sentence as query and as passage gives two
                   vectors of the configured dimension that differ;
4. neural search   a document with a unique id, indexed into the semantic
                   index, is the top hit of a ``neural`` query it answers (on a
                   chunked field too: the hits are documents, scored by their
                   best chunk, so nothing here reads the stored layout);
5. hybrid search   the same document is the top hit of the README's ``hybrid``
                   query (``match`` + ``neural``) through the deployed search
                   pipeline (when the stack names one: ``HybridSearchPipelineName``);
6. cleanup         that document is deleted, whatever happened before.

The first failure stops the checks that depend on it (reported as SKIP) and
becomes the one-line reason; the exit code is 1 for a failed check and 2 when
the test could not start (outputs or credentials missing).

Stack outputs read (the contract with the stacks): ``DomainEndpoint``,
``ModelId``, ``IndexAlias`` (the stable name clients use; ``IndexName``, the
concrete index, when a stack predates the alias), optionally
``SemanticField``, ``EmbeddingDimension``, ``HybridSearchPipelineName`` and, for ``--as-client``,
``SearchClientRoleArn`` or, for ``--as-master``, ``MasterRoleArn``.

Identity: ``--as-client`` signs as the domain's least-privilege search-client
role, which can do exactly what these checks need (what any search application
needs); that is what the pipeline uses, so a passing smoke test also proves the
client role's fine-grained permissions. ``--as-master`` (all_access) remains
for diagnosing a domain whose client mapping is broken.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tools.opensearch import Response, SignedHttpClient, TransportError

ML = "/_plugins/_ml"
DEFAULT_FIELD = "passage_text"
OUTPUT_KEYS = ("DomainEndpoint", "ModelId", "IndexAlias")
# A passage and a question it answers, sharing few words with each other and
# with anything a real corpus is likely to hold near the top.
PASSAGE = (
    "The lighthouse on Kerrow Point is painted in violet and orange stripes and its lamp "
    "flashes twice every nine seconds."
)
QUESTION = "What colours are the stripes on the Kerrow Point lighthouse?"
PROBE = "Semantic search finds passages that answer a question."


class SetupError(RuntimeError):
    """The smoke test could not start: say what is missing, in one line (exit code 2)."""


@dataclass
class Target:
    """What to test: where the domain is and which model, index and field."""

    endpoint: str
    model_id: str
    index: str
    region: str
    field: str = DEFAULT_FIELD
    dimension: int | None = None
    master_role_arn: str | None = None
    client_role_arn: str | None = None
    search_pipeline: str | None = None


@dataclass
class CheckResult:
    name: str
    status: str  # PASS, FAIL or SKIP
    seconds: float
    detail: str


@dataclass
class Report:
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def failure(self) -> CheckResult | None:
        return next((c for c in self.checks if c.status == "FAIL"), None)

    @property
    def ok(self) -> bool:
        return self.failure is None and bool(self.checks)

    def reason(self) -> str:
        failed = self.failure
        return "all checks passed" if failed is None else f"{failed.name}: {failed.detail}"


class CheckFailed(Exception):
    """Raised inside a check with the one-line reason it failed."""


# ----------------------------------------------------------------------------- checks


class SmokeTest:
    """Runs the checks against one domain through a signed client."""

    def __init__(
        self,
        client: SignedHttpClient,
        target: Target,
        *,
        doc_id: str | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.client = client
        self.target = target
        self.doc_id = doc_id or f"smoke-{uuid.uuid4().hex}"
        self.clock = clock
        self.report = Report()
        self.model_dimension: int | None = None

    def run(self) -> Report:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("domain health", self.check_health),
            ("model deployed", self.check_model),
            ("query vs passage", self.check_prefix_path),
            ("neural search", self.check_neural_search),
        ]
        if self.target.search_pipeline:
            steps.append(("hybrid search", self.check_hybrid_search))
        self.doc_written = False
        try:
            for position, (name, step) in enumerate(steps):
                if not self._run(name, step):
                    for later, _ in steps[position + 1 :]:
                        self.report.checks.append(
                            CheckResult(later, "SKIP", 0.0, f"skipped after {name} failed")
                        )
                    break
        finally:
            # Whatever happened (even an exception), a document we may have
            # written is removed: a smoke test must not leave data behind.
            if self.doc_written:
                self._run("cleanup", self.delete_test_document)
        return self.report

    def _run(self, name: str, step: Callable[[], str]) -> bool:
        start = self.clock()
        try:
            detail, status = step(), "PASS"
        except CheckFailed as failed:
            detail, status = str(failed), "FAIL"
        except TransportError as error:
            detail, status = f"domain did not answer ({error})", "FAIL"
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            # An answer of the wrong shape (a proxy's HTML page, a changed API): a failed
            # check with its reason, not a traceback, and cleanup still runs.
            detail, status = f"unexpected answer ({type(error).__name__}: {error})", "FAIL"
        self.report.checks.append(CheckResult(name, status, self.clock() - start, detail))
        return status == "PASS"

    def _call(self, method: str, path: str, body: Any = None, **params: str) -> Response:
        return self.client.request(method, path, body, params or None)

    def check_health(self) -> str:
        reply = self._call("GET", "/_cluster/health")
        if not reply.ok:
            raise CheckFailed(f"GET /_cluster/health failed: {reply.reason()}")
        status = reply.body.get("status")
        if status not in ("green", "yellow", "red"):
            raise CheckFailed(f"cluster health has no status: {reply.body!r}"[:200])
        if status == "red":
            unassigned = reply.body.get("unassigned_shards")
            raise CheckFailed(f"domain health is red ({unassigned} unassigned shards)")
        return f"status {status}, {reply.body.get('number_of_nodes')} nodes"

    def check_model(self) -> str:
        model_id = self.target.model_id
        reply = self._call("GET", f"{ML}/models/{model_id}")
        if reply.status == 404:
            raise CheckFailed(f"model {model_id} does not exist")
        if not reply.ok:
            raise CheckFailed(f"GET model {model_id} failed: {reply.reason()}")
        state = reply.body.get("model_state")
        if state != "DEPLOYED":
            raise CheckFailed(f"model {model_id} is {state}, not DEPLOYED")
        config = reply.body.get("model_config") or {}
        dimension = config.get("embedding_dimension")
        self.model_dimension = dimension if isinstance(dimension, int) else None
        return f"model {model_id} DEPLOYED"

    def _embed(self, text: str, content_type: str) -> list[float]:
        reply = self._call(
            "POST",
            f"{ML}/models/{self.target.model_id}/_predict",
            {"parameters": {"texts": [text], "content_type": content_type}},
        )
        if not reply.ok:
            raise CheckFailed(f"_predict as {content_type} failed: {reply.reason()}")
        vectors = _vectors(reply.body)
        if vectors is None or len(vectors) != 1:
            count = "no" if vectors is None else len(vectors)
            raise CheckFailed(f"_predict as {content_type} returned {count} vectors for 1 text")
        return vectors[0]

    def check_prefix_path(self) -> str:
        query = self._embed(PROBE, "query")
        passage = self._embed(PROBE, "passage")
        expected = self.target.dimension or self.model_dimension
        if expected is None:
            raise CheckFailed("no embedding dimension configured or in the model's model_config")
        for kind, vector in (("query", query), ("passage", passage)):
            if len(vector) != expected:
                raise CheckFailed(
                    f"{kind} vector has {len(vector)} dimensions, expected {expected}"
                )
        if self.model_dimension is not None and self.model_dimension != expected:
            raise CheckFailed(
                f"model_config says {self.model_dimension} dimensions, configured {expected}"
            )
        difference = max(abs(a - b) for a, b in zip(query, passage, strict=True))
        if difference < 1e-6:
            raise CheckFailed(
                "query and passage vectors of the same sentence are identical: the endpoint "
                "ignores content_type, so the E5 prefixes are not applied"
            )
        return f"{expected} dimensions, cosine {_cosine(query, passage):.4f}"

    def check_neural_search(self) -> str:
        index, doc_id, name = self.target.index, self.doc_id, self.target.field
        self.doc_written = True  # from here on, cleanup runs even if the PUT times out
        put = self._call("PUT", f"/{index}/_doc/{doc_id}", {name: PASSAGE}, refresh="true")
        if not put.ok:
            raise CheckFailed(f"indexing the test document failed: {put.reason()}")
        neural = {"neural": {name: {"query_text": QUESTION, "k": 5}}}
        reply = self._call(
            "POST", f"/{index}/_search", {"size": 5, "_source": False, "query": neural}
        )
        if not reply.ok:
            raise CheckFailed(f"neural query failed: {reply.reason()}")
        hits = (reply.body.get("hits") or {}).get("hits") or []
        if not hits:
            raise CheckFailed(f"test document {doc_id} not found: the neural query had no hits")
        if hits[0].get("_id") != doc_id:
            rank = next((i + 1 for i, h in enumerate(hits) if h.get("_id") == doc_id), None)
            where = f"rank {rank}" if rank else "not in the top 5"
            raise CheckFailed(
                f"test document {doc_id} not found as top hit ({where}; top hit is "
                f"{hits[0].get('_id')})"
            )
        return f"top hit, score {hits[0].get('_score')}"

    def check_hybrid_search(self) -> str:
        """The deployed pipeline serves a hybrid query (lexical first, semantic second)."""
        index, doc_id, name = self.target.index, self.doc_id, self.target.field
        pipeline = str(self.target.search_pipeline)
        hybrid = {
            "hybrid": {
                "queries": [
                    {"match": {name: {"query": QUESTION}}},
                    {"neural": {name: {"query_text": QUESTION, "k": 5}}},
                ]
            }
        }
        reply = self._call(
            "POST",
            f"/{index}/_search",
            {"size": 5, "_source": False, "query": hybrid},
            search_pipeline=pipeline,
        )
        if not reply.ok:
            raise CheckFailed(f"hybrid query through pipeline {pipeline} failed: {reply.reason()}")
        hits = (reply.body.get("hits") or {}).get("hits") or []
        if not hits or hits[0].get("_id") != doc_id:
            top = hits[0].get("_id") if hits else "none"
            raise CheckFailed(
                f"test document {doc_id} is not the top hit of the hybrid query (top hit is {top})"
            )
        return f"top hit through {pipeline}, score {hits[0].get('_score')}"

    def delete_test_document(self) -> str:
        reply = self._call("DELETE", f"/{self.target.index}/_doc/{self.doc_id}", refresh="true")
        if reply.ok:
            return f"deleted {self.doc_id}"
        if reply.status == 404:
            return f"{self.doc_id} was not there"
        raise CheckFailed(f"test document {self.doc_id} was not deleted: {reply.reason()}")


def _vectors(body: Any) -> list[list[float]] | None:
    """Vectors of a remote-model ``_predict`` answer (``dataAsMap.response``, or ``data``)."""
    try:
        outputs = body["inference_results"][0]["output"]
    except (KeyError, IndexError, TypeError):
        return None
    for output in outputs:
        response = (output.get("dataAsMap") or {}).get("response")
        if isinstance(response, list) and all(isinstance(v, list) for v in response):
            return response
        if isinstance(output.get("data"), list):
            return [output["data"]]
    return None


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = (sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5)
    return dot / norm if norm else 0.0


# ----------------------------------------------------------------------------- AWS


def assume(session: boto3.Session, role_arn: str, region: str) -> boto3.Session:
    """A session of ``role_arn`` (temporary credentials; role chaining allows one hour)."""
    sts = session.client("sts", region_name=region)
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="e5search-smoke")["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )


def stack_outputs(
    session: boto3.Session, region: str, stack_names: Sequence[str]
) -> dict[str, str]:
    """Outputs of ``stack_names`` merged (a missing stack is an error that names it)."""
    cfn = session.client("cloudformation", region_name=region)
    outputs: dict[str, str] = {}
    for name in stack_names:
        try:
            (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as error:
            raise SetupError(f"stack {name} not readable in {region}: {error}") from error
        if not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
            raise SetupError(f"stack {name} is {stack['StackStatus']}")
        for output in stack.get("Outputs", []):
            outputs[output["OutputKey"]] = output["OutputValue"]
    return outputs


def target_from_outputs(outputs: dict[str, str], region: str, stack_names: Sequence[str]) -> Target:
    outputs = dict(outputs)
    if "IndexAlias" not in outputs and "IndexName" in outputs:
        # A stack deployed before the alias existed: its concrete index still works.
        outputs["IndexAlias"] = outputs["IndexName"]
    missing = [key for key in OUTPUT_KEYS if key not in outputs]
    if missing:
        raise SetupError(
            f"output {', '.join(missing)} not found in stacks {', '.join(stack_names)} "
            "(is the ML setup stack deployed?)"
        )
    dimension = outputs.get("EmbeddingDimension")
    return Target(
        endpoint=outputs["DomainEndpoint"],
        model_id=outputs["ModelId"],
        index=outputs["IndexAlias"],
        region=region,
        field=outputs.get("SemanticField", DEFAULT_FIELD),
        dimension=int(dimension) if dimension else None,
        master_role_arn=outputs.get("MasterRoleArn"),
        client_role_arn=outputs.get("SearchClientRoleArn"),
        search_pipeline=outputs.get("HybridSearchPipelineName"),
    )


def default_app_name() -> str:
    """``app_name`` from cdk.json when run from the repository, so --app is rarely needed."""
    path = Path(__file__).resolve().parents[1] / "cdk.json"
    try:
        return json.loads(path.read_text())["context"]["app_name"]
    except (OSError, KeyError, ValueError):
        return "e5search"


# ----------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.smoke", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--env", help="environment name: read outputs of <app>-<env>-search and -ml-setup"
    )
    parser.add_argument("--app", default=None, help="app name (default: cdk.json app_name)")
    parser.add_argument("--region", help="region of the environment (default: from the session)")
    parser.add_argument(
        "--stack",
        action="append",
        default=[],
        help="read outputs from this stack (repeatable; overrides the defaults)",
    )
    parser.add_argument("--endpoint", help="domain endpoint (host or https URL)")
    parser.add_argument("--model-id")
    parser.add_argument("--index")
    parser.add_argument("--field", help=f"semantic field (default: output or {DEFAULT_FIELD})")
    parser.add_argument("--dimension", type=int, help="expected embedding dimension")
    parser.add_argument(
        "--search-pipeline",
        help="hybrid search pipeline to check (default: output HybridSearchPipelineName)",
    )
    parser.add_argument(
        "--assume-role",
        action="append",
        default=[],
        metavar="ARN",
        help="assume this role first (repeatable: a chain, in order)",
    )
    identity = parser.add_mutually_exclusive_group()
    identity.add_argument(
        "--as-client",
        action="store_true",
        help="sign requests as the domain's least-privilege search-client role "
        "(SearchClientRoleArn output; what the pipeline uses)",
    )
    identity.add_argument(
        "--as-master",
        action="store_true",
        help="sign requests as the domain's master role (MasterRoleArn output; all_access, "
        "for diagnosis only)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)  # fmt: skip
    direct = (args.endpoint, args.model_id, args.index)
    if not args.env and not args.stack and not all(direct):
        parser.error("give --env (or --stack), or all of --endpoint, --model-id and --index")
    return args


def resolve(args: argparse.Namespace, session: boto3.Session) -> tuple[Target, boto3.Session]:
    """Stack outputs and explicit arguments -> the target, and the session to sign with."""
    region = args.region or session.region_name
    if not region:
        raise SetupError("no region: pass --region or configure one for the AWS session")
    for role in args.assume_role:
        session = assume(session, role, region)
    needs_outputs = (
        args.as_master or args.as_client or not all((args.endpoint, args.model_id, args.index))
    )
    if needs_outputs:
        app = args.app or default_app_name()
        names = args.stack or [f"{app}-{args.env}-search", f"{app}-{args.env}-ml-setup"]
        outputs = stack_outputs(session, region, names)
        overrides = {"DomainEndpoint": args.endpoint, "ModelId": args.model_id,
                     "IndexAlias": args.index}  # fmt: skip
        outputs.update({k: v for k, v in overrides.items() if v})
        target = target_from_outputs(outputs, region, names)
    else:
        target = Target(args.endpoint, args.model_id, args.index, region)
    if args.field:
        target.field = args.field
    if args.dimension:
        target.dimension = args.dimension
    if args.search_pipeline:
        target.search_pipeline = args.search_pipeline
    if args.as_client:
        if not target.client_role_arn:
            raise SetupError(
                "--as-client: no SearchClientRoleArn output in the environment's stacks "
                "(deploy the current search stack, or use --as-master)"
            )
        session = assume(session, target.client_role_arn, region)
    if args.as_master:
        if not target.master_role_arn:
            raise SetupError("--as-master: no MasterRoleArn output in the environment's stacks")
        session = assume(session, target.master_role_arn, region)
    return target, session


def render(report: Report, target: Target, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {
                "ok": report.ok,
                "reason": report.reason(),
                "target": asdict(target),
                "checks": [asdict(c) for c in report.checks],
            }
        )
    lines = [f"{c.status:<4}  {c.name:<17} {c.seconds:7.2f}s  {c.detail}" for c in report.checks]
    lines.append(("SMOKE PASSED: " if report.ok else "SMOKE FAILED: ") + report.reason())
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    session_factory: Callable[[], boto3.Session] = boto3.Session,
) -> int:
    args = parse_args(argv)
    try:
        target, session = resolve(args, session_factory())
        credentials = session.get_credentials()
        if credentials is None:
            raise SetupError("no AWS credentials found (environment, profile or role)")
        client = SignedHttpClient(
            target.endpoint,
            target.region,
            credentials.get_frozen_credentials,
            timeout=args.timeout,
        )
    except (SetupError, ValueError, BotoCoreError, ClientError) as error:
        reason = f"smoke test could not start: {error}"
        print(json.dumps({"ok": False, "reason": reason}) if args.json else reason)
        return 2
    report = SmokeTest(client, target).run()
    print(render(report, target, args.json))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
