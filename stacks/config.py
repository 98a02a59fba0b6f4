"""One typed, validated configuration object per environment.

Settings live in ``cdk.json`` under ``context.environments.<name>``. They are
checked once, here, before any construct is built, so that a typo or an
unsupported value fails ``cdk synth`` with one line naming the key, the bad
value and what is allowed, instead of surfacing an hour into a deployment.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stacks.alarm_catalog import ALARM_IDS, THRESHOLDS
from stacks.instance_types import (
    has_instance_store,
    is_gpu_endpoint_instance,
    is_known_endpoint_instance,
    is_known_search_instance,
)
from stacks.log_retention import ALLOWED_DAYS


class ConfigError(ValueError):
    """A configuration problem, worded for the person editing cdk.json."""


# Engine versions the managed service offers that support asymmetric remote
# models (ML Commons asymmetric embedding arrived in OpenSearch 3.5).
SUPPORTED_ENGINE_VERSIONS = ("3.5", "3.7")
REMOVAL_POLICIES = ("destroy", "retain")
SPACE_TYPES = ("cosinesimil", "innerproduct", "l2")
EBS_VOLUME_TYPES = ("gp3", "gp2", "io1")
# model/fast_path.py backends a deployment may choose (EMBEDDING_BACKEND).
ENDPOINT_INFERENCE_BACKENDS = ("exact", "bf16")
# SageMaker instance families on Intel Sapphire Rapids (4th gen Xeon), which has
# AMX: https://aws.amazon.com/ec2/instance-types/ (C7i, M7i, R7i).
ENDPOINT_AMX_FAMILIES = ("ml.c7i.", "ml.m7i.", "ml.r7i.")
# What both neural-search 3.7.0.0 and the OpenSearch API specification accept
# (lambdas/ml_setup/search_pipeline.py says why z_score and rrf are left out).
HYBRID_NORMALIZATIONS = ("min_max", "l2")
HYBRID_COMBINATIONS = ("arithmetic_mean", "geometric_mean", "harmonic_mean")
# The semantic field's chunking algorithms and their parameters, as neural-search
# 3.7.0.0 validates them at mapping time (paths under
# src/main/java/org/opensearch/neuralsearch/): ChunkerValidatorFactory.java:16-23
# (algorithms), FixedTokenLengthChunker.java:37-64 and :180-215, DelimiterChunker.java:27-30
# and :102-105, FixedCharLengthChunker.java:29-40 and :129-149, Chunker.java:22-31 and
# :80-96 (max_chunk_limit, every algorithm). The server ignores a parameter it does
# not know; here an unknown one is a typo and refused.
CHUNKING_WORD_TOKENIZERS = (
    "standard", "letter", "lowercase", "whitespace", "uax_url_email", "classic", "thai",
)  # fmt: skip
CHUNKING_PARAMETERS: dict[str, tuple[str, ...]] = {
    "fixed_token_length": ("token_limit", "overlap_rate", "tokenizer", "max_chunk_limit"),
    "delimiter": ("delimiter", "max_chunk_limit"),
    "fixed_char_length": ("char_limit", "overlap_rate", "max_chunk_limit"),
}
# Java int: what ChunkerParameterParser.parseInteger (NumberUtils.createInteger) reads.
JAVA_INT_MAX = 2**31 - 1
LOG_RETENTION_DAYS = ALLOWED_DAYS
MASTER_COUNTS = (0, 3, 5)
# Every pattern is applied with fullmatch (``re.match`` with ``$`` accepts a
# trailing newline) and spells digits [0-9]: ``\d`` also matches Arabic-Indic
# and fullwidth digits, which no AWS name or id contains.
AWS_REGION_RE = re.compile(r"[a-z]{2}(-gov|-iso|-isob)?-[a-z]+-[0-9]")
ACCOUNT_RE = re.compile(r"[0-9]{12}")
APP_NAME_RE = re.compile(r"[a-z][a-z0-9]{1,11}")
ENV_NAME_RE = re.compile(r"[a-z][a-z0-9]{1,9}")
INDEX_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_\-]{0,99}")
FIELD_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
REVISION_RE = re.compile(r"[0-9a-f]{40}")
MODEL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*")
# Keys every environment must state: what `cdk destroy` does to data is too
# important to leave to a default.
REQUIRED_KEYS = {"removal_policy": "one of 'destroy', 'retain'"}
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between dev, staging and prod.

    Field defaults are the values a key takes when an environment omits it;
    the docstring of each group says why the default is what it is.
    """

    name: str
    app_name: str = "e5search"

    # Where to deploy. Both absent: an environment-agnostic template that
    # deploys to whatever account/region the credentials point at.
    account: str | None = None
    region: str | None = None

    # OpenSearch domain. 3.7 rather than 3.5: 3.5 has a bug for symmetric
    # remote models with a model_config (fixed in 3.6).
    engine_version: str = "3.7"
    data_node_instance_type: str = "r7g.large.search"
    data_node_count: int = 1
    dedicated_master_count: int = 0
    dedicated_master_instance_type: str = "m7g.large.search"
    availability_zones: int = 1
    ebs_volume_size_gib: int = 20
    ebs_volume_type: str = "gp3"
    # Provisioned IOPS: required with io1 (which has no baseline), refused with
    # gp3/gp2 (their IOPS come with the volume size).
    ebs_iops: int | None = None
    log_retention_days: int = 30

    # SageMaker endpoint.
    endpoint_instance_type: str = "ml.m5.large"
    endpoint_initial_instance_count: int = 1
    endpoint_min_capacity: int = 1
    endpoint_max_capacity: int = 2
    # Concurrent requests per instance (ConcurrentRequestsPerModel, queued ones
    # included) that autoscaling holds. None: one per model-server worker
    # (stacks/ingest_capacity.py autoscaling_target_concurrency); an override must
    # lie between 1 and the instance's slots (2 per worker).
    endpoint_target_concurrency: int | None = None
    # Encoder backend of the model server (model/fast_path.py, docs/model-server.md):
    # "exact" (fp32, the default) or the measured opt-in fast path "bf16", which
    # needs an instance family with AMX (see ENDPOINT_AMX_FAMILIES).
    endpoint_inference_backend: str = "exact"

    # The embedding model. The revision is pinned so a redeploy never picks up
    # a different set of weights silently.
    model_id: str = "intfloat/multilingual-e5-small"
    model_revision: str = "614241f622f53c4eeff9890bdc4f31cfecc418b3"
    embedding_dimension: int = 384
    space_type: str = "cosinesimil"
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "

    # The semantic index.
    index_name: str = "documents"
    semantic_field: str = "passage_text"
    index_shards: int = 1
    index_replicas: int = 0

    # The deployed hybrid search pipeline (docs/evaluation.md): each sub-query's
    # scores normalised, then combined with weights (lexical match 1 - w,
    # semantic w). Measured on full SciFact with the real E5 (docs/evaluation.md,
    # 2026-12-03): min_max beat l2 at every weight; 0.5 semantic gave NDCG@10
    # 0.706 against 0.702 at 0.3, 0.699 at 0.7, 0.692 at 0.8 (0.662 semantic
    # only, 0.660 BM25), best on MAP and recall too, but within the noise of 300
    # queries. Chosen on SciFact, it may differ on other data.
    hybrid_normalization: str = "min_max"
    hybrid_combination: str = "arithmetic_mean"
    hybrid_semantic_weight: float = 0.5
    # Make that pipeline the semantic index's default (index.search.default_pipeline),
    # so a ``hybrid`` query needs no ``?search_pipeline=``. On by default: the
    # normalization processor skips every query that is not ``hybrid``
    # (neural-search 3.7.0.0 NormalizationProcessor.java:76-79, 127-134), so match,
    # neural and k-NN queries are answered exactly as without it, and the setting is
    # dynamic, changed in place (README, "Using it").
    hybrid_default_pipeline: bool = True

    # Chunking of the semantic field (README, "Chunking long documents"): False
    # (off, the default), True (neural-search's default: fixed_token_length, 384
    # standard-tokenizer tokens, no overlap), or a tuple of algorithm steps as
    # (algorithm, ((parameter, value), ...)), applied in order. Every chunk is one
    # more embedding per document, and a change replaces the index (re-embedding).
    chunking: bool | tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = False

    # destroy: `cdk destroy` removes everything. retain: the domain, its data
    # and its logs survive a destroy (and a stack replacement).
    removal_policy: str = "destroy"  # required in cdk.json: see REQUIRED_KEYS

    # Pipeline: a protected environment gets a manual approval before deploy.
    protected: bool = False

    # Alarms and dashboard (stacks/monitoring, docs/operations.md). Alarms are on
    # by default and notify an SNS topic; an email address is optional because
    # its subscription must be confirmed by a person. alarms_disabled names
    # alarms (stacks/alarm_catalog.py) to leave out; alarm_thresholds overrides
    # the defaults of the tunable ones, as (name, value) pairs.
    alarms_enabled: bool = True
    alarm_email: str | None = None
    alarms_disabled: tuple[str, ...] = ()
    alarm_thresholds: tuple[tuple[str, float], ...] = ()
    # How often the ML health check (lambdas/ml_health) runs.
    ml_health_check_minutes: int = 5

    @property
    def prefix(self) -> str:
        """Prefix of every physical name, so two environments share an account safely."""
        return f"{self.app_name}-{self.name}"

    @property
    def domain_name(self) -> str:
        """OpenSearch domain names: 3-28 chars, lowercase, start with a letter."""
        return f"{self.prefix}-search"

    @property
    def endpoint_name(self) -> str:
        """SageMaker endpoint names keep their case, but ARNs use the lowercase form."""
        return f"{self.prefix}-e5"

    @property
    def retain(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def data_nodes_use_instance_store(self) -> bool:
        """Instance-store data nodes (i3, r6gd, ...) keep data on local NVMe and attach no EBS."""
        return has_instance_store(self.data_node_instance_type)

    @property
    def endpoint_uses_gpu(self) -> bool:
        return is_gpu_endpoint_instance(self.endpoint_instance_type)

    @property
    def chunking_mapping(self) -> bool | list[dict[str, Any]]:
        """``chunking`` as the semantic field's mapping parameter takes it."""
        if isinstance(self.chunking, bool):
            return self.chunking
        steps: list[dict[str, Any]] = []
        for algorithm, parameters in self.chunking:
            step: dict[str, Any] = {"algorithm": algorithm}
            if parameters:
                step["parameters"] = dict(parameters)
            steps.append(step)
        return steps

    def alarm_enabled(self, alarm_id: str) -> bool:
        return self.alarms_enabled and alarm_id not in self.alarms_disabled

    def alarm_threshold(self, alarm_id: str) -> float:
        """The configured threshold of a tunable alarm, or its default."""
        return dict(self.alarm_thresholds).get(alarm_id, THRESHOLDS[alarm_id][0])


_FIELDS = {f.name: f for f in dataclasses.fields(EnvironmentConfig)}
_SETTABLE = sorted(k for k in _FIELDS if k not in ("name", "app_name"))
# Keys that configure EBS; meaningless (and refused by the service) on
# instance-store data nodes.
EBS_KEYS = ("ebs_volume_size_gib", "ebs_volume_type", "ebs_iops")


def _fail(env: str, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(
        f"cdk.json environments.{env}.{key}: {value!r} is not allowed; expected {allowed}"
    )


# One rule per settable key: (env, key, value) -> the validated value, or a
# ConfigError naming the key. Adding a key means adding a field above and one
# entry to _RULES; a field without a rule fails the test that checks coverage.
Rule = Callable[[str, str, Any], Any]


def _int(lo: int, hi: int) -> Rule:
    def check(env: str, key: str, value: Any) -> int:
        # bool is an int subclass in Python (`true` for a count is a mistake),
        # and 3.0 is a float, not the integer 3: both are refused.
        if type(value) is not int or not lo <= value <= hi:
            raise _fail(env, key, value, f"an integer from {lo} to {hi}")
        return value

    return check


def _choice(choices: tuple[Any, ...]) -> Rule:
    def check(env: str, key: str, value: Any) -> Any:
        # Same type and value: 3.0 == 3 and True == 1 in Python, but neither is
        # the integer choice cdk.json asks for.
        if not any(type(value) is type(c) and value == c for c in choices):
            raise _fail(env, key, value, "one of " + ", ".join(repr(c) for c in choices))
        return value

    return check


def _match(pattern: re.Pattern[str], what: str) -> Rule:
    def check(env: str, key: str, value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise _fail(env, key, value, what)
        return value

    return check


def _where(predicate: Callable[[str], bool], what: str) -> Rule:
    def check(env: str, key: str, value: Any) -> str:
        if not isinstance(value, str) or not predicate(value):
            raise _fail(env, key, value, what)
        return value

    return check


def _engine_version(env: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(env, key, value, 'a string such as "3.7"')
    return _choice(SUPPORTED_ENGINE_VERSIONS)(env, key, value)


def _prefix(env: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise _fail(env, key, value, "a string of at most 64 characters (may be empty)")
    return value


def _bool(env: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(env, key, value, "true or false")
    return value


def _expect_weight(env: str, key: str, value: Any) -> float:
    """A weight strictly between 0 and 1 in hundredths, so that 1 - w is exact too."""
    allowed = "a number strictly between 0 and 1 with at most two decimals, such as 0.7"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(env, key, value, allowed)
    hundredths = round(value * 100)
    if not 0 < hundredths < 100 or abs(value * 100 - hundredths) > 1e-9:
        raise _fail(env, key, value, allowed)
    return hundredths / 100


def _expect_chunking(
    env: str, key: str, value: Any
) -> bool | tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """false, true or a non-empty list of {"algorithm", "parameters"} steps."""
    allowed = (
        "false, true, or a list of steps such as "
        '[{"algorithm": "fixed_token_length", "parameters": {"token_limit": 384}}]'
    )
    if isinstance(value, bool):
        return value
    if not isinstance(value, list) or not value:
        raise _fail(env, key, value, allowed)
    steps = []
    for position, step in enumerate(value):
        where = f"{key}[{position}]"
        if not isinstance(step, dict) or not set(step) <= {"algorithm", "parameters"}:
            raise _fail(env, where, step, 'an object with "algorithm" and optional "parameters"')
        algorithm = step.get("algorithm")
        if algorithm not in CHUNKING_PARAMETERS:
            raise _fail(env, f"{where}.algorithm", algorithm,
                        "one of " + ", ".join(repr(a) for a in CHUNKING_PARAMETERS))  # fmt: skip
        parameters = step.get("parameters", {})
        if not isinstance(parameters, dict):
            raise _fail(env, f"{where}.parameters", parameters, "an object")
        checked = []
        for name, given in parameters.items():
            if name not in CHUNKING_PARAMETERS[algorithm]:
                raise ConfigError(
                    f"cdk.json environments.{env}.{where}.parameters: unknown parameter "
                    f"{name!r} for {algorithm}; expected "
                    + ", ".join(CHUNKING_PARAMETERS[algorithm])
                )
            checked.append((name, _chunking_parameter(env, f"{where}.parameters.{name}", given)))
        steps.append((algorithm, tuple(checked)))
    return tuple(steps)


def _chunking_parameter(env: str, where: str, value: Any) -> Any:
    """One parameter, with the bounds the server's validators apply (see CHUNKING_PARAMETERS)."""
    name = where.rsplit(".", 1)[1]
    if name in ("token_limit", "char_limit"):
        # ChunkerParameterParser.parsePositiveInteger: a positive Java int.
        return _int(1, JAVA_INT_MAX)(env, where, value)
    if name == "max_chunk_limit":
        # Chunker.validateMaxChunkLimit: positive, or -1 for no limit.
        if type(value) is not int or not (1 <= value <= JAVA_INT_MAX or value == -1):
            raise _fail(env, where, value, "a positive integer, or -1 for no limit")
        return value
    if name == "overlap_rate":
        # validateOverlapRate: from 0 to 0.5, both included.
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (0 <= value <= 0.5)
        ):
            raise _fail(env, where, value, "a number from 0 to 0.5")
        return value
    if name == "tokenizer":
        return _choice(CHUNKING_WORD_TOKENIZERS)(env, where, value)
    # delimiter: ChunkerParameterParser.parseString, a non-empty string.
    if not isinstance(value, str) or not value:
        raise _fail(env, where, value, "a non-empty string")
    return value


def _expect_alarm_ids(env: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(env, key, value, "a list of alarm names (README, Alarms)")
    for item in value:
        if item not in ALARM_IDS:
            raise ConfigError(
                f"cdk.json environments.{env}.{key}: {item!r} is not an alarm; expected names "
                f"from {', '.join(ALARM_IDS)}"
            )
    return tuple(value)


def _expect_thresholds(env: str, key: str, value: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, dict):
        raise _fail(env, key, value, "an object of alarm name to threshold")
    pairs = []
    for name, number in value.items():
        if name not in THRESHOLDS:
            raise ConfigError(
                f"cdk.json environments.{env}.{key}: {name!r} has no tunable threshold; "
                f"expected one of {', '.join(THRESHOLDS)}"
            )
        _default, lo, hi, unit = THRESHOLDS[name]
        if (
            isinstance(number, bool)
            or not isinstance(number, (int, float))
            or not lo <= number <= hi
        ):
            raise ConfigError(
                f"cdk.json environments.{env}.{key}.{name}: {number!r} is not allowed; "
                f"expected a number from {lo:g} to {hi:g} ({unit})"
            )
        pairs.append((name, float(number)))
    return tuple(pairs)


_SEARCH_INSTANCE = _where(
    is_known_search_instance, "an OpenSearch Service instance type such as r7g.large.search"
)
_RULES: dict[str, Rule] = {
    "account": _match(ACCOUNT_RE, "a 12-digit AWS account id"),
    "region": _match(AWS_REGION_RE, "an AWS region such as us-east-1"),
    "engine_version": _engine_version,
    "data_node_instance_type": _SEARCH_INSTANCE,
    "dedicated_master_instance_type": _SEARCH_INSTANCE,
    "endpoint_instance_type": _where(
        is_known_endpoint_instance,
        "a SageMaker real-time inference instance type such as ml.m5.large",
    ),
    "data_node_count": _int(1, 80),
    "dedicated_master_count": _choice(MASTER_COUNTS),
    "availability_zones": _choice((1, 2, 3)),
    "ebs_volume_size_gib": _int(10, 16384),
    "ebs_volume_type": _choice(EBS_VOLUME_TYPES),
    # OpenSearch Service provisions io1 from 1,000 to 16,000 IOPS; the ratio to
    # the volume size is checked in _cross_check.
    "ebs_iops": _int(1000, 16000),
    "log_retention_days": _choice(LOG_RETENTION_DAYS),
    "endpoint_initial_instance_count": _int(1, 20),
    "endpoint_min_capacity": _int(1, 40),
    "endpoint_max_capacity": _int(1, 40),
    "endpoint_target_concurrency": _int(1, 1000),
    "endpoint_inference_backend": _choice(ENDPOINT_INFERENCE_BACKENDS),
    "model_id": _match(MODEL_ID_RE, "a Hugging Face model id such as owner/name"),
    "model_revision": _match(REVISION_RE, "a 40-character lowercase hex commit id"),
    "embedding_dimension": _int(1, 16000),
    "space_type": _choice(SPACE_TYPES),
    "query_prefix": _prefix,
    "passage_prefix": _prefix,
    "index_name": _match(
        INDEX_NAME_RE,
        "a lowercase index name of letters, digits, '_' and '-' (not starting with _ or -)",
    ),
    "semantic_field": _match(FIELD_NAME_RE, "a field name of letters, digits and '_'"),
    "index_shards": _int(1, 64),
    "index_replicas": _int(0, 5),
    "hybrid_normalization": _choice(HYBRID_NORMALIZATIONS),
    "hybrid_combination": _choice(HYBRID_COMBINATIONS),
    "hybrid_semantic_weight": _expect_weight,
    "hybrid_default_pipeline": _bool,
    "chunking": _expect_chunking,
    "removal_policy": _choice(REMOVAL_POLICIES),
    "protected": _bool,
    "alarms_enabled": _bool,
    "alarm_email": _match(EMAIL_RE, "an email address such as ops@example.com"),
    "alarms_disabled": _expect_alarm_ids,
    "alarm_thresholds": _expect_thresholds,
    "ml_health_check_minutes": _int(1, 60),
}


# Keys that no longer exist, with what replaced them (one line each).
_REPLACED_KEYS = {
    "endpoint_target_invocations_per_instance": (
        "no longer used; the endpoint scales on concurrent requests per instance, "
        "set endpoint_target_concurrency instead (docs/ingest-capacity.md)"
    ),
}


def _validate(env: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Check each key on its own; _cross_check then applies the rules that tie keys together."""
    for key, allowed in REQUIRED_KEYS.items():
        if key not in raw:
            raise ConfigError(f"cdk.json environments.{env}.{key}: missing; expected {allowed}")
    v: dict[str, Any] = {}
    for key, value in raw.items():
        rule = _RULES.get(key) if isinstance(key, str) else None
        if key in _REPLACED_KEYS:
            raise ConfigError(f"cdk.json environments.{env}.{key}: {_REPLACED_KEYS[key]}")
        if rule is None:
            raise ConfigError(
                f"cdk.json environments.{env}: unknown key {key!r}; "
                f"allowed keys are {', '.join(_SETTABLE)}"
            )
        v[key] = rule(env, key, value)
    return v


def _cross_check(cfg: EnvironmentConfig, given: set[str]) -> None:
    """Rules that involve several keys; each names the keys in conflict.

    ``given`` is the set of keys cdk.json states for the environment, so that
    a stated value can be refused where a default would be harmless.
    """
    env = cfg.name
    _check_storage(cfg, given)
    if cfg.endpoint_min_capacity > cfg.endpoint_max_capacity:
        raise ConfigError(
            f"cdk.json environments.{env}: endpoint_min_capacity ({cfg.endpoint_min_capacity}) "
            f"must not exceed endpoint_max_capacity ({cfg.endpoint_max_capacity})"
        )
    if (
        not cfg.endpoint_min_capacity
        <= cfg.endpoint_initial_instance_count
        <= (cfg.endpoint_max_capacity)
    ):
        raise ConfigError(
            f"cdk.json environments.{env}: endpoint_initial_instance_count "
            f"({cfg.endpoint_initial_instance_count}) must lie between endpoint_min_capacity "
            f"({cfg.endpoint_min_capacity}) and endpoint_max_capacity ({cfg.endpoint_max_capacity})"
        )
    _check_target_concurrency(cfg)
    if cfg.availability_zones > 1 and cfg.data_node_count % cfg.availability_zones:
        raise ConfigError(
            f"cdk.json environments.{env}: data_node_count ({cfg.data_node_count}) must be a "
            f"multiple of availability_zones ({cfg.availability_zones}) so shards spread evenly"
        )
    if cfg.index_replicas >= cfg.data_node_count and cfg.index_replicas > 0:
        raise ConfigError(
            f"cdk.json environments.{env}: index_replicas ({cfg.index_replicas}) needs at least "
            f"{cfg.index_replicas + 1} data nodes (data_node_count is {cfg.data_node_count})"
        )
    if cfg.endpoint_inference_backend == "bf16" and not cfg.endpoint_instance_type.startswith(
        ENDPOINT_AMX_FAMILIES
    ):
        raise ConfigError(
            f"cdk.json environments.{env}: endpoint_inference_backend bf16 needs an instance "
            f"family with AMX ({', '.join(f + '*' for f in ENDPOINT_AMX_FAMILIES)}); "
            f"endpoint_instance_type is {cfg.endpoint_instance_type}"
        )
    if (cfg.account is None) != (cfg.region is None):
        raise ConfigError(
            f"cdk.json environments.{env}: set both account and region, or neither "
            "(neither gives an environment-agnostic template)"
        )
    if cfg.region is not None and cfg.region.startswith("cn-"):
        # ML Commons refuses a connector whose URL matches none of
        # plugins.ml_commons.trusted_connector_endpoints_regex, and the default
        # list only knows "...\\.amazonaws\\.com/" hosts (ml-commons 3.7.0.0
        # common/src/main/java/org/opensearch/ml/common/settings/MLCommonsSettings.java:247-276,
        # checked at connector create in TransportCreateConnectorAction.java:129):
        # runtime.sagemaker.<cn-region>.amazonaws.com.cn never matches, so the
        # deploy would fail at the connector. Fail at synth instead.
        raise ConfigError(
            f"cdk.json environments.{env}.region: {cfg.region!r} is a China-partition region; "
            "its SageMaker URLs (amazonaws.com.cn) do not match ML Commons' default "
            "trusted_connector_endpoints_regex, so the connector cannot be created there"
        )
    if len(cfg.domain_name) > 28:
        raise ConfigError(
            f"cdk.json: app_name {cfg.app_name!r} with environment {env!r} makes the domain name "
            f"{cfg.domain_name!r}, longer than OpenSearch's 28 characters"
        )


def _check_target_concurrency(cfg: EnvironmentConfig) -> None:
    """An override above the instance's slots would let requests queue past the 60 s bound.

    Imported here: stacks.ingest_capacity imports stacks.embedding_endpoint,
    which imports this module.
    """
    from stacks.ingest_capacity import QUEUE_DEPTH, slots, workers_per_instance

    target = cfg.endpoint_target_concurrency
    most = slots(cfg.endpoint_instance_type, 1)
    if target is not None and target > most:
        raise ConfigError(
            f"cdk.json environments.{cfg.name}: endpoint_target_concurrency ({target}) exceeds "
            f"the {most} requests one {cfg.endpoint_instance_type} holds ({QUEUE_DEPTH} per "
            f"worker x {workers_per_instance(cfg.endpoint_instance_type)} workers)"
        )


def _check_storage(cfg: EnvironmentConfig, given: set[str]) -> None:
    """EBS settings must be ones the service and CDK accept for the data node type."""
    env = cfg.name
    if cfg.data_nodes_use_instance_store:
        # "The I3 instance types ... do not support EBS storage volumes" (AWS,
        # OpenSearch Service developer guide, supported-instance-types.html; the
        # same holds for every family in INSTANCE_STORE_SEARCH_FAMILIES, which
        # aws-cdk-lib 2.275.0's Domain refuses with EBS enabled).
        stated = [k for k in EBS_KEYS if k in given]
        if stated:
            raise ConfigError(
                f"cdk.json environments.{env}.{stated[0]}: data_node_instance_type "
                f"{cfg.data_node_instance_type} keeps data on local instance storage and "
                "cannot attach EBS; remove the ebs_* keys"
            )
        return
    if cfg.ebs_volume_type == "io1":
        if cfg.ebs_iops is None:
            raise ConfigError(
                f"cdk.json environments.{env}.ebs_iops: missing; ebs_volume_type io1 needs "
                "provisioned IOPS, an integer from 1000 to 16000"
            )
        # aws-cdk-lib 2.275.0 Domain: "`io1` volumes iops has a maximum ratio of 50 IOPS/GiB".
        if cfg.ebs_iops > 50 * cfg.ebs_volume_size_gib:
            raise ConfigError(
                f"cdk.json environments.{env}.ebs_iops: {cfg.ebs_iops} exceeds 50 IOPS per GiB "
                f"of ebs_volume_size_gib ({cfg.ebs_volume_size_gib}); io1 allows at most "
                f"{50 * cfg.ebs_volume_size_gib}"
            )
    elif cfg.ebs_iops is not None:
        raise ConfigError(
            f"cdk.json environments.{env}.ebs_iops: only applies to ebs_volume_type io1 "
            f"(ebs_volume_type is {cfg.ebs_volume_type}, whose IOPS come with the volume size)"
        )


def load_config(context: dict[str, Any], env_name: str | None) -> EnvironmentConfig:
    """Build the validated config of one environment from the CDK context.

    ``context`` holds the app-level keys of cdk.json (``app_name``,
    ``default_env``, ``environments``); ``env_name`` is ``-c env=NAME``.
    """
    environments = context.get("environments")
    if not isinstance(environments, dict) or not environments:
        raise ConfigError("cdk.json context.environments: missing; expected a map of environments")
    default_env = context.get("default_env", "dev")
    if not isinstance(default_env, str) or not default_env:
        raise ConfigError(
            f"cdk.json context.default_env: {default_env!r} is not allowed; expected the name "
            "of one of the configured environments"
        )
    if env_name is not None and not isinstance(env_name, str):
        raise ConfigError(f"-c env={env_name!r}: expected an environment name")
    name = env_name or default_env
    if name not in environments:
        shown = name if name.isprintable() and not any(c.isspace() for c in name) else repr(name)
        raise ConfigError(
            f"-c env={shown}: no such environment; configured environments are "
            f"{', '.join(sorted(environments))}"
        )
    if not ENV_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"cdk.json environments.{name!r}: environment names must be 2-10 lowercase letters "
            "or digits, starting with a letter"
        )
    app_name = context.get("app_name", "e5search")
    if not isinstance(app_name, str) or not APP_NAME_RE.fullmatch(app_name):
        raise ConfigError(
            f"cdk.json context.app_name: {app_name!r} is not allowed; expected 2-12 lowercase "
            "letters or digits, starting with a letter"
        )
    raw = environments[name]
    if not isinstance(raw, dict):
        raise ConfigError(f"cdk.json environments.{name}: expected an object of settings")
    cfg = EnvironmentConfig(name=name, app_name=app_name, **_validate(name, raw))
    _cross_check(cfg, set(raw))
    return cfg


def environment_names(context: dict[str, Any]) -> list[str]:
    """Environment names in the order cdk.json lists them (the pipeline's order)."""
    envs = context.get("environments") or {}
    return list(envs)


__all__ = [
    "ConfigError",
    "EnvironmentConfig",
    "environment_names",
    "load_config",
]
