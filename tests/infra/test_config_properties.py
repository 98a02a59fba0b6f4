"""Generated configurations: every malformed block fails with one line naming the key,
and every well-formed block synthesizes.

What each part proves:

* ``test_malformed_environment_blocks_exit_2_with_one_line_naming_the_key`` runs
  hundreds of generated malformed ``environments.dev`` blocks through ``app.main``,
  the function the CDK CLI runs (``python3 app.py``), in this process, with the
  context handed to ``cdk.App`` (see _app_with_context): each must ``sys.exit(2)`` with exactly one
  stderr line that names the key, and nothing else may escape (a jsii or Python
  trace fails the test). Which values are invalid is written out here, from the
  README's configuration reference, not read from stacks/config.py, so a rule
  that silently accepts a bad value fails too.
* ``test_app_level_keys`` does the same for ``default_env``, ``app_name`` and
  ``environments`` themselves.
* ``test_the_cli_subprocess_agrees`` runs a few of those cases as a real
  ``python app.py`` subprocess: the in-process runs above are the same path.
* ``test_well_formed_blocks_are_accepted_and_synthesize`` builds a few dozen
  blocks that respect every documented rule, loads them (no false refusal) and
  synthesizes all stacks with cdk-nag on: CDK must not raise for any value the
  config accepts. Synthesis costs about a second of both cores each, hence the
  small count.

Examples are derandomized (the same ones every run, so CI is repeatable) and no
example database is written.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import string
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacks.config import _RULES, _SETTABLE, ConfigError, load_config
from stacks.environment import build_environment
from stacks.nag import enable_nag
from tests.infra.conftest import ROOT, cdk_context

MALFORMED = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# The README's configuration reference, written out independently of the code.
INT_KEYS = {
    "data_node_count": (1, 80),
    "ebs_volume_size_gib": (10, 16384),
    "ebs_iops": (1000, 16000),
    "endpoint_initial_instance_count": (1, 20),
    "endpoint_min_capacity": (1, 40),
    "endpoint_max_capacity": (1, 40),
    "endpoint_target_concurrency": (1, 1000),
    "embedding_dimension": (1, 16000),
    "index_shards": (1, 64),
    "index_replicas": (0, 5),
    "ml_health_check_minutes": (1, 60),
}
CHOICE_KEYS: dict[str, tuple[Any, ...]] = {
    "dedicated_master_count": (0, 3, 5),
    "availability_zones": (1, 2, 3),
    "log_retention_days": (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                           1096, 1827),
    "ebs_volume_type": ("gp3", "gp2", "io1"),
    "engine_version": ("3.5", "3.7"),
    "endpoint_inference_backend": ("exact", "bf16"),
    "space_type": ("cosinesimil", "innerproduct", "l2"),
    "removal_policy": ("destroy", "retain"),
    "hybrid_normalization": ("min_max", "l2"),
    "hybrid_combination": ("arithmetic_mean", "geometric_mean", "harmonic_mean"),
}  # fmt: skip
# A valid example of each pattern key; malformed values are derived from it.
PATTERN_KEYS = {
    "account": "123456789012",
    "region": "eu-west-1",
    "model_id": "intfloat/multilingual-e5-small",
    "model_revision": "614241f622f53c4eeff9890bdc4f31cfecc418b3",
    "index_name": "docs-2",
    "semantic_field": "passage_text2",
    "data_node_instance_type": "r7g.large.search",
    "dedicated_master_instance_type": "m7g.large.search",
    "endpoint_instance_type": "ml.m5.large",
    "alarm_email": "ops@example.com",
}
PREFIX_KEYS = ("query_prefix", "passage_prefix")
BOOL_KEYS = ("protected", "alarms_enabled", "hybrid_default_pipeline")
# Keys whose values are not scalars of one kind (README: hybrid search, Alarms).
OTHER_KEYS: dict[str, st.SearchStrategy[Any]] = {
    # 0 < w < 1 in hundredths.
    "hybrid_semantic_weight": st.one_of(
        st.sampled_from([0, 1, -0.3, 1.5, 0.555, 0.001, 2]),
        st.booleans(),
        st.sampled_from(["0.7", "", "0,7"]),
    ),
    # A list of alarm names.
    "alarms_disabled": st.one_of(
        st.sampled_from(["cluster_red", "", 3, True, {"a": 1}]),
        st.lists(st.sampled_from(["no-such-alarm", "CLUSTER_RED", "", "x"]), min_size=1),
    ),
    # false, true or a non-empty list of {"algorithm", "parameters"} steps within the
    # server's bounds (README, Chunking).
    "chunking": st.one_of(
        st.sampled_from(["true", "", 0, 1, 384, {"algorithm": "delimiter"}, []]),
        st.lists(
            st.sampled_from(
                [
                    "delimiter",
                    None,
                    3,
                    {},
                    {"algorithm": "sentence"},
                    {"algorithm": "delimiter", "tag": "x"},
                    {"algorithm": "delimiter", "parameters": "x"},
                    {"algorithm": "delimiter", "parameters": {"delimiter": ""}},
                    {"algorithm": "delimiter", "parameters": {"char_limit": 10}},
                    {"algorithm": "fixed_token_length", "parameters": {"token_limit": 0}},
                    {"algorithm": "fixed_token_length", "parameters": {"token_limit": "384"}},
                    {"algorithm": "fixed_token_length", "parameters": {"token_limit": 1.5}},
                    {"algorithm": "fixed_token_length", "parameters": {"overlap_rate": 0.75}},
                    {"algorithm": "fixed_token_length", "parameters": {"tokenizer": "ngram"}},
                    {"algorithm": "fixed_char_length", "parameters": {"max_chunk_limit": 0}},
                    {"algorithm": "fixed_char_length", "parameters": {"char_limit": 2**31}},
                ]
            ),
            min_size=1,
            max_size=3,
        ).map(lambda bad: [{"algorithm": "delimiter"}, *bad]),
        # Defined below; a list of scalars or any object is not a list of steps.
        st.deferred(lambda: JSON_SCALARS.filter(lambda v: not isinstance(v, bool))),
        st.deferred(lambda: JSON_CONTAINERS),
    ),
    # An object of tunable alarm name to a threshold within its range.
    "alarm_thresholds": st.one_of(
        st.sampled_from(["80", 80, [80], True]),
        st.dictionaries(st.sampled_from(["no-such-alarm", "x", ""]), st.integers(), min_size=1),
    ),
}
# Digits that Python's \d and str.isdigit accept but no AWS id contains.
NON_ASCII_DIGITS = "٣۷३３"

# What CDK does to context before app.py sees it (the CLI reads cdk.json in
# Node, and every value crosses jsii): an integral float is an integer (3.0 and 3
# are one JavaScript number) and a key whose value is null is dropped, the same
# as leaving it out. The loader refuses 3.0 and null when it does get them
# (test_integral_floats_and_booleans_are_refused_by_the_loader,
# test_invalid_values_name_key_value_and_allowed); the app-level examples use
# non-integral floats and no top-level nulls, which survive the trip.
FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=32).filter(
    lambda f: not f.is_integer()
)
JSON_SCALARS = st.one_of(st.booleans(), st.integers(-(10**6), 10**6), FLOATS, st.text(max_size=8))
NULLABLE = st.one_of(st.none(), JSON_SCALARS)  # inside lists and objects, null survives
JSON_CONTAINERS = st.one_of(
    st.lists(NULLABLE, max_size=3), st.dictionaries(st.text(max_size=4), NULLABLE, max_size=2)
)


def test_every_settable_key_has_a_rule_and_a_generator() -> None:
    """A new key without a rule, or without malformed examples below, fails here."""
    assert set(_RULES) == set(_SETTABLE)
    covered = set(INT_KEYS) | set(CHOICE_KEYS) | set(PATTERN_KEYS) | set(PREFIX_KEYS)
    assert covered | set(BOOL_KEYS) | set(OTHER_KEYS) == set(_SETTABLE)


def _not_int(value: Any) -> bool:
    return type(value) is not int


@st.composite
def bad_value(draw: st.DrawFn, key: str) -> Any:
    """A value the README's rules for ``key`` do not allow."""
    if key in INT_KEYS:
        lo, hi = INT_KEYS[key]
        return draw(
            st.one_of(
                st.integers(max_value=lo - 1),
                st.integers(min_value=hi + 1),
                st.integers(lo, hi - 1).map(lambda v: v + 0.5),
                st.booleans(),
                st.integers(lo, hi).map(str),
                JSON_SCALARS.filter(_not_int),
                JSON_CONTAINERS,
            )
        )
    if key in CHOICE_KEYS:
        choices = CHOICE_KEYS[key]
        if isinstance(choices[0], int):
            return draw(
                st.one_of(
                    st.integers(-100, 3000).filter(lambda v: v not in choices),
                    st.sampled_from(choices).map(lambda v: v + 0.5),
                    st.booleans(),  # True == 1, but `true` is not a count
                    st.sampled_from(choices).map(str),
                    JSON_CONTAINERS,
                )
            )
        return draw(
            st.one_of(
                st.text(max_size=12).filter(lambda v: v not in choices),
                st.sampled_from(choices).map(lambda v: v + "\n"),
                st.sampled_from([c.upper() for c in choices if c.upper() != c] or ["X"]),
                st.sampled_from(choices).map(lambda v: f" {v}"),
                JSON_SCALARS.filter(lambda v: not isinstance(v, str)),
                JSON_CONTAINERS,
            )
        )
    if key in PATTERN_KEYS:
        good = PATTERN_KEYS[key]
        digits = [i for i, c in enumerate(good) if c.isdigit()]
        mutations = [
            st.just(good + "\n"),  # re.match with $ accepted this
            st.just(good + " "),
            st.just("\n" + good),
            st.just(""),
            st.just(good + "/"),
            JSON_SCALARS.filter(lambda v: not isinstance(v, str)),
            JSON_CONTAINERS,
        ]
        if digits:
            mutations.append(
                st.tuples(st.sampled_from(digits), st.sampled_from(NON_ASCII_DIGITS)).map(
                    lambda t: good[: t[0]] + t[1] + good[t[0] + 1 :]
                )
            )
        return draw(st.one_of(mutations))
    if key in PREFIX_KEYS:
        return draw(
            st.one_of(
                st.text(min_size=65, max_size=80),
                JSON_SCALARS.filter(lambda v: not isinstance(v, str)),
                JSON_CONTAINERS,
            )
        )
    if key in OTHER_KEYS:
        return draw(OTHER_KEYS[key])
    assert key in BOOL_KEYS
    return draw(st.one_of(JSON_SCALARS.filter(lambda v: not isinstance(v, bool)), JSON_CONTAINERS))


def _dev_block() -> dict[str, Any]:
    return copy.deepcopy(cdk_context()["environments"]["dev"])


@st.composite
def malformed_block(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A dev block with exactly one problem, and the key the error must name."""
    block = _dev_block()
    kind = draw(st.sampled_from(["value"] * 8 + ["unknown", "missing", "storage"]))
    if kind == "unknown":
        key = draw(
            st.one_of(
                st.sampled_from(["name", "app_name", "data_nodes", "Region", "ebs_iops "]),
                st.text(string.ascii_letters + "_", min_size=1, max_size=20),
            ).filter(lambda k: k not in _SETTABLE)
        )
        block[key] = draw(JSON_SCALARS)
        return block, key
    if kind == "missing":
        del block["removal_policy"]
        return block, "removal_policy"
    if kind == "storage":
        # Cross-key storage rules: io1 without its IOPS, IOPS beyond 50 per GiB or on a
        # type that has none to provision, EBS keys on instance-store data nodes.
        case = draw(st.sampled_from(["io1", "ratio", "gp", "store"]))
        if case == "io1":
            block["ebs_volume_type"] = "io1"
            return block, "ebs_iops"
        if case == "ratio":
            size = draw(st.integers(20, 319))
            block.update(ebs_volume_type="io1", ebs_volume_size_gib=size)
            block["ebs_iops"] = draw(st.integers(50 * size + 1, 16000))
            return block, "ebs_iops"
        if case == "gp":
            block["ebs_volume_type"] = draw(st.sampled_from(["gp2", "gp3"]))
            block["ebs_iops"] = draw(st.integers(1000, 16000))
            return block, "ebs_iops"
        family = draw(st.sampled_from("i3 r6gd i4g i4i i8g im4gn r7gd r8gd oi2".split()))
        block["data_node_instance_type"] = f"{family}.large.search"
        key = draw(st.sampled_from(["ebs_volume_size_gib", "ebs_volume_type"]))
        block.pop("ebs_volume_size_gib", None)
        block[key] = 20 if key == "ebs_volume_size_gib" else "gp3"
        return block, key
    key = draw(st.sampled_from(_SETTABLE))
    block[key] = draw(bad_value(key))
    return block, key


def _load_app_module() -> Any:
    spec = importlib.util.spec_from_file_location("cdk_app_entry", ROOT / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


APP = _load_app_module()


@contextlib.contextmanager
def _app_with_context(context: dict[str, Any], outdir: Path) -> Iterator[None]:
    """Within the block, app.py's ``cdk.App()`` gets ``context`` as the CLI would give it.

    The CLI passes context through CDK_CONTEXT_JSON, but the jsii Node process
    read its environment when it started, so in-process runs hand the same
    dictionary to ``cdk.App`` directly; everything after that line of main() is
    unchanged. test_the_cli_subprocess_agrees covers the environment-variable route.
    """
    real = APP.cdk
    APP.cdk = types.SimpleNamespace(App=lambda: cdk.App(context=context, outdir=str(outdir)))
    try:
        yield
    finally:
        APP.cdk = real


def run_app(context: dict[str, Any], outdir: Path) -> tuple[int | None, str]:
    """Run app.main() as the CLI would; return (exit code, stderr). Anything else raised
    (a Python or jsii trace) propagates and fails the test."""
    err = io.StringIO()
    with _app_with_context(context, outdir), contextlib.redirect_stderr(err):
        try:
            APP.main()
        except SystemExit as stop:
            return stop.code, err.getvalue()  # type: ignore[return-value]
    return None, err.getvalue()


def _assert_one_line_naming(code: int | None, stderr: str, key: str, where: str) -> None:
    lines = stderr.splitlines()
    assert code == 2, f"exit {code} for {where}: {stderr!r}"
    assert len(lines) == 1, lines
    assert lines[0].startswith("Configuration error: "), lines
    assert key in lines[0], (key, lines[0])


_OUT = ROOT / "build" / "config-properties"


@MALFORMED
@given(malformed_block())
def test_malformed_environment_blocks_exit_2_with_one_line_naming_the_key(
    case: tuple[dict[str, Any], str],
) -> None:
    block, key = case
    context = copy.deepcopy(cdk_context())
    context["environments"]["dev"] = block
    context["env"] = "dev"
    code, stderr = run_app(context, _OUT)
    named = f"unknown key {key!r}" if key not in _SETTABLE else f"environments.dev.{key}"
    _assert_one_line_naming(code, stderr, named, repr(block.get(key)))


APP_LEVEL_CASES: list[tuple[str, Any, str | None, str]] = [
    ("default_env", ["dev"], None, "context.default_env"),
    ("default_env", {"name": "dev"}, None, "context.default_env"),
    ("default_env", 3, None, "context.default_env"),
    ("default_env", "dev\n", None, "env='dev\\n'"),
    ("app_name", "e5search\n", "dev", "context.app_name"),
    ("app_name", "e5search" + "٣", "dev", "context.app_name"),
    ("app_name", 5, "dev", "context.app_name"),
    ("environments", [], "dev", "context.environments"),
    ("environments", "dev", "dev", "context.environments"),
]


@pytest.mark.parametrize(("key", "value", "env", "named"), APP_LEVEL_CASES)
def test_app_level_keys(key: str, value: Any, env: str | None, named: str) -> None:
    context = copy.deepcopy(cdk_context())
    context[key] = value
    if env is not None:
        context["env"] = env
    code, stderr = run_app(context, _OUT)
    _assert_one_line_naming(code, stderr, named, f"{key}={value!r}")


@pytest.mark.parametrize(
    ("key", "value"),
    [("availability_zones", 3.0), ("dedicated_master_count", 3.0), ("data_node_count", 2.0),
     ("log_retention_days", 14.0), ("availability_zones", True), ("index_replicas", False)],
)  # fmt: skip
def test_integral_floats_and_booleans_are_refused_by_the_loader(key: str, value: Any) -> None:
    context = copy.deepcopy(cdk_context())
    context["environments"]["dev"][key] = value
    with pytest.raises(ConfigError, match=f"environments.dev.{key}: {value!r} is not allowed"):
        load_config(context, "dev")


def test_environment_name_with_a_trailing_newline_is_refused() -> None:
    context = copy.deepcopy(cdk_context())
    context["environments"]["dev\n"] = context["environments"]["dev"]
    with pytest.raises(ConfigError, match="environment names must be"):
        load_config(context, "dev\n")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("region", "us-east-1\n"),
        ("account", "".join(chr(0xFF10 + int(d)) for d in "123456789012")),  # fullwidth
        ("availability_zones", 2.5),
        ("dedicated_master_count", True),
    ],
)
def test_the_cli_subprocess_agrees(key: str, value: Any) -> None:
    context = copy.deepcopy(cdk_context())
    block = context["environments"]["dev"]
    block.update(account="123456789012", region="us-east-1")
    block[key] = value
    environ = dict(os.environ, CDK_CONTEXT_JSON=json.dumps({**context, "env": "dev"}))
    environ["CDK_OUTDIR"] = str(_OUT)
    # As the Makefile does: jsii's Node end-of-life banner is not our output.
    environ["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    environ["JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION"] = "1"
    environ["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    _assert_one_line_naming(
        result.returncode, result.stderr, f"environments.dev.{key}", repr(value)
    )


# Well-formed blocks: every value allowed, and the cross-key rules respected by construction.
AMX = ["ml.c7i.xlarge", "ml.m7i.large", "ml.r7i.large"]


@st.composite
def well_formed_block(draw: st.DrawFn) -> dict[str, Any]:
    block: dict[str, Any] = {"removal_policy": draw(st.sampled_from(["destroy", "retain"]))}
    zones = draw(st.sampled_from([1, 2, 3]))
    nodes = zones * draw(st.integers(1, 4))
    block.update(availability_zones=zones, data_node_count=nodes)
    block["index_replicas"] = draw(st.integers(0, min(5, nodes - 1)))
    block["index_shards"] = draw(st.integers(1, 64))
    block["engine_version"] = draw(st.sampled_from(["3.5", "3.7"]))
    family = draw(st.sampled_from("r7g m7g c7g r6g t3 r5 or1 i3 r6gd i4g im4gn r7gd oi2".split()))
    size = draw(st.sampled_from(["medium"] if family == "t3" else ["large", "xlarge"]))
    block["data_node_instance_type"] = f"{family}.{size}.search"
    if family not in "i3 r6gd i4g im4gn r7gd oi2".split():
        kind = draw(st.sampled_from(["gp3", "gp2", "io1"]))
        gib = draw(st.integers(20, 2048))
        block.update(ebs_volume_type=kind, ebs_volume_size_gib=gib)
        if kind == "io1":
            block["ebs_iops"] = draw(st.integers(1000, min(16000, 50 * gib)))
    masters = draw(st.sampled_from([0, 3, 5]))
    block["dedicated_master_count"] = masters
    if masters:
        block["dedicated_master_instance_type"] = draw(
            st.sampled_from(["m7g.large.search", "r7g.large.search", "m5.large.search"])
        )
    backend = draw(st.sampled_from(["exact", "bf16"]))
    block["endpoint_inference_backend"] = backend
    block["endpoint_instance_type"] = draw(
        st.sampled_from(AMX if backend == "bf16" else [*AMX, "ml.m5.large", "ml.g5.xlarge"])
    )
    low = draw(st.integers(1, 4))
    high = draw(st.integers(low, 8))
    block.update(
        endpoint_min_capacity=low,
        endpoint_max_capacity=high,
        endpoint_initial_instance_count=draw(st.integers(low, min(high, 20))),
        endpoint_target_concurrency=draw(st.integers(1, 2)),
    )
    block["log_retention_days"] = draw(st.sampled_from(CHOICE_KEYS["log_retention_days"]))
    block["space_type"] = draw(st.sampled_from(CHOICE_KEYS["space_type"]))
    block["embedding_dimension"] = draw(st.integers(1, 16000))
    block["query_prefix"] = draw(st.text(max_size=64))
    block["passage_prefix"] = draw(st.text(max_size=64))
    block["index_name"] = draw(st.from_regex(r"[a-z0-9][a-z0-9_\-]{0,20}", fullmatch=True))
    block["semantic_field"] = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True))
    block["protected"] = draw(st.booleans())
    block["hybrid_default_pipeline"] = draw(st.booleans())
    block["chunking"] = draw(
        st.one_of(
            st.booleans(),
            st.lists(
                st.one_of(
                    st.fixed_dictionaries(
                        {"algorithm": st.just("fixed_token_length")},
                        optional={"parameters": st.fixed_dictionaries({}, optional={
                            "token_limit": st.integers(1, 2**31 - 1),
                            "overlap_rate": st.sampled_from([0, 0.1, 0.25, 0.5]),
                            "tokenizer": st.sampled_from(["standard", "whitespace", "thai"]),
                            "max_chunk_limit": st.sampled_from([-1, 1, 100]),
                        })},
                    ),
                    st.fixed_dictionaries({"algorithm": st.just("delimiter")}, optional={
                        "parameters": st.fixed_dictionaries({}, optional={
                            "delimiter": st.text(min_size=1, max_size=3)})}),
                    st.fixed_dictionaries({"algorithm": st.just("fixed_char_length")}, optional={
                        "parameters": st.fixed_dictionaries({}, optional={
                            "char_limit": st.integers(1, 100000),
                            "overlap_rate": st.floats(0, 0.5)})}),
                ),
                min_size=1, max_size=3,
            ),
        )
    )  # fmt: skip
    if draw(st.booleans()):
        block["account"] = draw(st.from_regex(r"[0-9]{12}", fullmatch=True))
        block["region"] = draw(st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-3"]))
    return block


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(well_formed_block())
def test_well_formed_blocks_are_accepted_and_synthesize(block: dict[str, Any]) -> None:
    context = copy.deepcopy(cdk_context())
    context["environments"]["dev"] = block
    config = load_config(context, "dev")  # a ConfigError here is a false refusal
    app = cdk.App(outdir=str(_OUT / "accepted"), context=context)
    build_environment(app, config)
    enable_nag(app)
    app.synth()  # any jsii/CDK error (or an unacknowledged nag finding) fails the test
