"""The Temporal dev server fixture (tests/support/temporal.py): it serves, on loopback,
the namespace and custom search attributes it was started with; a missing CLI fails
and says what installs it."""

from __future__ import annotations

import asyncio

import pytest

from support import temporal as support_temporal

pytestmark = pytest.mark.temporal


def run(coroutine, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def test_dev_server_serves_its_namespace_with_the_search_attributes_it_was_given(temporal_server):
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    print(f"\ntemporal dev server {temporal_server.address} ready in {temporal_server.startup_seconds:.2f}s")
    assert temporal_server.address.startswith("127.0.0.1:")

    async def check():
        client = await temporal_server.connect()
        request = ListSearchAttributesRequest(namespace=temporal_server.namespace)
        listed = await client.operator_service.list_search_attributes(request)
        custom = {name: IndexedValueType.Name(kind) for name, kind in listed.custom_attributes.items()}
        # The dev server pre-registers no custom attribute: these are exactly the flags' ones.
        assert custom == {name: f"INDEXED_VALUE_TYPE_{kind.upper().replace('KEYWORDLIST', 'KEYWORD_LIST')}"
                          for name, kind in support_temporal.SEARCH_ATTRIBUTES.items()}
        assert {"WorkflowId", "WorkflowType", "ExecutionStatus", "StartTime"} <= set(listed.system_attributes)
        # More can be registered while it runs (the operator service; the CLI's
        # ``temporal operator search-attribute create`` does the same).
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=temporal_server.namespace,
            search_attributes={"GuardrailSpikeAttempt": IndexedValueType.INDEXED_VALUE_TYPE_INT}))
        listed = await client.operator_service.list_search_attributes(request)
        assert listed.custom_attributes["GuardrailSpikeAttempt"] == IndexedValueType.INDEXED_VALUE_TYPE_INT

    run(check())


def test_missing_binary_fails_and_says_what_installs_it(monkeypatch):
    monkeypatch.setattr(support_temporal.sysconfig, "get_path", lambda name: "/nonexistent")
    monkeypatch.setattr(support_temporal.sys, "executable", "/nonexistent/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AssertionError, match="scripts/test installs it"):
        support_temporal.temporal_binary()
