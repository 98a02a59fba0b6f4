"""Where the Hugging Face PyTorch inference container lives in each region.

The sagemaker SDK knows these URIs, but it is about 1 GB installed and would
sit on the synth path of every deploy. The registry accounts below are the SDK's
own data for this exact image (``huggingface.json``, inference, transformers
4.51.3, pytorch 2.6.0); ``tests/infra/test_inference_image.py`` checks them
against the installed SDK so the table cannot drift unnoticed.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

REPOSITORY = "huggingface-pytorch-inference"
PYTORCH_VERSION = "2.6.0"
TRANSFORMERS_VERSION = "4.51.3"
PY_VERSION = "py312"

# Region -> ECR registry account of the DLC, for every region where it exists.
REGISTRY_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "763104351884",
    "ap-south-2": "772153158452",
    "ap-southeast-1": "763104351884",
    "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ca-central-1": "763104351884",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-1": "763104351884",
    "eu-central-2": "380420809688",
    "eu-north-1": "763104351884",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-west-1": "763104351884",
    "eu-west-2": "763104351884",
    "eu-west-3": "763104351884",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "sa-east-1": "763104351884",
    "us-east-1": "763104351884",
    "us-east-2": "763104351884",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
    "us-iso-east-1": "886529160074",
    "us-isob-east-1": "094389454867",
    "us-west-1": "763104351884",
    "us-west-2": "763104351884",
}

_URL_SUFFIX = {"cn-": "amazonaws.com.cn", "us-iso-": "c2s.ic.gov", "us-isob-": "sc2s.sgov.gov"}


def image_tag(gpu: bool) -> str:
    """The tag the SDK builds: framework, transformers, processor, python, OS (and CUDA)."""
    processor, os_tag = ("gpu", "cu124-ubuntu22.04") if gpu else ("cpu", "ubuntu22.04")
    return f"{PYTORCH_VERSION}-transformers{TRANSFORMERS_VERSION}-{processor}-{PY_VERSION}-{os_tag}"


def url_suffix(region: str) -> str:
    # Longest prefix first: us-isob- must not be taken for us-iso-.
    for prefix in sorted(_URL_SUFFIX, key=len, reverse=True):
        if region.startswith(prefix):
            return _URL_SUFFIX[prefix]
    return "amazonaws.com"


def image_uri(region: str, gpu: bool) -> str:
    """The image URI for a concrete region; KeyError names unsupported regions."""
    if region not in REGISTRY_ACCOUNTS:
        raise KeyError(
            f"region {region!r} has no Hugging Face PyTorch inference image; supported regions: "
            + ", ".join(sorted(REGISTRY_ACCOUNTS))
        )
    account = REGISTRY_ACCOUNTS[region]
    return f"{account}.dkr.ecr.{region}.{url_suffix(region)}/{REPOSITORY}:{image_tag(gpu)}"


def image_uri_for_stack(scope: Construct, gpu: bool) -> str:
    """The image URI for the stack of ``scope``, concrete or environment-agnostic.

    A stack with a concrete region gets a literal URI (and an unsupported
    region fails synth). An environment-agnostic stack gets a region-keyed
    CloudFormation mapping, resolved by CloudFormation at deploy time.
    """
    stack = cdk.Stack.of(scope)
    if not cdk.Token.is_unresolved(stack.region):
        return image_uri(stack.region, gpu)
    mapping = cdk.CfnMapping(
        scope,
        "InferenceImageRegistry",
        mapping={region: {"account": account} for region, account in REGISTRY_ACCOUNTS.items()},
    )
    account = mapping.find_in_map(cdk.Aws.REGION, "account")
    return f"{account}.dkr.ecr.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}/{REPOSITORY}:{image_tag(gpu)}"
