"""CDK assertions on MlSetupStack: properties, permissions, ordering, and the Lambda asset.

The property names are checked against the ones the lifecycle tests send
(``base_properties``), so the template and the tested behaviour cannot drift
apart silently.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import Synthesized, synth
from tests.ml_setup.conftest import base_properties

TYPES = (
    "Custom::MlAccessMapping",
    "Custom::MlConnector",
    "Custom::MlModel",
    "Custom::SemanticIndex",
)
# DefaultSearchPipeline: the pipeline's attribute (tests/ml_setup/test_default_pipeline.py).
REFERENCES = {
    "Custom::MlModel": {"ConnectorId"},
    "Custom::SemanticIndex": {"ModelId", "DefaultSearchPipeline"},
}


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synthesized]:
    return {name: synth(tmp_path_factory.mktemp(f"ml-{name}"), [name]) for name in ("dev", "prod")}


def ml_template(s: Synthesized) -> dict[str, Any]:
    return s.one("-ml-setup")


def custom(template: dict[str, Any], type_: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, v) for k, v in template["Resources"].items() if v["Type"] == type_]
    return found


def test_each_resource_has_its_own_type_and_exactly_the_tested_properties(
    envs: dict[str, Synthesized],
) -> None:
    template = ml_template(envs["dev"])
    expected = base_properties("endpoint")
    for type_ in TYPES:
        _, resource = custom(template, type_)
        props = resource["Properties"]
        assert set(props) - {"ServiceToken", "ServiceTimeout"} == set(expected[type_]) | (
            REFERENCES.get(type_, set())
        )
        assert resource["UpdateReplacePolicy"] == resource["DeletionPolicy"] == "Delete"


def test_properties_are_wired_from_config_and_the_other_stacks(
    envs: dict[str, Synthesized],
) -> None:
    template = ml_template(envs["dev"])
    _, mapping = custom(template, "Custom::MlAccessMapping")
    connector_id, connector = custom(template, "Custom::MlConnector")
    model_id, model = custom(template, "Custom::MlModel")
    _, index = custom(template, "Custom::SemanticIndex")
    assert mapping["Properties"]["IndexPatterns"] == ["documents-*", "documents"]
    assert mapping["Properties"]["RoleName"] == "e5search-dev-ml-setup"
    assert mapping["Properties"]["ClientRoleName"] == "e5search-dev-search-client"
    assert "Fn::ImportValue" in json.dumps(mapping["Properties"]["MasterRoleArn"])
    # The client role is the domain stack's ClientRole, never the master or setup role.
    client_arn = json.dumps(mapping["Properties"]["ClientRoleArn"])
    assert "ClientRole" in client_arn and "MasterRole" not in client_arn
    assert index["Properties"]["IndexName"] == "documents"
    # The endpoint's name comes from the endpoint resource, so the connector waits for it.
    assert "Fn::ImportValue" in json.dumps(connector["Properties"]["EndpointName"])
    assert "ConnectorRole" in json.dumps(connector["Properties"]["ConnectorRoleArn"])
    # stacks/ingest_capacity.py: 2 x 2 workers (ml.m5.large) x max capacity 2 / 1 node, + 1.
    assert connector["Properties"]["MaxConnections"] == 9
    assert model["Properties"]["ConnectorId"] == {"Fn::GetAtt": [connector_id, "ConnectorId"]}
    assert model["Properties"]["IsAsymmetric"] is True
    assert model["Properties"]["QueryPrefix"] == "query: "
    assert model["Properties"]["PassagePrefix"] == "passage: "
    assert model["Properties"]["EmbeddingDimension"] == 384
    assert index["Properties"]["ModelId"] == {"Fn::GetAtt": [model_id, "ModelId"]}
    assert index["Properties"]["FieldName"] == "passage_text"
    assert index["Properties"]["RetainOnDelete"] is False
    prod_index = custom(ml_template(envs["prod"]), "Custom::SemanticIndex")[1]
    assert prod_index["Properties"]["RetainOnDelete"] is True
    assert prod_index["Properties"]["NumberOfReplicas"] == 2


def test_the_index_gets_the_embedding_identity_and_the_copy_throttle(
    envs: dict[str, Synthesized],
) -> None:
    """Identity from the typed config; throttle from the endpoint's type and minimum count."""
    props = custom(ml_template(envs["dev"]), "Custom::SemanticIndex")[1]["Properties"]
    assert (
        props["EmbeddingIdentity"]
        == base_properties("x")["Custom::SemanticIndex"]["EmbeddingIdentity"]
    )
    # dev: 1 x ml.m5.large at 4 passages/s, half of it for the copy.
    assert props["ReindexDocsPerSecond"] == 2
    assert props["MigrationBudgetSeconds"] == 35 * 60
    assert props["EnvironmentName"] == "dev"
    prod = custom(ml_template(envs["prod"]), "Custom::SemanticIndex")[1]["Properties"]
    # prod: min 2 x ml.c6i.xlarge at 8/s each, half of it.
    assert prod["ReindexDocsPerSecond"] == 8
    assert prod["EnvironmentName"] == "prod"


def test_resources_are_ordered_mapping_connector_model_index(envs: dict[str, Synthesized]) -> None:
    template = ml_template(envs["dev"])
    mapping_id, _ = custom(template, "Custom::MlAccessMapping")
    _, connector = custom(template, "Custom::MlConnector")
    assert mapping_id in connector.get("DependsOn", [])
    # Model and index depend through Fn::GetAtt (checked above); the stack waits for both others.
    deps = envs["dev"].dependencies["e5search-dev-ml-setup"]
    assert set(deps) >= {"e5search-dev-search", "e5search-dev-endpoint"}
    assert "e5search-dev-ml-setup" not in json.dumps(
        envs["dev"].dependencies["e5search-dev-search"]
    )


def test_provider_uses_the_setup_role_the_newest_python_and_bounded_timeouts(
    envs: dict[str, Synthesized],
) -> None:
    template = ml_template(envs["dev"])
    functions = {
        k: v["Properties"]
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::Lambda::Function"
        and v["Properties"].get("Runtime", "").startswith("python")
    }
    handlers = {p["Handler"]: p for p in functions.values()}
    assert set(handlers) == {"ml_setup.handler.on_event", "ml_setup.handler.is_complete"}
    for props in handlers.values():
        assert props["Runtime"] == "python3.14"
        assert "SetupRole" in json.dumps(props["Role"])
        assert int(props["Environment"]["Variables"]["WAIT_TIMEOUT_SECONDS"]) < 50 * 60
    assert handlers["ml_setup.handler.on_event"]["Timeout"] == 600
    for type_ in TYPES:
        assert custom(template, type_)[1]["Properties"]["ServiceTimeout"] == "3300"
    (machine,) = [
        v for v in template["Resources"].values() if v["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    interval = int(re.search(r'IntervalSeconds\\":(\d+)', definition).group(1))
    attempts = int(re.search(r'MaxAttempts\\":(\d+)', definition).group(1))
    # The framework's total timeout: 50 minutes, inside CloudFormation's hour.
    assert interval * attempts == 3000


def test_outputs_name_the_connector_model_index_and_field(envs: dict[str, Synthesized]) -> None:
    outputs = ml_template(envs["dev"])["Outputs"]
    assert {"ConnectorId", "ModelId", "IndexName", "IndexAlias", "SemanticField"} <= set(outputs)
    (index_id, _) = custom(ml_template(envs["dev"]), "Custom::SemanticIndex")
    assert outputs["IndexAlias"]["Value"] == {"Fn::GetAtt": [index_id, "IndexAlias"]}
    assert outputs["IndexName"]["Value"] == {"Fn::GetAtt": [index_id, "IndexName"]}
    domain_outputs = envs["dev"].one("-search")["Outputs"]
    assert {"DomainEndpoint", "SearchClientRoleArn"} <= set(domain_outputs)


def test_no_keys_no_all_access_and_no_wildcard_mapping_anywhere(
    envs: dict[str, Synthesized],
) -> None:
    for synthesized in envs.values():
        for template in synthesized.templates.values():
            text = json.dumps(template)
            for forbidden in (
                "access_key",
                "secret_key",
                "AccessKeyId",
                "SecretAccessKey",
                "all_access",
            ):
                assert forbidden not in text
        mapping = custom(ml_template(synthesized), "Custom::MlAccessMapping")[1]["Properties"]
        assert all(p != "*" for p in mapping["IndexPatterns"])


def ml_stack_name(s: Synthesized) -> str:
    (name,) = [n for n in s.templates if n.endswith("-ml-setup")]
    return name


def _asset_dir(s: Synthesized) -> Path:
    """The staged directory of the handlers' code asset (from the stack's asset manifest)."""
    template = ml_template(s)
    (on_event,) = [
        v
        for v in template["Resources"].values()
        if v["Type"] == "AWS::Lambda::Function"
        and v["Properties"].get("Handler") == "ml_setup.handler.on_event"
    ]
    key = on_event["Properties"]["Code"]["S3Key"]
    asset_hash = key.removesuffix(".zip")
    directory = Path(s.assembly.directory)
    manifest = json.loads((directory / f"{ml_stack_name(s)}.assets.json").read_text())
    return directory / manifest["files"][asset_hash]["source"]["path"]


def test_the_lambda_asset_holds_its_dependencies_and_nothing_else(
    envs: dict[str, Synthesized], tmp_path: Path
) -> None:
    root = _asset_dir(envs["dev"])
    top = {p.name for p in root.iterdir()}
    assert {"ml_setup", "opensearchpy", "urllib3"} <= top
    assert (root / "ml_setup" / "handler.py").is_file()
    assert (root / "opensearchpy" / "__init__.py").is_file()
    assert (root / "urllib3" / "__init__.py").is_file()
    # Provided by the Lambda runtime (boto3, botocore and its dateutil), or declared by
    # opensearch-py but never imported (grpcio, protobuf): must not be bundled.
    # tests/infra/test_lambda_asset.py checks the whole list against lambdas/requirements.txt.
    assert not top & {"grpc", "grpcio", "google", "botocore", "boto3", "dateutil"}
    assert not list(root.rglob("__pycache__"))
    archive = tmp_path / "asset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, path.relative_to(root))
    assert archive.stat().st_size < 5 * 1024 * 1024
    print(f"ml_setup asset: {archive.stat().st_size / 1024:.0f} KiB zipped")


def test_the_asset_hash_depends_on_the_source_only(envs: dict[str, Synthesized]) -> None:
    """Same hash in every synth (dev and prod share code) whatever pip's output looks like."""
    dev, prod = (_asset_dir(envs[name]).name for name in ("dev", "prod"))
    assert dev == prod and dev.startswith("asset.")


def test_the_hybrid_pipeline_resource_has_exactly_the_tested_properties(
    envs: dict[str, Synthesized],
) -> None:
    """What tests/ml_setup/test_search_pipeline.py's pipeline_props sends, no more, no less."""
    _, resource = custom(ml_template(envs["dev"]), "Custom::HybridSearchPipeline")
    assert set(resource["Properties"]) - {"ServiceToken", "ServiceTimeout"} == {
        "DomainEndpoint", "Region", "Name", "Description", "Normalization", "Combination",
        "Weights",
    }  # fmt: skip


def test_capacity_figures_reach_the_connector_the_index_and_the_outputs(
    envs: dict[str, Synthesized],
) -> None:
    """dev: ml.m5.large x 1-2, 1 data node; prod: ml.c6i.xlarge x 2-6, 3 data nodes.

    Hand-computed (docs/ingest-capacity.md): dev pool 2 x 2 x 2 / 1 + 1 = 9, batch 12,
    loader 2 x 2 x 1 = 4; prod pool 2 x 4 x 6 / 3 + 1 = 17, batch 15, loader 2 x 4 x 2 = 16.
    """
    for env, (pool, batch, loader) in {"dev": (9, 12, 4), "prod": (17, 15, 16)}.items():
        template = ml_template(envs[env])
        connector = custom(template, "Custom::MlConnector")[1]["Properties"]
        index = custom(template, "Custom::SemanticIndex")[1]["Properties"]
        assert connector["MaxConnections"] == pool
        assert (connector["ConnectionTimeoutSeconds"], connector["ReadTimeoutSeconds"]) == (10, 70)
        assert (connector["MaxRetryTimes"], connector["RetryTimeoutSeconds"]) == (5, 30)
        assert index["SemanticIngestBatchSize"] == batch
        outputs = template["Outputs"]
        assert outputs["SemanticIngestBatchSize"]["Value"] == str(batch)
        assert outputs["IngestConcurrency"]["Value"] == str(loader)
