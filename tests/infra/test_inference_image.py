"""Our DLC image table agrees with the sagemaker SDK's own image URI data."""

from __future__ import annotations

import json

import pytest

from stacks.inference_image import (
    PYTORCH_VERSION,
    REGISTRY_ACCOUNTS,
    TRANSFORMERS_VERSION,
    image_uri,
)
from tests.infra.conftest import Synthesized

image_uris = pytest.importorskip("sagemaker.core.image_uris")


def _sdk(region: str, instance_type: str) -> str:
    return image_uris.retrieve(
        "huggingface",
        region,
        version=TRANSFORMERS_VERSION,
        base_framework_version=f"pytorch{PYTORCH_VERSION}",
        instance_type=instance_type,
        image_scope="inference",
    )


def _sdk_regions() -> set[str]:
    cfg = image_uris.config_for_framework("huggingface")
    version = cfg["inference"]["versions"][TRANSFORMERS_VERSION][f"pytorch{PYTORCH_VERSION}"]
    return set(version["registries"])


def test_we_cover_exactly_the_regions_the_sdk_knows() -> None:
    assert set(REGISTRY_ACCOUNTS) == _sdk_regions()


@pytest.mark.parametrize("instance_type", ["ml.m5.large", "ml.g5.xlarge"])
def test_every_region_uri_matches_the_sdk(instance_type: str) -> None:
    gpu = instance_type.startswith("ml.g")
    mismatches = {
        region: (image_uri(region, gpu), _sdk(region, instance_type))
        for region in sorted(REGISTRY_ACCOUNTS)
        if image_uri(region, gpu) != _sdk(region, instance_type)
    }
    assert mismatches == {}


def test_unsupported_region_is_named() -> None:
    with pytest.raises(KeyError, match="mars-west-1"):
        image_uri("mars-west-1", gpu=False)


def test_env_agnostic_template_maps_every_region(dev: Synthesized) -> None:
    tpl = dev.one("-endpoint")
    mapping = tpl["Mappings"]["InferenceImageRegistry"]
    assert {r: v["account"] for r, v in mapping.items()} == REGISTRY_ACCOUNTS
    (model,) = dev.resources("AWS::SageMaker::Model").values()
    assert "InferenceImageRegistry" in json.dumps(model["Properties"]["PrimaryContainer"]["Image"])
