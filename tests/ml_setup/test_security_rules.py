"""The security plugin's real rules that broke a first and a second deploy.

Each rule is enforced by the emulator with its source (security 3.7.0.0), and
each test here fails against the code before the fix it names:
* ``GET /_alias/<name>`` (no index in the path) is checked on every index of the
  domain, system indices included: the setup role is refused (issue 9, item 1).
* A rolesmapping ``PATCH`` is applied to the mapping with its empty lists
  omitted: ``add /backend_roles/-`` on ``[]`` or on a missing list is a 400
  (issue 9, item 2), exactly what a create after a delete meets.
"""

from __future__ import annotations

import pytest

from tests.ml_setup.conftest import MASTER, OTHER_ML_USER, SETUP, Stack
from tests.ml_setup.http import signed_request
from tests.ml_setup.test_lifecycle import assert_nothing_of_ours_left, created
from tests.support.opensearch_emulator import SYSTEM_INDICES, OpenSearchEmulator

SEC = "/_plugins/_security/api"


def _map_setup_role(emulator: OpenSearchEmulator) -> None:
    """The setup role's own security role, as Custom::MlAccessMapping creates it."""
    emulator.roles["e5search-dev-ml-setup"] = {
        "cluster_permissions": [],
        "index_permissions": [
            {
                "index_patterns": ["documents-*", "documents"],
                "allowed_actions": ["indices:admin/*", "indices:monitor/*"],
            }
        ],
    }
    emulator.role_mappings["e5search-dev-ml-setup"] = {"backend_roles": [SETUP.arn]}


def test_every_emulated_domain_holds_system_indices(emulator: OpenSearchEmulator) -> None:
    assert ".plugins-ml-config" in emulator.system_indices
    assert set(SYSTEM_INDICES) <= emulator.system_indices


def test_get_alias_without_an_index_is_checked_on_all_indices_system_ones_too(
    emulator: OpenSearchEmulator,
) -> None:
    _map_setup_role(emulator)
    status, body = signed_request(emulator, SETUP, "GET", "/_alias/documents")
    assert status == 403
    assert body["error"]["type"] == "security_exception"
    assert "no permissions for [indices:admin/aliases/get]" in body["error"]["reason"]
    # The master (all_access) may ask about every index: the alias is simply missing.
    status, body = signed_request(emulator, MASTER, "GET", "/_alias/documents")
    assert (status, body) == (404, {"error": "alias [documents] missing", "status": 404})


def test_get_alias_within_our_pattern_is_allowed_and_answers_like_the_server(
    emulator: OpenSearchEmulator,
) -> None:
    _map_setup_role(emulator)
    # No index matches the wildcard yet: granted, and the named alias is missing.
    status, body = signed_request(emulator, SETUP, "GET", "/documents-*/_alias/documents")
    assert (status, body) == (404, {"error": "alias [documents] missing", "status": 404})
    body = {"aliases": {"documents": {}}}
    assert signed_request(emulator, MASTER, "PUT", "/documents-0000aaaa", body)[0] == 200
    assert signed_request(emulator, MASTER, "PUT", "/documents-1111bbbb", {})[0] == 200
    status, body = signed_request(emulator, SETUP, "GET", "/documents-*/_alias/documents")
    assert status == 200
    assert body == {"documents-0000aaaa": {"aliases": {"documents": {}}}}
    # A pattern that reaches beyond the role is refused like the all-indices form.
    status, _ = signed_request(emulator, SETUP, "GET", "/*/_alias/documents")
    assert status == 403


def test_first_create_asks_only_about_indices_the_setup_role_covers(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    setup_alias_reads = [c for c in emulator.calls(SETUP.arn) if "_alias/" in c[2]]
    assert setup_alias_reads, "the index resource reads the alias before moving it"
    assert all(c[2].startswith("/documents-*/_alias/") for c in setup_alias_reads)
    assert not [c for c in emulator.calls() if c[3] == 403]
    assert emulator.aliases["documents"] == {stack.data["Custom::SemanticIndex"]["IndexName"]: {}}


def test_rolesmapping_patch_sees_the_mapping_without_its_empty_lists(
    emulator: OpenSearchEmulator,
) -> None:
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [], "users": ["someone"]}
    add_one = [{"op": "add", "path": "/backend_roles/-", "value": SETUP.arn}]
    status, body = signed_request(
        emulator, MASTER, "PATCH", f"{SEC}/rolesmapping/ml_full_access", add_one
    )
    assert status == 400 and body["status"] == "BAD_REQUEST"
    assert "backend_roles" in body["message"]
    set_all = [{"op": "add", "path": "/backend_roles", "value": [SETUP.arn]}]
    status, _ = signed_request(
        emulator, MASTER, "PATCH", f"{SEC}/rolesmapping/ml_full_access", set_all
    )
    assert status == 200
    assert emulator.role_mappings["ml_full_access"]["backend_roles"] == [SETUP.arn]
    assert emulator.role_mappings["ml_full_access"]["users"] == ["someone"]
    status, _ = signed_request(
        emulator, MASTER, "PATCH", f"{SEC}/rolesmapping/ml_full_access", add_one
    )
    assert status == 200  # appending to a non-empty list works


def test_create_delete_create_again_succeeds(stack: Stack, emulator: OpenSearchEmulator) -> None:
    """The second-deploy breaker: our own Delete leaves ``ml_full_access`` with ``[]``."""
    created(stack)
    assert [r.status for r in stack.delete().values()] == ["SUCCESS"] * 4
    assert_nothing_of_ours_left(emulator)
    assert emulator.role_mappings["ml_full_access"]["backend_roles"] == []
    stack.physical.clear()
    stack.data.clear()
    stack.applied.clear()
    created(stack)
    assert emulator.role_mappings["ml_full_access"]["backend_roles"] == [SETUP.arn]
    assert len(emulator.models) == len(emulator.connectors) == 1
    assert "documents" in emulator.aliases


@pytest.mark.parametrize(
    "existing",
    [
        {"backend_roles": []},
        {"users": ["analyst"]},
        {"backend_roles": [], "users": ["analyst"], "hosts": []},
    ],
    ids=["empty-backend-roles", "users-only", "empty-lists"],
)
def test_create_adds_the_setup_role_to_a_mapping_without_backend_roles(
    existing: dict, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.role_mappings["ml_full_access"] = dict(existing)
    created(stack)
    mapping = emulator.role_mappings["ml_full_access"]
    assert mapping["backend_roles"] == [SETUP.arn]
    assert mapping.get("users", []) == existing.get("users", [])


def test_create_appends_to_a_mapping_with_other_backend_roles(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [OTHER_ML_USER]}
    created(stack)
    assert emulator.role_mappings["ml_full_access"]["backend_roles"] == [OTHER_ML_USER, SETUP.arn]
