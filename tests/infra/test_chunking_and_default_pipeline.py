"""``chunking`` and ``hybrid_default_pipeline`` in config and template.

Config: what neural-search 3.7.0.0 accepts for the semantic field's chunking
(stacks/config.py cites the validators) is accepted, every other value fails at
synth with one line naming the key. Template: chunking reaches the index resource
JSON-encoded (numbers stay numbers through CloudFormation) and only when set, and
the index names the pipeline through its attribute, so CloudFormation creates the
pipeline first and deletes it last.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, load_config
from tests.infra.conftest import Synthesized, cdk_context, synth


def load(**overrides: Any):
    ctx = copy.deepcopy(cdk_context())
    ctx["environments"]["dev"].update(overrides)
    return load_config(ctx, "dev")


def test_defaults_are_no_chunking_and_the_pipeline_as_the_index_default() -> None:
    cfg = load()
    assert cfg.chunking is False and cfg.chunking_mapping is False
    assert cfg.hybrid_default_pipeline is True


@pytest.mark.parametrize(
    ("value", "mapping"),
    [
        (False, False),
        (True, True),
        (
            [{"algorithm": "fixed_token_length",
              "parameters": {"token_limit": 384, "overlap_rate": 0.125, "tokenizer": "letter"}}],
            [{"algorithm": "fixed_token_length",
              "parameters": {"token_limit": 384, "overlap_rate": 0.125, "tokenizer": "letter"}}],
        ),
        ([{"algorithm": "delimiter"}], [{"algorithm": "delimiter"}]),
        (
            [{"algorithm": "delimiter", "parameters": {"delimiter": "\n"}},
             {"algorithm": "fixed_char_length",
              "parameters": {"char_limit": 2000, "overlap_rate": 0, "max_chunk_limit": -1}}],
            [{"algorithm": "delimiter", "parameters": {"delimiter": "\n"}},
             {"algorithm": "fixed_char_length",
              "parameters": {"char_limit": 2000, "overlap_rate": 0, "max_chunk_limit": -1}}],
        ),
        (
            [{"algorithm": "fixed_token_length", "parameters": {"overlap_rate": 0.5}}],
            [{"algorithm": "fixed_token_length", "parameters": {"overlap_rate": 0.5}}],
        ),
    ],
)  # fmt: skip
def test_accepted_chunking_reaches_the_mapping_unchanged(value: Any, mapping: Any) -> None:
    assert load(chunking=value).chunking_mapping == mapping


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("true", "chunking"),
        (1, "chunking"),
        ([], "chunking"),
        ({"algorithm": "delimiter"}, "chunking"),
        (["delimiter"], "chunking[0]"),
        ([{"algorithm": "sentence"}], "chunking[0].algorithm"),
        ([{"parameters": {}}], "chunking[0].algorithm"),
        ([{"algorithm": "delimiter", "tag": 1}], "chunking[0]"),
        ([{"algorithm": "delimiter", "parameters": []}], "chunking[0].parameters"),
        ([{"algorithm": "delimiter", "parameters": {"delimiter": ""}}],
         "chunking[0].parameters.delimiter"),
        ([{"algorithm": "delimiter", "parameters": {"token_limit": 3}}],
         "chunking[0].parameters: unknown parameter 'token_limit'"),
        ([{"algorithm": "fixed_token_length", "parameters": {"token_limt": 3}}],
         "unknown parameter 'token_limt'"),
        ([{"algorithm": "fixed_token_length", "parameters": {"token_limit": 0}}],
         "chunking[0].parameters.token_limit"),
        ([{"algorithm": "fixed_token_length", "parameters": {"token_limit": 2**31}}],
         "chunking[0].parameters.token_limit"),
        ([{"algorithm": "fixed_token_length", "parameters": {"token_limit": "384"}}],
         "chunking[0].parameters.token_limit"),
        ([{"algorithm": "fixed_token_length", "parameters": {"token_limit": 12.5}}],
         "chunking[0].parameters.token_limit"),
        ([{"algorithm": "fixed_token_length", "parameters": {"overlap_rate": 0.51}}],
         "chunking[0].parameters.overlap_rate"),
        ([{"algorithm": "fixed_token_length", "parameters": {"overlap_rate": -0.1}}],
         "chunking[0].parameters.overlap_rate"),
        ([{"algorithm": "fixed_token_length", "parameters": {"overlap_rate": True}}],
         "chunking[0].parameters.overlap_rate"),
        ([{"algorithm": "fixed_token_length", "parameters": {"tokenizer": "keyword"}}],
         "chunking[0].parameters.tokenizer"),
        ([{"algorithm": "fixed_char_length", "parameters": {"char_limit": -5}}],
         "chunking[0].parameters.char_limit"),
        ([{"algorithm": "delimiter"}, {"algorithm": "delimiter",
                                       "parameters": {"max_chunk_limit": 0}}],
         "chunking[1].parameters.max_chunk_limit"),
        ([{"algorithm": "delimiter", "parameters": {"max_chunk_limit": -2}}],
         "chunking[0].parameters.max_chunk_limit"),
    ],
)  # fmt: skip
def test_bad_chunking_fails_with_one_line_naming_the_key(value: Any, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(chunking=value)
    message = str(err.value)
    assert f"environments.dev.{named}" in message or named in message, message
    assert "environments.dev.chunking" in message and "\n" not in message


@pytest.mark.parametrize("value", ["true", 1, None, [True]])
def test_bad_default_pipeline_flag_fails_with_one_line(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"environments\.dev\.hybrid_default_pipeline: "):
        load(hybrid_default_pipeline=value)


def index_resource(s: Synthesized) -> dict[str, Any]:
    ((_, resource),) = s.resources("Custom::SemanticIndex").items()
    return resource


def test_default_template_names_the_pipeline_by_attribute_and_passes_no_chunking(
    dev: Synthesized,
) -> None:
    props = index_resource(dev)["Properties"]
    ((pipeline_key, _),) = dev.resources("Custom::HybridSearchPipeline").items()
    pipeline_id = pipeline_key.split("/", 1)[1]
    assert props["DefaultSearchPipeline"] == {"Fn::GetAtt": [pipeline_id, "PipelineName"]}
    assert "Chunking" not in props, "no chunking keeps the template an older stack has"


def test_chunking_is_sent_json_encoded_and_the_default_can_be_turned_off(
    tmp_path: Path,
) -> None:
    ctx = copy.deepcopy(cdk_context())
    steps = [{"algorithm": "fixed_token_length",
              "parameters": {"token_limit": 384, "overlap_rate": 0.125}}]  # fmt: skip
    ctx["environments"]["dev"].update(chunking=steps, hybrid_default_pipeline=False)
    props = index_resource(synth(tmp_path, ["dev"], ctx, nag=False))["Properties"]
    assert json.loads(props["Chunking"]) == steps
    assert "DefaultSearchPipeline" not in props
