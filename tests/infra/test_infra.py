"""The Bicep templates, parsed with pycep-parser, checked for what checkov cannot see: no shared
keys, the exact role ids, every setting the code reads, and Event Grid wired to the trigger's container."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pycep import BicepParser

from payments.settings import Settings, env_names
from tests.support.host import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
_parser = BicepParser()


def parse(relative: str) -> dict:
    return _parser.parse(text=(INFRA / relative).read_text())


@pytest.mark.parametrize("path", BICEP_FILES, ids=[str(p.relative_to(INFRA)) for p in BICEP_FILES])
def test_every_bicep_file_parses(path):
    parsed = _parser.parse(text=path.read_text())
    assert parsed.get("resources") or parsed.get("modules")


def test_the_expected_templates_exist():
    names = {str(p.relative_to(INFRA)) for p in BICEP_FILES}
    assert {
        "main.bicep",
        "eventgrid.bicep",
        "graph-permission.bicep",
        "modules/storage.bicep",
        "modules/identity.bicep",
        "modules/monitoring.bicep",
        "modules/roles.bicep",
        "modules/functionapp.bicep",
    } <= names


def test_no_registry_modules():
    for path in BICEP_FILES:
        assert "br:" not in re.sub(r"//.*", "", path.read_text()), path


def test_storage_has_no_shared_key_access_and_no_public_blobs():
    props = parse("modules/storage.bicep")["resources"]["storage"]["config"]["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True


def test_no_keys_or_connection_strings_are_read_or_set():
    for path in BICEP_FILES:
        text = path.read_text()
        assert "AccountKey" not in text, path
        keys = re.findall(r"listKeys\(([^)]*)\)", text)
        # The only key read anywhere: the Functions host's blobs_extension key for the Event Grid webhook.
        assert all("/host/default" in k for k in keys), (path, keys)
    settings = _app_settings()
    assert "AzureWebJobsStorage" not in settings  # a connection string: the identity settings are used
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"


def test_role_assignments_use_the_exact_built_in_role_ids():
    roles = parse("modules/roles.bicep")
    ids = {name: var["value"] for name, var in roles["variables"].items()}
    assert ids == {
        "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
        "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    }
    text = (INFRA / "modules/roles.bicep").read_text()
    assert (
        "for roleId in [storageBlobDataOwner, storageQueueDataContributor, storageTableDataContributor]"
        in text
    )
    assert "name: guid(storage.id, principalId, roleId)" in text and "scope: storage" in text
    assert (
        "name: guid(insights.id, principalId, monitoringMetricsPublisher)" in text
        and "scope: insights" in text
    )


def _app_settings() -> dict:
    main = parse("main.bicep")["variables"]["relaySettings"]["value"]
    extra = parse("modules/functionapp.bicep")["variables"]["appSettings"]["value"]["function"]
    assert extra["type"] == "union" and extra["parameters"]["arg_1"] == "relaySettings"
    return {**main, **extra["parameters"]["arg_2"]}


# Settings the deployed app must not have, each with the reason.
NOT_DEPLOYED = {
    "storage_connection_string": "a connection string is for the local emulator only; Azure uses the identity",
}


def test_every_setting_the_code_reads_is_set_by_the_template():
    names = env_names()
    assert set(NOT_DEPLOYED) <= set(Settings.model_fields)
    required = {names[field] for field in Settings.model_fields if field not in NOT_DEPLOYED}
    settings = _app_settings()
    missing = sorted(required - set(settings))
    assert missing == [], f"set these in infra (main.bicep relaySettings or functionapp.bicep): {missing}"
    for field in NOT_DEPLOYED:
        assert names[field] not in settings


def test_template_defaults_match_the_code_defaults():
    settings = _app_settings()
    params = parse("main.bicep")["parameters"]
    defaults = Settings.model_fields
    literal = {
        name: value
        for name, value in settings.items()
        if isinstance(value, str) and value.replace(".", "").isdigit()
    }
    names = env_names()
    for field, info in defaults.items():
        env = names[field]
        if env in literal:
            assert float(literal[env]) == float(info.default), env
    assert params["inboxContainer"]["default"] == defaults["inbox_container"].default
    assert params["reportsContainer"]["default"] == defaults["reports_container"].default
    assert params["archiveContainer"]["default"] == defaults["archive_container"].default
    assert params["ledgerTable"]["default"] == defaults["ledger_table"].default
    assert params["amountSign"]["default"] == defaults["amount_sign"].default
    assert settings["PAYMENTS_CREDENTIAL"] == "managed"


def test_event_grid_subscription_targets_the_trigger_and_its_container():
    grid = parse("eventgrid.bicep")
    config = grid["resources"]["subscription"]["config"]["properties"]
    assert config["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert config["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/${inboxContainer}/"
    params = grid["parameters"]
    assert params["inboxContainer"]["default"] == Settings.model_fields["inbox_container"].default
    trigger = FUNCTIONS[params["functionName"]["default"]].get_bindings_dict()["bindings"][0]
    assert trigger["type"] == "blobTrigger" and trigger["source"] == "EventGrid"
    assert trigger["path"] == "%PAYMENTS_INBOX_CONTAINER%/{name}"
    endpoint = config["destination"]["properties"]["endpointUrl"]
    assert "/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsKey}" in endpoint
    # The hook passes the same container the app reads its trigger path from.
    hook = (INFRA / "hooks/postdeploy.sh").read_text()
    assert 'inboxContainer="${INBOX_CONTAINER}"' in hook and "eventgrid.bicep" in hook
    assert "output INBOX_CONTAINER string = inboxContainer" in (INFRA / "main.bicep").read_text()
    assert _app_settings()["PAYMENTS_INBOX_CONTAINER"] == "inboxContainer"


def test_function_app_is_flex_consumption_python_311_https_only():
    app = parse("modules/functionapp.bicep")["resources"]
    assert app["plan"]["config"]["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = app["app"]["config"]
    assert site["kind"] == "functionapp,linux"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    deployment = props["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert deployment["type"] == "UserAssignedIdentity"
    assert site["identity"]["type"] == "UserAssigned"


def test_monitoring_uses_entra_authentication_only():
    resources = parse("modules/monitoring.bicep")["resources"]
    assert resources["insights"]["config"]["properties"]["DisableLocalAuth"] is True
    assert resources["workspace"]["config"]["properties"]["features"]["disableLocalAuth"] is True
    assert (
        _app_settings()["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "ClientId=${identityClientId};Authorization=AAD"
    )


def test_outputs_name_the_app_inbox_and_identity():
    outputs = parse("main.bicep")["outputs"]
    assert {
        "FUNCTION_APP_NAME",
        "FUNCTION_APP_HOST",
        "INBOX_CONTAINER_URL",
        "RELAY_IDENTITY_CLIENT_ID",
        "RELAY_IDENTITY_PRINCIPAL_ID",
    } <= set(outputs)


def test_graph_permission_grants_business_central_api_readwrite_all():
    graph = parse("graph-permission.bicep")
    assert "microsoftGraphV1" in json.dumps(graph["extensions"])
    grant = graph["resources"]["grant"]
    assert grant["type"] == "Microsoft.Graph/appRoleAssignedTo" and grant["api_version"] == "v1.0"
    params = graph["parameters"]
    assert params["resourceAppId"]["default"] == "996def3d-b36c-4153-8607-a6fd3c01b89f"
    assert params["appRoleId"]["default"] == "a42b0b75-311e-488d-b67e-8fe84f924341"
    config = json.loads((INFRA / "bicepconfig.json").read_text())
    assert config["extensions"]["microsoftGraphV1"].startswith(
        "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:"
    )


def test_azd_project_provisions_main_and_runs_the_second_stage():
    text = (ROOT / "azure.yaml").read_text()
    assert "path: infra" in text and "module: main" in text
    assert "run: infra/hooks/postdeploy.sh" in text
    assert "host: function" in text and "language: python" in text
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(params) <= set(parse("main.bicep")["parameters"])
