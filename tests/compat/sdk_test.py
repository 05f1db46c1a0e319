"""Azure's Python SDK against a running `securescore serve --demo`, unchanged.

ClientSecretCredential -> SecurityCenter: secure scores, controls (with expand), definitions
(both scopes), assessments create/get/list/delete at 2021-06-01, sub-assessments (2019-01-01-preview),
and the error mappings; ResourceGraphClient (azure-mgmt-resourcegraph): Microsoft's published
secure score and control queries against the secure score API, the table format, paging and
row filtering for a Reader.

Environment: SECURESCORE_URL, SECURESCORE_CA, SECURESCORE_CREDENTIALS (demo-credentials.json),
SECURESCORE_READER (JSON with clientId/clientSecret of a Reader principal).
Prints one PASS/FAIL line per check; exits 1 when any check failed.
"""

import json
import os
import sys
import time
import traceback

from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions
from azure.mgmt.security import SecurityCenter
from azure.mgmt.security.models import AssessmentStatus, AzureResourceDetails, SecurityAssessment

BASE = os.environ["SECURESCORE_URL"].rstrip("/")
CA = os.environ["SECURESCORE_CA"]
CREDS = json.load(open(os.environ["SECURESCORE_CREDENTIALS"]))
READER = json.loads(os.environ["SECURESCORE_READER"])
SUB = CREDS["subscriptionId"]
ASSESSMENT = "4fb67663-9ab9-475d-b026-8c544cced439"
RESOURCE = f"/subscriptions/{SUB}/resourceGroups/compat-rg/providers/Microsoft.Compute/virtualMachines/compat-vm"

results = []


def check(name):
    def wrap(fn):
        started = time.monotonic()
        try:
            fn()
            results.append((name, True, ""))
            print(f"PASS sdk: {name} ({time.monotonic() - started:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            results.append((name, False, repr(e)))
            print(f"FAIL sdk: {name}: {e!r}", flush=True)
            traceback.print_exc()
        return fn

    return wrap


def credential(client_id, secret):
    return ClientSecretCredential(
        CREDS["tenantId"], client_id, secret, authority=BASE, disable_instance_discovery=True, connection_verify=CA
    )


def client(cred):
    return SecurityCenter(cred, SUB, base_url=BASE, connection_verify=CA)


owner = client(credential(CREDS["clientId"], CREDS["clientSecret"]))


@check("secure_scores.get(ascScore) = the documented sample")
def _():
    s = owner.secure_scores.get("ascScore")
    assert s.name == "ascScore", s.name
    assert s.max == 39 and abs(s.current - 23.53) < 1e-9 and abs(s.percentage - 0.6033) < 1e-9, (s.max, s.current, s.percentage)
    assert s.weight == 67, s.weight


@check("secure_scores.list()")
def _():
    names = [s.name for s in owner.secure_scores.list()]
    assert names == ["ascScore"], names


@check("secure_score_controls.list(expand=definition)")
def _():
    controls = list(owner.secure_score_controls.list(expand="definition"))
    assert controls and all(c.definition is not None for c in controls), len(controls)


@check("secure_score_controls.list_by_secure_score(ascScore, expand=definition)")
def _():
    controls = list(owner.secure_score_controls.list_by_secure_score("ascScore", expand="definition"))
    assert len(controls) == 12, len(controls)
    assert all(c.definition.max_score is not None for c in controls)
    plain = list(owner.secure_score_controls.list_by_secure_score("ascScore"))
    assert all(c.definition is None for c in plain)


@check("secure_score_control_definitions.list() and list_by_subscription()")
def _():
    tenant = list(owner.secure_score_control_definitions.list())
    sub = list(owner.secure_score_control_definitions.list_by_subscription())
    assert tenant and sub and len(tenant) == len(sub), (len(tenant), len(sub))


@check("assessments create_or_update / get / list / delete (2021-06-01)")
def _():
    body = SecurityAssessment(
        resource_details=AzureResourceDetails(),
        status=AssessmentStatus(code="Unhealthy", cause="compat", description="made by the SDK test"),
        additional_data={"source": "compat"},
    )
    created = owner.assessments.create_or_update(RESOURCE, ASSESSMENT, body)
    assert created.status.code == "Unhealthy", created.status
    got = owner.assessments.get(RESOURCE, ASSESSMENT, expand="metadata")
    assert got.name == ASSESSMENT and got.status.code == "Unhealthy"
    listed = [a.name for a in owner.assessments.list(f"/subscriptions/{SUB}/resourceGroups/compat-rg")]
    assert ASSESSMENT in listed, listed
    owner.assessments.delete(RESOURCE, ASSESSMENT)
    try:
        owner.assessments.get(RESOURCE, ASSESSMENT)
        raise AssertionError("the deleted assessment is still there")
    except ResourceNotFoundError:
        pass


@check("sub_assessments list_all / list / get (2019-01-01-preview), written by the extension PUT")
def _():
    from azure.core.rest import HttpRequest

    sub_id = f"{RESOURCE}/providers/Microsoft.Security/assessments/{ASSESSMENT}/subAssessments/compat-sub"
    props = {
        "displayName": "compat finding",
        "id": "1001",
        "status": {"code": "Unhealthy", "severity": "High"},
        "resourceDetails": {"source": "Azure"},
        "additionalData": {
            "assessedResourceType": "ContainerRegistryVulnerability",
            "type": "Vulnerability",
            "cvss": {"3.0": {"base": 9.8}},
            "cve": [{"title": "CVE-2019-12345", "link": "https://example.com"}],
            "patchable": True,
        },
    }
    # Writing is this server's extension: the SDK has no operation for it, its pipeline sends it.
    put = HttpRequest("PUT", f"{BASE}{sub_id}?api-version=2019-01-01-preview", json={"properties": props})
    answer = owner._client.send_request(put)
    assert answer.status_code in (200, 201), answer.text()
    scope = f"/subscriptions/{SUB}"
    every = [s.name for s in owner.sub_assessments.list_all(scope)]
    assert "compat-sub" in every, every
    of_one = list(owner.sub_assessments.list(scope, ASSESSMENT))
    assert [s.name for s in of_one] == ["compat-sub"], of_one
    got = owner.sub_assessments.get(RESOURCE, ASSESSMENT, "compat-sub")
    assert got.display_name == "compat finding" and got.status.code == "Unhealthy", got
    data = got.additional_data
    assert data.assessed_resource_type == "ContainerRegistryVulnerability", data
    assert data.cve[0].title == "CVE-2019-12345" and data.patchable is True, data
    owner._client.send_request(HttpRequest("DELETE", f"{BASE}{sub_id}?api-version=2019-01-01-preview"))
    try:
        owner.sub_assessments.get(RESOURCE, ASSESSMENT, "compat-sub")
        raise AssertionError("the deleted sub-assessment is still there")
    except ResourceNotFoundError:
        pass


@check("unknown secure score -> ResourceNotFoundError")
def _():
    try:
        owner.secure_scores.get("noSuchScore")
        raise AssertionError("no error")
    except ResourceNotFoundError as e:
        assert "ResourceNotFound" in str(e), str(e)


class Garbage:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("garbage", int(time.time()) + 3600)

    def get_token_info(self, *scopes, options=None):
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo("garbage", int(time.time()) + 3600)


@check("garbage token -> ClientAuthenticationError (InvalidAuthenticationToken)")
def _():
    try:
        client(Garbage()).secure_scores.get("ascScore")
        raise AssertionError("no error")
    except ClientAuthenticationError as e:
        assert "InvalidAuthenticationToken" in str(e), str(e)


@check("wrong client secret -> ClientAuthenticationError (AADSTS7000215)")
def _():
    try:
        client(credential(CREDS["clientId"], "not-the-secret")).secure_scores.get("ascScore")
        raise AssertionError("no error")
    except ClientAuthenticationError as e:
        assert "AADSTS7000215" in str(e), str(e)


@check("a Reader reads, and writing is HttpResponseError 403 AuthorizationFailed")
def _():
    reader = client(credential(READER["clientId"], READER["clientSecret"]))
    assert reader.secure_scores.get("ascScore").max == 39
    body = SecurityAssessment(resource_details=AzureResourceDetails(), status=AssessmentStatus(code="Healthy"))
    try:
        reader.assessments.create_or_update(RESOURCE, ASSESSMENT, body)
        raise AssertionError("no error")
    except HttpResponseError as e:
        assert e.status_code == 403, e.status_code
        assert "AuthorizationFailed" in str(e) and "Microsoft.Security/assessments/write" in str(e), str(e)


def graph_client(cred):
    return ResourceGraphClient(cred, base_url=BASE, connection_verify=CA)


owner_graph = graph_client(credential(CREDS["clientId"], CREDS["clientSecret"]))

# Microsoft Defender for Cloud blog, "Querying your Secure Score Across Multiple Subscriptions in
# Microsoft Defender for Cloud" (techcommunity.microsoft.com, October 2020), as published.
SCORE_QUERY = """SecurityResources
| where type == 'microsoft.security/securescores'
| extend current = properties.score.current, max = todouble(properties.score.max)
| project subscriptionId, current, max, percentage = ((current / max)*100)"""

# learn.microsoft.com, "Azure Resource Graph sample queries for Microsoft Defender for Cloud",
# "Controls secure score per subscription", as published.
CONTROLS_QUERY = """SecurityResources
| where type == 'microsoft.security/securescores/securescorecontrols'
| extend controlName=properties.displayName,
  controlId=properties.definition.name,
  notApplicableResourceCount=properties.notApplicableResourceCount,
  unhealthyResourceCount=properties.unhealthyResourceCount,
  healthyResourceCount=properties.healthyResourceCount,
  percentageScore=properties.score.percentage,
  currentScore=properties.score.current,
  maxScore=properties.definition.properties.maxScore,
  weight=properties.weight,
  controlType=properties.definition.properties.source.sourceType,
  controlRank=properties.definition.properties.maxScore * properties.unhealthyResourceCount
| project tenantId, subscriptionId, controlName, controlId, unhealthyResourceCount, healthyResourceCount, notApplicableResourceCount, percentageScore, currentScore, maxScore, weight, controlType, controlRank"""


@check("ResourceGraphClient.resources: the published secure score query = secure_scores.get")
def _():
    r = owner_graph.resources(QueryRequest(subscriptions=[SUB], query=SCORE_QUERY))
    assert (r.total_records, r.count, r.result_truncated) == (1, 1, "false"), r
    row = r.data[0]
    s = owner.secure_scores.get("ascScore")
    assert row["subscriptionId"] == SUB, row
    assert row["current"] == s.current and row["max"] == s.max, (row, s)
    assert abs(row["percentage"] - s.current / s.max * 100) < 1e-9, row


@check("ResourceGraphClient.resources: the published controls query = secure_score_controls.list")
def _():
    controls = {c.name: c for c in owner.secure_score_controls.list(expand="definition")}
    r = owner_graph.resources(QueryRequest(subscriptions=[SUB], query=CONTROLS_QUERY))
    assert r.total_records == len(controls), (r.total_records, len(controls))
    for row in r.data:
        c = controls[row["controlId"]]
        assert row["controlName"] == c.display_name, row
        assert row["currentScore"] == c.current and row["percentageScore"] == c.percentage, row
        assert row["unhealthyResourceCount"] == c.unhealthy_resource_count, row
        assert row["maxScore"] == c.definition.max_score, row


@check("ResourceGraphClient.resources: table format and paging with $top / $skipToken")
def _():
    q = "securityresources | project id, type | order by id asc"
    everything = owner_graph.resources(QueryRequest(query=q, options=QueryRequestOptions(top=1000)))
    table = owner_graph.resources(
        QueryRequest(query=q, options=QueryRequestOptions(top=1000, result_format="table"))
    )
    assert [c["name"] for c in table.data["columns"]] == ["id", "type"], table.data["columns"]
    assert [r[0] for r in table.data["rows"]] == [r["id"] for r in everything.data]
    seen, token = [], None
    while True:
        options = QueryRequestOptions(skip_token=token) if token else QueryRequestOptions(top=5)
        page = owner_graph.resources(QueryRequest(query=q, options=options))
        seen.extend(page.data)
        token = page.skip_token
        if not token:
            break
    assert seen == everything.data, (len(seen), everything.total_records)


@check("ResourceGraphClient.resources: a Reader sees its subscription's rows only; bad KQL is 400")
def _():
    reader = graph_client(credential(READER["clientId"], READER["clientSecret"]))
    r = reader.resources(QueryRequest(query="securityresources | summarize count() by subscriptionId"))
    assert [row["subscriptionId"] for row in r.data] == [SUB], r.data
    try:
        owner_graph.resources(QueryRequest(query="securityresources | union resources"))
        raise AssertionError("no error")
    except HttpResponseError as e:
        assert e.status_code == 400 and "union" in str(e), str(e)


# --- Management groups (azure-mgmt-managementgroups) and a management-group scope ------------
@check("management groups: create (LRO), add a subscription, read scores and assessments at the group, delete")
def _():
    from azure.core.rest import HttpRequest
    from azure.mgmt.managementgroups import models as mgm

    try:  # 2.x (TypeSpec-generated, api-version 2023-04-01)
        from azure.mgmt.managementgroups import ManagementGroupsMgmtClient as Client
    except ImportError:  # 1.x (api-version 2021-04-01; what azure-cli pins)
        from azure.mgmt.managementgroups import ManagementGroupsAPI as Client

    def props(group):
        """2.x nests a group's fields in `properties`; 1.x flattens them onto the model."""
        return getattr(group, "properties", None) or group

    cred = credential(CREDS["clientId"], CREDS["clientSecret"])
    mg = Client(cred, base_url=BASE, connection_verify=CA)
    root = CREDS["tenantId"]
    details = mgm.CreateManagementGroupDetails(
        parent=mgm.CreateParentGroupInfo(id=f"/providers/Microsoft.Management/managementGroups/{root}")
    )
    if hasattr(mgm, "CreateManagementGroupProperties"):
        request = mgm.CreateManagementGroupRequest(
            properties=mgm.CreateManagementGroupProperties(display_name="Compat", details=details)
        )
    else:
        request = mgm.CreateManagementGroupRequest(display_name="Compat", details=details)
    # A long-running operation in the spec: the server answers 200 with the group, done.
    created = mg.management_groups.begin_create_or_update("compat-mg", request).result()
    assert created.name == "compat-mg" and props(created).display_name == "Compat", created
    assert props(created).details.parent.id.endswith(root), created
    mg.management_group_subscriptions.create("compat-mg", SUB)
    got = mg.management_groups.get("compat-mg", expand="children")
    assert [c.name for c in props(got).children] == [SUB], got
    below = [s.name for s in mg.management_group_subscriptions.get_subscriptions_under_management_group("compat-mg")]
    assert below == [SUB], below
    descendants = [d.name for d in mg.management_groups.get_descendants(root)]
    assert "compat-mg" in descendants and SUB in descendants, descendants
    # The security SDK's secure score operations take no scope: its pipeline sends the raw GET.
    scope = "/providers/Microsoft.Management/managementGroups/compat-mg"
    answer = owner._client.send_request(
        HttpRequest("GET", f"{BASE}{scope}/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01")
    )
    assert answer.status_code == 200, answer.text()
    score = answer.json()
    assert score["id"] == f"{scope}/providers/Microsoft.Security/secureScores/ascScore", score
    assert score["properties"]["score"]["max"] == 39 and score["properties"]["weight"] == 67, score
    # The assessments list takes a scope, and documents a management group as one.
    listed = list(owner.assessments.list(scope))
    assert listed and all(a.id.lower().startswith(f"/subscriptions/{SUB}") for a in listed), len(listed)
    mg.management_group_subscriptions.delete("compat-mg", SUB)
    mg.management_groups.begin_delete("compat-mg").result()
    try:
        mg.management_groups.get("compat-mg")
        raise AssertionError("the deleted group is still there")
    except ResourceNotFoundError:
        pass


failed = [r for r in results if not r[1]]
print(f"sdk: {len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
sys.exit(1 if failed else 0)
