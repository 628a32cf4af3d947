"""Keys and request signatures against a real Synapse: each fetches and verifies the other's
signing keys, and each accepts the other's X-Matrix signed requests."""

from __future__ import annotations

import pytest

from myelin.services.federation.client import FederationError

from federation_fixtures import FederatingFactory, synapse_user
from harness import logged_in_user
from synapse_harness import SynapseServer

pytestmark = pytest.mark.federation


async def test_keys_and_signed_requests_both_ways(
        federating_server: FederatingFactory, synapse: SynapseServer) -> None:
    myelin = await federating_server()
    services = myelin.services
    # Myelin fetches Synapse's key directly and verifies its self-signature.
    response = await services.federation_client.request(
        synapse.server_name, "GET", "/_matrix/key/v2/server", signed=False)
    key_id = next(iter(response["verify_keys"]))
    await services.keyring.get_verify_key(synapse.server_name, key_id, valid_at_ms=None)
    # Synapse, as a notary, fetches and verifies ours (it fetches only keys asked for by ID).
    notary = await services.federation_client.request(
        synapse.server_name, "POST", "/_matrix/key/v2/query", signed=False,
        json={"server_keys": {myelin.server_name: {
            services.signing_key.key_id: {"minimum_valid_until_ts": 0}}}})
    ours = notary["server_keys"][0]
    assert ours["server_name"] == myelin.server_name
    assert services.signing_key.key_id in ours["verify_keys"]
    assert synapse.server_name in ours["signatures"]
    # A signed request Synapse accepts (it verifies our X-Matrix header with our key): an
    # unknown profile is a 404, where a bad signature would be a 401.
    with pytest.raises(FederationError) as refused:
        await services.federation_client.request(
            synapse.server_name, "GET", "/_matrix/federation/v1/query/profile",
            query={"user_id": f"@nobody:{synapse.server_name}"})
    assert (refused.value.status, refused.value.errcode) == (404, "M_NOT_FOUND")


async def test_synapse_queries_our_profile_with_a_signed_request(
        federating_server: FederatingFactory, synapse: SynapseServer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    await alice.request("PUT", f"/_matrix/client/v3/profile/{myelin.user_id('alice')}/displayname",
                        {"displayname": "Alice of Myelin"})
    bob = await synapse_user(synapse, "bob")
    response = await bob.get(f"/_matrix/client/v3/profile/{myelin.user_id('alice')}")
    assert response.status == 200, response
    assert response.json["displayname"] == "Alice of Myelin"
