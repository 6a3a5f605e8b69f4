"""The Bicep templates, parsed with pycep-parser, checked for what checkov cannot see: no shared
keys, the exact role ids, every setting the code reads, Event Grid wired to the trigger's container
with a keyless dead letter, nothing Flex Consumption rejects, resource names valid for any environment
name azd accepts, scale defaults within Business Central's limit, and the post-deploy hook's behaviour
(run against a stub `az`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
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
        "modules/alerts.bicep",
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
    "site_name": "WEBSITE_SITE_NAME is set by the platform itself (it tells the relay it runs on Azure)",
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


def test_relay_settings_name_each_setting_once():
    # A repeated key is a Bicep compile error that neither pycep nor the type check reports.
    text = (INFRA / "main.bicep").read_text()
    block = text[
        text.index("var relaySettings = {") : text.index("\n}\n", text.index("var relaySettings = {"))
    ]
    keys = re.findall(r"^  (\w+):", block, re.M)
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


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
    assert params["flowContainer"]["default"] == defaults["flow_container"].default
    assert params["deadLetterContainer"]["default"] == defaults["deadletter_container"].default
    # Deployed, every instance keeps the target's per-identity limit together (the code's default, 0,
    # is for one process on a developer's machine).
    shared = {"function": {"type": "string", "parameters": {"value_to_convert": "sharedConcurrency"}}}
    assert settings["PAYMENTS_SHARED_CONCURRENCY"] == shared
    assert params["sharedConcurrency"]["default"] == 5
    assert params["amountSign"]["default"] == defaults["amount_sign"].default
    assert settings["PAYMENTS_CREDENTIAL"] == "managed"
    # Bank statements: the same defaults as the code, and the config container is created.
    assert params["configContainer"]["default"] == defaults["config_container"].default
    assert params["bankOnAccount"]["default"] is defaults["bank_on_account"].default
    assert params["bankAmountTolerance"]["default"] == str(defaults["bank_amount_tolerance"].default)
    assert params["bankDocumentNumbers"]["default"] == defaults["bank_document_numbers"].default
    assert (
        "configContainer" in (INFRA / "modules" / "storage.bicep").read_text().split("for container in [")[1]
    )


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


def test_telemetry_is_switched_on_as_opentelemetry_for_host_and_worker():
    """The host sends OpenTelemetry (host.json), the worker configures the distro with the identity when
    the standard settings say so: the connection string names the component, no key is involved."""
    import json

    assert json.loads((ROOT / "host.json").read_text())["telemetryMode"] == "OpenTelemetry"
    settings = _app_settings()
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    # The worker configures the distro: the relay's loggers only, none of the automatic instrumentations.
    assert settings["PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"] == "payments"
    assert settings["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"  # one whole trace when the host samples
    from payments.telemetry.setup import INSTRUMENTATIONS

    assert set(settings["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"].split(",")) == set(INSTRUMENTATIONS)
    assert "appInsightsConnectionString" in str(settings["APPLICATIONINSIGHTS_CONNECTION_STRING"])


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
    grant = graph["resources"]["grants"]
    assert grant["type"] == "Microsoft.Graph/appRoleAssignedTo" and grant["api_version"] == "v1.0"
    # One grant for the relay identity and one for each further identity it calls Business Central as.
    assert "union([principalId], principalIds)" in (INFRA / "graph-permission.bicep").read_text()
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


# -- Flex Consumption: what the site must not carry -------------------------------------------------

# siteConfig properties newer Flex Consumption stamps reject (ARM error 51021) or that are App Service
# web-server settings Flex Consumption does not apply; none may come back.
FLEX_REJECTED_OR_INERT_SITE_CONFIG = {
    "ftpsState",  # 51021 on newer stamps; FTP is off through basicPublishingCredentialsPolicies
    "http20Enabled",
    "remoteDebuggingEnabled",
    "remoteDebuggingVersion",
    "httpLoggingEnabled",
    "detailedErrorLoggingEnabled",
    "requestTracingEnabled",
    "requestTracingExpirationTime",
    "logsDirectorySizeLimit",
    "alwaysOn",
    "linuxFxVersion",
    "use32BitWorkerProcess",
    "netFrameworkVersion",
    "preWarmedInstanceCount",
    "functionsRuntimeScaleMonitoringEnabled",
    "minimumElasticInstanceCount",
    "functionAppScaleLimit",
}
# App settings Flex Consumption must not be given (REFERENCE section 5).
FLEX_FORBIDDEN_APP_SETTINGS = (
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
)


def test_site_config_holds_nothing_flex_consumption_rejects_or_ignores():
    resources = parse("modules/functionapp.bicep")["resources"]
    site_config = resources["app"]["config"]["properties"]["siteConfig"]
    assert set(site_config) == {"minTlsVersion", "scmMinTlsVersion", "appSettings"}
    assert not FLEX_REJECTED_OR_INERT_SITE_CONFIG & set(site_config)
    text = re.sub(r"//.*", "", (INFRA / "modules/functionapp.bicep").read_text())
    for name in FLEX_REJECTED_OR_INERT_SITE_CONFIG:
        assert not re.search(rf"\b{name}\s*:", text), name
    # FTP and basic-auth publishing stay off, the Flex Consumption way.
    policies = {
        r["config"]["name"]: r["config"]["properties"]["allow"]
        for r in resources.values()
        if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert policies == {"ftp": False, "scm": False}
    settings = _app_settings()
    assert not [s for s in settings if s in FLEX_FORBIDDEN_APP_SETTINGS or s.startswith("WEBSITE_CONTENT")]


def test_checkov_suppressions_for_removed_site_settings_give_the_flex_reason():
    text = (INFRA / "modules/functionapp.bicep").read_text()
    for check, reason in {
        "CKV_AZURE_78": "51021",
        "CKV_AZURE_18": "Flex Consumption",
        "CKV_AZURE_67": "Flex Consumption",
    }.items():
        line = re.search(rf"checkov:skip={check}:(.*)", text)
        assert line and reason in line.group(1), check


# -- Storage redundancy ------------------------------------------------------------------------------

STORAGE_SKUS = [
    "Standard_LRS",
    "Standard_ZRS",
    "Standard_GRS",
    "Standard_RAGRS",
    "Standard_GZRS",
    "Standard_RAGZRS",
]


def _allowed(param: dict) -> list:
    return next(d["argument"] for d in param["decorators"] if d["type"] == "allowed")


def _decorator(param: dict, kind: str):
    return next((d["argument"] for d in param["decorators"] if d["type"] == kind), None)


def test_storage_sku_is_a_parameter_whose_default_every_flex_region_can_create():
    main = parse("main.bicep")
    sku = main["parameters"]["storageSku"]
    # Standard_LRS: ZRS/GZRS need availability zones, which some Flex Consumption regions lack.
    assert sku["default"] == "Standard_LRS"
    assert _allowed(sku) == STORAGE_SKUS
    assert main["modules"]["storage"]["config"]["params"]["skuName"] == "storageSku"
    module = parse("modules/storage.bicep")
    assert _allowed(module["parameters"]["skuName"]) == STORAGE_SKUS
    assert module["parameters"]["skuName"]["default"] == "Standard_LRS"
    assert module["resources"]["storage"]["config"]["sku"] == {"name": "skuName"}
    # azd fills it from the environment, with the same default.
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["storageSku"]["value"] == "${RELAY_STORAGE_SKU=Standard_LRS}"
    # The default is explained where it is set.
    assert "Standard_LRS by default because" in (INFRA / "main.bicep").read_text()


# -- Resource names from any environment name azd accepts ---------------------------------------------

# azd's own check of an environment name (azure-dev, pkg/environment: EnvironmentNameRegexp).
AZD_ENVIRONMENT_NAME = re.compile(r"^[a-zA-Z0-9\-()_.]{1,64}$")

AWKWARD_ENVIRONMENT_NAMES = [
    "dev",
    "Prod",
    "a",
    "_",
    ".",
    "(x)",
    "my_env",
    "team.payments",
    "payments(eu)",
    "-leading",
    "trailing-",
    "A-B_C.D(E)",
    "((((((((((((((((",
    "payments-relay-production-westeurope-2024",
    "x" * 64,
    "0" * 64,
    ("UPPER_CASE.with.dots(and)parens-and-hyphens_and_underscores" * 2)[:64],
]


class _Bicep:
    """Evaluates the Bicep expressions resource names are built from: string literals with
    interpolation, variables, parameters, property access and the functions the templates use.
    Anything else raises, so a template that starts using another function fails here loudly
    instead of being checked against a guess. uniqueString is a stand-in with the real function's
    shape (13 lower-case letters and digits, determined by its arguments)."""

    SUBSCRIPTION_ID = "/subscriptions/00000000-0000-0000-0000-000000000000"
    RESOURCE_GROUP_ID = SUBSCRIPTION_ID + "/resourceGroups/rg-payments"

    def __init__(self, text: str, values: dict):
        self.vars = dict(re.findall(r"^var (\w+) = (.+)$", text, re.M))
        self.values = dict(values)

    def value(self, name: str):
        if name not in self.values:
            if name not in self.vars:
                raise KeyError(f"{name}: neither a given value nor a single-line var")
            self.values[name] = self.eval(self.vars[name])
        return self.values[name]

    def eval(self, source: str):
        outer = getattr(self, "src", None), getattr(self, "pos", 0)  # a variable met mid-expression
        self.src, self.pos = source.strip(), 0
        try:
            result = self._expr()
            self._space()
            assert self.pos == len(self.src), f"unparsed: {self.src[self.pos :]!r}"
            return result
        finally:
            self.src, self.pos = outer

    # -- a small recursive-descent parser that evaluates as it goes
    def _space(self):
        while self.pos < len(self.src) and self.src[self.pos] in " \t":
            self.pos += 1

    def _peek(self, s: str) -> bool:
        self._space()
        return self.src.startswith(s, self.pos)

    def _take(self, s: str):
        assert self._peek(s), f"expected {s!r} at {self.src[self.pos :]!r}"
        self.pos += len(s)

    def _expr(self):  # condition ? a : b  (both branches are parsed; only the chosen one matters)
        value = self._or()
        if self._peek("?") and not self._peek("??"):
            self._take("?")
            then = self._expr()
            self._take(":")
            otherwise = self._expr()
            return then if value else otherwise
        return value

    def _or(self):
        value = self._and()
        while self._peek("||"):
            self._take("||")
            right = self._and()
            value = value or right
        return value

    def _and(self):
        value = self._comparison()
        while self._peek("&&"):
            self._take("&&")
            right = self._comparison()
            value = value and right
        return value

    def _comparison(self):
        value = self._unary()
        for op, test in (
            ("==", lambda a, b: a == b),
            ("!=", lambda a, b: a != b),
            ("<=", lambda a, b: a <= b),
            (">=", lambda a, b: a >= b),
            ("<", lambda a, b: a < b),
            (">", lambda a, b: a > b),
        ):
            if self._peek(op):
                self._take(op)
                return test(value, self._unary())
        return value

    def _unary(self):
        if self._peek("!") and not self._peek("!="):
            self._take("!")
            return not self._unary()
        value = self._primary()
        while self._peek("."):
            self._take(".")
            value = value[self._ident()]
        return value

    def _ident(self) -> str:
        self._space()
        match = re.compile(r"[A-Za-z_]\w*").match(self.src, self.pos)
        assert match, f"identifier expected at {self.src[self.pos :]!r}"
        self.pos = match.end()
        return match.group()

    def _primary(self):
        self._space()
        char = self.src[self.pos]
        if char == "'":
            return self._string()
        if char.isdigit():
            match = re.compile(r"\d+").match(self.src, self.pos)
            self.pos = match.end()
            return int(match.group())
        if char == "(":
            self._take("(")
            value = self._expr()
            self._take(")")
            return value
        name = self._ident()
        if self._peek("("):
            self._take("(")
            args = []
            while not self._peek(")"):
                args.append(self._expr())
                if self._peek(","):
                    self._take(",")
            self._take(")")
            return self._call(name, args)
        return self.value(name)

    def _string(self) -> str:
        self._take("'")
        out = []
        escapes = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "$": "$"}
        while True:
            char = self.src[self.pos]
            if char == "'":
                self.pos += 1
                return "".join(out)
            if char == "\\":
                out.append(escapes[self.src[self.pos + 1]])
                self.pos += 2
            elif self.src.startswith("${", self.pos):
                self.pos += 2
                out.append(str(self._expr()))
                self._take("}")
            else:
                out.append(char)
                self.pos += 1

    def _call(self, name: str, args: list):
        if name == "toLower":
            return args[0].lower()
        if name == "toUpper":
            return args[0].upper()
        if name == "replace":
            return args[0].replace(args[1], args[2])
        if name == "take":
            return args[0][: max(args[1], 0)]
        if name == "length":
            return len(args[0])
        if name == "empty":
            return len(args[0]) == 0
        if name == "uniqueString":
            digest = hashlib.sha256("|".join(args).encode()).digest()
            alphabet = "abcdefghijklmnopqrstuvwxyz234567"
            return "".join(alphabet[b % 32] for b in digest[:13])
        if name == "subscription" and not args:
            return {"id": self.SUBSCRIPTION_ID}
        if name == "resourceGroup" and not args:
            return {"id": self.RESOURCE_GROUP_ID, "location": "westeurope"}
        raise NotImplementedError(f"Bicep function {name}() is not evaluated by this test: add it")


def _block(text: str, header: str) -> str:
    """The body of the top-level declaration starting with `header` (up to its closing brace)."""
    start = text.index(header)
    end = text.index("\n}\n", start)
    return text[start:end]


def _name_expr(relative: str, symbol: str) -> str:
    """The `name:` expression of a resource declared in a template, as written."""
    block = _block((INFRA / relative).read_text(), f"resource {symbol} ")
    return re.search(r"^  name: (.+)$", block, re.M).group(1)


def _module_params(symbol: str) -> dict:
    block = _block((INFRA / "main.bicep").read_text(), f"module {symbol} ")
    return dict(re.findall(r"^    (\w+): (.+)$", block, re.M))


def resource_names(environment_name: str, **overrides: str) -> dict:
    """Every resource name main.bicep and its modules would produce for this environment name
    (the name parameters at their defaults unless given)."""
    defaults = {
        name: param["default"]
        for name, param in parse("main.bicep")["parameters"].items()
        if name in ("storageAccountName", "functionAppName")
    }
    main = _Bicep(
        (INFRA / "main.bicep").read_text(), {**defaults, **overrides, "environmentName": environment_name}
    )

    def in_module(symbol: str, relative: str, resource: str) -> str:
        params = {k: main.eval(v) for k, v in _module_params(symbol).items() if k == "name"}
        return _Bicep((INFRA / relative).read_text(), params).eval(_name_expr(relative, resource))

    return {
        "token": main.value("token"),
        "storage": in_module("storage", "modules/storage.bicep", "storage"),
        "topic": in_module("storage", "modules/storage.bicep", "topic"),
        "app": in_module("functionApp", "modules/functionapp.bicep", "app"),
        "plan": in_module("functionApp", "modules/functionapp.bicep", "plan"),
        "identity": in_module("identity", "modules/identity.bicep", "identity"),
        "workspace": in_module("monitoring", "modules/monitoring.bicep", "workspace"),
        "insights": in_module("monitoring", "modules/monitoring.bicep", "insights"),
    }


# Azure's naming rules for each resource type (resource-name-rules), as regular expressions.
NAME_RULES = {
    "storage": r"[a-z0-9]{3,24}",  # Microsoft.Storage/storageAccounts
    "app": r"[a-zA-Z0-9][a-zA-Z0-9-]{0,58}[a-zA-Z0-9]",  # Microsoft.Web/sites, 2-60
    "plan": r"[a-zA-Z0-9-]{1,60}",  # Microsoft.Web/serverfarms
    "identity": r"[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}",  # Microsoft.ManagedIdentity/userAssignedIdentities
    "workspace": r"[a-zA-Z0-9][a-zA-Z0-9-]{2,61}[a-zA-Z0-9]",  # Microsoft.OperationalInsights/workspaces
    "insights": r"[^%&\\?/\x00-\x1f]{0,259}[^%&\\?/\x00-\x1f. ]",  # Microsoft.Insights/components
    "topic": r"[a-zA-Z0-9-]{3,128}",  # Microsoft.EventGrid/systemTopics
}


@pytest.mark.parametrize("environment_name", AWKWARD_ENVIRONMENT_NAMES)
def test_resource_names_are_valid_and_keep_the_uniqueness_token(environment_name):
    assert AZD_ENVIRONMENT_NAME.match(environment_name)  # a name azd itself accepts
    names = resource_names(environment_name)
    token = names.pop("token")
    assert re.fullmatch(r"[a-z0-9]{13}", token)
    for kind, name in names.items():
        assert re.fullmatch(NAME_RULES[kind], name), (kind, name)
    # Globally unique names carry the whole token, whatever the environment name's length.
    assert names["storage"].endswith(token)
    assert names["app"].endswith(token)
    # The Functions host ID is the app name's first 32 characters: it must hold the token too.
    assert len(names["app"]) <= 32
    assert names["topic"] == names["storage"] + "-events"


def test_environment_names_that_sanitize_alike_still_get_distinct_resources():
    # Same resource group, names that differ only in characters replaced, or beyond the part kept.
    for group in (("pay_ments", "pay.ments", "pay-ments", "pay(ments"), ("a" * 41 + "x", "a" * 41 + "y")):
        names = [resource_names(n) for n in group]
        for kind in names[0]:
            assert len({n[kind] for n in names}) == len(group), (kind, group)


def test_a_plain_environment_name_keeps_the_resource_group_names_it_had():
    # A new identity would need its Business Central grant again; these names stay as they were.
    names = resource_names("payments-prod")
    assert (names["identity"], names["workspace"], names["insights"]) == (
        "pay-payments-prod-id",
        "pay-payments-prod-logs",
        "pay-payments-prod-insights",
    )


def test_existing_storage_account_and_app_names_can_be_kept():
    names = resource_names(
        "payments-prod",
        storageAccountName="paypaymentsprodabcdefghi",
        functionAppName="pay-payments-prod-abcdef",
    )
    assert (
        names["storage"] == "paypaymentsprodabcdefghi" and names["topic"] == "paypaymentsprodabcdefghi-events"
    )
    assert names["app"] == "pay-payments-prod-abcdef" and names["plan"] == "pay-payments-prod-abcdef-plan"
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["storageAccountName"]["value"] == "${RELAY_STORAGE_ACCOUNT_NAME=}"
    assert params["functionAppName"]["value"] == "${RELAY_FUNCTION_APP_NAME=}"
    main = parse("main.bicep")["parameters"]
    assert main["storageAccountName"]["default"] == "" and main["functionAppName"]["default"] == ""


def test_environment_name_accepts_everything_azd_accepts():
    param = parse("main.bicep")["parameters"]["environmentName"]
    assert _decorator(param, "min_length") == 1 and _decorator(param, "max_length") == 64


# -- Event Grid: GA api-versions, dead-lettering, retries ---------------------------------------------

TYPECHECK_TYPES = ROOT.parent / "shared" / "tools" / "bicep-typecheck" / "types"


def _event_grid_resources() -> list[tuple[str, str, dict]]:
    found = []
    for path in BICEP_FILES:
        if path.name == "graph-permission.bicep":
            continue
        for symbol, resource in (_parser.parse(text=path.read_text()).get("resources") or {}).items():
            if resource["type"].startswith("Microsoft.EventGrid/"):
                found.append((f"{path.relative_to(INFRA)}:{symbol}", resource["api_version"], resource))
    return found


def test_every_event_grid_resource_uses_a_ga_api_version():
    resources = _event_grid_resources()
    assert {r[0] for r in resources} >= {
        "modules/storage.bicep:topic",
        "eventgrid.bicep:topic",
        "eventgrid.bicep:subscription",
    }
    for where, version, _ in resources:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", version), (where, version)  # no -preview
    if TYPECHECK_TYPES.is_dir():  # the type checker must have data for it (it reports a finding otherwise)
        for where, version, _ in resources:
            assert (TYPECHECK_TYPES / f"eventgrid_microsoft.eventgrid_{version}.json").is_file(), (
                where,
                version,
            )


def test_undeliverable_events_are_dead_lettered_with_the_topics_identity():
    grid = parse("eventgrid.bicep")
    props = grid["resources"]["subscription"]["config"]["properties"]
    dead = props["deadLetterWithResourceIdentity"]
    assert dead["identity"] == {"type": "SystemAssigned"}
    destination = dead["deadLetterDestination"]
    assert destination["endpointType"] == "StorageBlob"
    assert destination["properties"]["blobContainerName"] == "deadLetterContainer"
    assert "deadLetterDestination" not in props  # not the identity-less form
    assert grid["parameters"]["deadLetterContainer"]["default"] == "payments-deadletter"
    # Retries within Event Grid's limits (at most 30 attempts, 24 hours), then the dead letter.
    retry = props["retryPolicy"]
    assert 1 <= retry["maxDeliveryAttempts"] <= 30
    assert 1 <= retry["eventTimeToLiveInMinutes"] <= 1440
    # The container exists, and the topic's identity may write to it and to nothing else.
    storage = parse("modules/storage.bicep")["resources"]
    assert storage["topic"]["config"]["identity"] == {"type": "SystemAssigned"}
    assert storage["deadLetter"]["config"]["name"] == "deadLetterContainer"
    assert storage["deadLetter"]["config"]["properties"] == {"publicAccess": "None"}
    grant = storage["deadLetterWriter"]["config"]
    assert grant["scope"] == "deadLetter"
    role = grant["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert (
        parse("modules/storage.bicep")["variables"][role]["value"] == "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    )
    principal = grant["properties"]["principalId"]["operator"]["operands"]
    assert principal["operand_1"] == "topic"
    assert principal["operand_2"]["operator"]["operands"] == {
        "operand_1": "identity",
        "operand_2": "principalId",
    }
    # main.bicep names the container, creates it through the module and hands it to the hook.
    main = parse("main.bicep")
    assert main["parameters"]["deadLetterContainer"]["default"] == "payments-deadletter"
    assert main["modules"]["storage"]["config"]["params"]["deadLetterContainer"] == "deadLetterContainer"
    assert "output DEADLETTER_CONTAINER string = deadLetterContainer" in (INFRA / "main.bicep").read_text()
    assert 'deadLetterContainer="${DEADLETTER_CONTAINER}"' in (INFRA / "hooks/postdeploy.sh").read_text()
    # The relay reads the same container (it re-drives what was dead-lettered).
    if "deadletter_container" in Settings.model_fields:
        assert Settings.model_fields["deadletter_container"].default == "payments-deadletter"
        assert _app_settings()["PAYMENTS_DEADLETTER_CONTAINER"] == "deadLetterContainer"


# -- Scale: what Business Central sees ----------------------------------------------------------------

BUSINESS_CENTRAL_REQUESTS_AT_ONCE = 5  # per user or service principal (operational limits)


def test_scale_defaults_keep_each_scale_group_within_business_centrals_limit():
    main = parse("main.bicep")["parameters"]
    instances = main["maximumInstanceCount"]["default"]
    http_concurrency = main["httpPerInstanceConcurrency"]["default"]
    in_process = main["maxConcurrency"]["default"]
    # Webhook calls running at once across the HTTP scale group.
    assert instances * http_concurrency <= BUSINESS_CENTRAL_REQUESTS_AT_ONCE
    # Requests in flight from one scale group: each instance's worker holds at most
    # PAYMENTS_MAX_CONCURRENCY, whatever the number of invocations it runs.
    assert instances * in_process <= BUSINESS_CENTRAL_REQUESTS_AT_ONCE
    for name in ("maximumInstanceCount", "httpPerInstanceConcurrency"):
        assert (_decorator(main[name], "min_value"), _decorator(main[name], "max_value")) == (1, 1000), name
    # azd fills both from the environment, with the same defaults.
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["maximumInstanceCount"]["value"] == f"${{RELAY_MAX_INSTANCES={instances}}}"
    assert params["httpPerInstanceConcurrency"]["value"] == f"${{RELAY_HTTP_CONCURRENCY={http_concurrency}}}"
    # They reach the Flex Consumption settings that enforce them.
    passed = parse("main.bicep")["modules"]["functionApp"]["config"]["params"]
    assert passed["maximumInstanceCount"] == "maximumInstanceCount"
    assert passed["httpPerInstanceConcurrency"] == "httpPerInstanceConcurrency"
    module = parse("modules/functionapp.bicep")
    scale = module["resources"]["app"]["config"]["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["triggers"] == {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}}
    assert module["parameters"]["maximumInstanceCount"]["default"] == instances
    assert module["parameters"]["httpPerInstanceConcurrency"]["default"] == http_concurrency
    # The product's meaning is written down next to the parameters.
    text = (INFRA / "main.bicep").read_text()
    assert (
        "maximumInstanceCount x httpPerInstanceConcurrency = the most webhook calls running at once" in text
    )
    assert "requests in flight to the target <= maximumInstanceCount x 5" in text
    # Only the queue function sends to the target: an instance runs at most batchSize messages at once
    # (newBatchThreshold 0: no new batch before the last one finished), and the shared limit holds across
    # instances whatever their number.
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert queues["newBatchThreshold"] == 0
    assert instances * queues["batchSize"] <= BUSINESS_CENTRAL_REQUESTS_AT_ONCE
    assert 0 < main["sharedConcurrency"]["default"] <= BUSINESS_CENTRAL_REQUESTS_AT_ONCE
    assert main["workQueue"]["default"], "the template turns the work queue on"


# -- The post-deploy hook ------------------------------------------------------------------------------

HOOK = INFRA / "hooks" / "postdeploy.sh"

STUB_AZ = r"""#!/usr/bin/env bash
# Records each call (arguments separated by US), answers like az for the two commands the hook uses.
{ printf '%s\x1f' "$@"; printf '\n'; } >> "$STUB_LOG"
if [ -n "${STUB_FAIL:-}" ]; then
  echo "$STUB_FAIL" >&2
  exit 1
fi
if [ "$1 $2 $3" = "functionapp keys list" ]; then
  calls=$(( $(cat "$STUB_DIR/key-calls" 2>/dev/null || echo 0) + 1 ))
  echo "$calls" > "$STUB_DIR/key-calls"
  if [ "$calls" -gt "${STUB_KEY_AFTER:-0}" ]; then
    echo '["blobs_extension", "durabletask_extension"]'
  else
    echo '[]'
  fi
fi
"""


def _run_hook(
    tmp_path: Path, key_after: int, **env: str
) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "az").write_text(STUB_AZ)
    (stubs / "curl").write_text("#!/usr/bin/env bash\nexit 0\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    log = tmp_path / "az.log"
    environment = {
        "PATH": f"{stubs}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "STUB_LOG": str(log),
        "STUB_DIR": str(tmp_path),
        "STUB_KEY_AFTER": str(key_after),
        "AZURE_SUBSCRIPTION_ID": "11111111-2222-3333-4444-555555555555",
        "AZURE_RESOURCE_GROUP": "rg-azd-deployed",
        "FUNCTION_APP_NAME": "pay-dev-abcdefghijklm",
        "FUNCTION_APP_HOST": "pay-dev-abcdefghijklm.azurewebsites.net",
        "EVENT_GRID_TOPIC_NAME": "paydevabcdefghijklm-events",
        "INBOX_CONTAINER": "payments-inbox",
        "DEADLETTER_CONTAINER": "payments-deadletter",
        "RELAY_KEY_POLL_SECONDS": "0",
        **env,
    }
    run = subprocess.run([bash, str(HOOK)], env=environment, capture_output=True, text=True, timeout=60)
    calls = [line.split("\x1f")[:-1] for line in log.read_text().splitlines()] if log.exists() else []
    return run, calls


def _option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def test_postdeploy_hook_targets_the_subscription_and_group_azd_deployed_to(tmp_path):
    run, calls = _run_hook(tmp_path, key_after=0)
    assert run.returncode == 0, run.stderr
    assert calls, "the hook called az"
    for call in calls:  # never az's own default subscription
        assert _option(call, "--subscription") == "11111111-2222-3333-4444-555555555555", call
        assert _option(call, "--resource-group") == "rg-azd-deployed", call
    deploy = calls[-1]
    assert deploy[:3] == ["deployment", "group", "create"]
    assert deploy[deploy.index("--template-file") + 1].endswith("eventgrid.bicep")
    assert "deadLetterContainer=payments-deadletter" in deploy
    assert "inboxContainer=payments-inbox" in deploy


def test_postdeploy_hook_waits_for_the_blobs_extension_key_before_deploying(tmp_path):
    run, calls = _run_hook(tmp_path, key_after=3)
    assert run.returncode == 0, run.stderr
    kinds = [" ".join(call[:3]) for call in calls]
    assert kinds == ["functionapp keys list"] * 4 + ["deployment group create"]
    # Only the key names are asked for, never their values.
    assert {_option(call, "--query") for call in calls[:4]} == {"keys(systemKeys || `{}`)"}
    assert "waiting for the Functions host" in run.stdout


def test_postdeploy_hook_gives_up_with_a_clear_message(tmp_path):
    run, calls = _run_hook(tmp_path, key_after=10**6, RELAY_KEY_WAIT_SECONDS="0")
    assert run.returncode == 1
    assert (
        "timed out after 0s waiting for the blobs_extension system key of pay-dev-abcdefghijklm" in run.stderr
    )
    assert "azd hooks run postdeploy" in run.stderr
    assert all(call[:3] != ["deployment", "group", "create"] for call in calls)


def test_postdeploy_hook_shows_azs_last_error_when_it_gives_up(tmp_path):
    run, _ = _run_hook(
        tmp_path,
        key_after=0,
        RELAY_KEY_WAIT_SECONDS="0",
        STUB_FAIL="ERROR: Please run 'az login' to setup account.",
    )
    assert run.returncode == 1
    assert "Last error from az functionapp keys list:\nERROR: Please run 'az login'" in run.stderr


def test_postdeploy_hook_refuses_to_run_without_azds_subscription(tmp_path):
    run, calls = _run_hook(tmp_path, key_after=0, AZURE_SUBSCRIPTION_ID="")
    assert run.returncode == 1
    assert "AZURE_SUBSCRIPTION_ID is not set" in run.stderr
    assert calls == []


# -- ./dev test runs the Bicep type check where the tool is --------------------------------------------


def _dev_typecheck_step() -> str:
    text = (ROOT / "dev").read_text()
    branch = text[text.index("  test)") : text.index(";;", text.index("  test)"))]
    start = branch.index("if [ -x ../shared/tools/bicep-typecheck/run ]")
    return branch[start : branch.index("\n    fi", start) + len("\n    fi")]


def test_dev_test_runs_the_bicep_type_check_when_the_tool_is_beside_the_repo(tmp_path):
    bash = shutil.which("bash") or pytest.skip("bash is not installed")
    repo = tmp_path / "clone"
    repo.mkdir()
    tool = tmp_path / "shared" / "tools" / "bicep-typecheck" / "run"
    tool.parent.mkdir(parents=True)
    tool.write_text('#!/usr/bin/env bash\necho "type check of $1"\nexit 3\n')
    tool.chmod(0o755)
    run = subprocess.run(
        [bash, "-c", "set -euo pipefail\n" + _dev_typecheck_step()], cwd=repo, capture_output=True, text=True
    )
    assert run.stdout.strip() == "type check of infra" and run.returncode == 3  # its failure fails ./dev test


def test_dev_test_says_it_skipped_the_type_check_when_the_tool_is_absent(tmp_path):
    bash = shutil.which("bash") or pytest.skip("bash is not installed")
    repo = tmp_path / "clone"
    repo.mkdir()
    run = subprocess.run(
        [bash, "-c", "set -euo pipefail\n" + _dev_typecheck_step()], cwd=repo, capture_output=True, text=True
    )
    assert run.returncode == 0
    assert len(run.stdout.splitlines()) == 1 and "bicep type check skipped" in run.stdout


# -- callers: Entra ID in front, signed webhooks beside it, secrets in Key Vault ----------------------


def test_app_service_authentication_requires_entra_tokens_for_the_relays_registration():
    auth = parse("modules/functionapp.bicep")["resources"]["auth"]["config"]
    assert auth["name"] == "authsettingsV2" and auth["parent"] == "app"
    props = auth["properties"]
    assert props["platform"]["enabled"] is True
    validation = props["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    # Signed senders hold no token; Event Grid delivers to the blob extension with its system key.
    assert {"/api/webhooks", "/api/webhooks/*", "/runtime/webhooks/blobs"} == set(validation["excludedPaths"])
    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["registration"]["clientId"] == "apiClientId"
    assert "clientSecretSettingName" not in aad["registration"]  # keyless: token validation only
    assert aad["validation"]["allowedAudiences"] == ["api://${apiClientId}", "apiClientId"]
    assert (
        aad["validation"]["defaultAuthorizationPolicy"]["allowedApplications"] == "allowedClientApplications"
    )
    assert props["login"]["tokenStore"]["enabled"] is False


def test_the_relay_checks_callers_itself_with_the_same_registration():
    settings = _app_settings()
    assert settings["PAYMENTS_INBOUND_AUTH"] == "entra"
    assert settings["PAYMENTS_AUTH_VERIFY_TOKEN"] == "true"
    audiences = settings["PAYMENTS_AUTH_AUDIENCES"]["function"]
    assert audiences["type"] == "join"
    params = parse("main.bicep")["parameters"]
    assert params["callerRole"]["default"] == Settings.model_fields["auth_role"].default
    assert (
        params["webhookToleranceSeconds"]["default"]
        == Settings.model_fields["webhook_tolerance_seconds"].default
    )
    assert params["webhookTable"]["default"] == Settings.model_fields["webhook_table"].default
    tables = parse("modules/storage.bicep")["resources"]
    assert tables["webhooks"]["config"]["name"] == "webhookTable"


def test_sender_secrets_are_key_vault_references_resolved_with_the_identity():
    app = parse("modules/functionapp.bicep")
    senders = app["variables"]["senderSettings"]["value"]
    assert senders["loop_type"]["detail"] == {"item_name": "sender", "array_name": "webhookSenders"}
    assert (
        senders["config"]["value"]
        == "@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=webhook-${sender})"
    )
    assert senders["config"]["name"] == "PAYMENTS_WEBHOOK_SECRET_${toUpper(replace(sender, '-', '_'))}"
    assert app["resources"]["app"]["config"]["properties"]["keyVaultReferenceIdentity"] == "identityId"
    vault = parse("modules/keyvault.bicep")
    props = vault["resources"]["vault"]["config"]["properties"]
    assert props["enableRbacAuthorization"] is True and props["enablePurgeProtection"] is True
    assert vault["variables"]["keyVaultSecretsUser"]["value"] == "4633458b-17de-408a-b874-0445c86b69e6"
    text = (INFRA / "modules/keyvault.bicep").read_text()
    assert "scope: vault" in text and "principalType: 'ServicePrincipal'" in text


def test_the_app_registration_has_the_role_for_applications_and_no_credential():
    api = parse("api-registration.bicep")
    app = api["resources"]["api"]["config"]
    [role] = app["appRoles"]
    assert role["allowedMemberTypes"] == ["Application"] and role["value"] == "callerRole"
    assert api["parameters"]["callerRole"]["default"] == Settings.model_fields["auth_role"].default
    assert "passwordCredentials" not in app and "keyCredentials" not in app
    assert api["resources"]["apiPrincipal"]["config"]["appRoleAssignmentRequired"] is True


# -- alerts and the workbook: what the telemetry contract says, keyless --------------------------------

# The custom metrics the relay emits (azure-monitor-opentelemetry, customMetrics), with their dimensions
# and the values those take where the contract fixes them.
METRICS = {
    "payments.received": {
        "entry_point": {"webhook", "file", "statement", "review"},
        "target": {"graph", "businesscentral"},
    },
    "payments.outcome": {
        "entry_point": {"webhook", "file", "statement", "review"},
        "target": {"graph", "businesscentral"},
        "outcome": {
            "created",
            "skipped",
            "rejected",
            "ambiguous",
            "invalid",
            "unavailable",
            "denied",
            "in-flight",
            "conflict",
            "accepted",
            "review",
        },
    },
    "target.requests": {"operation": {"insert", "batch", "read"}, "method": None, "status": None},
    "target.throttled": {"operation": {"insert", "batch", "read"}},
    "target.retries": {"operation": {"insert", "batch", "read"}},
    "target.duration": {"operation": {"insert", "batch", "read"}, "status": None},
    "queue.depth": {"queue": {"work", "poison", "deadletter"}},
    "bank.review_rows": {"entry_point": {"webhook", "file", "statement", "review"}},
}
FUNNEL = ["received", "created", "skipped", "rejected", "ambiguous", "invalid", "review"]
WORKBOOK = INFRA / "workbooks" / "payments-relay.json"
# rule symbol -> what its query must say (the contract's names and values), its window and its threshold
RULES = {
    "ambiguousRule": (
        ['name == "payments.outcome"', 'tostring(customDimensions.outcome) == "ambiguous"', "sum(valueSum)"],
        "PT15M",
        0,
    ),
    "poisonRule": (
        ['name == "queue.depth"', "tostring(customDimensions.queue)", 'queue in ("poison", "deadletter")'],
        "PT15M",
        0,
    ),
    "throttledRule": (['name == "target.throttled"', "sum(valueSum)"], "PT15M", "throttledThreshold"),
    "failedRule": (["requests", "where success == false"], "PT15M", 0),
}


def _alerts() -> dict:
    return parse("modules/alerts.bicep")


def _accessor(value: dict) -> str:
    operands = value["operator"]["operands"]
    assert value["operator"]["type"] == "property_accessor"
    return f"{operands['operand_1']}.{operands['operand_2']}"


def _kql_names_and_values(query: str) -> tuple[set, set]:
    """Metric names a query filters on (name == / name in) and the dimension values it compares with."""
    names = set(re.findall(r'\bname == "([^"]+)"', query))
    for group in re.findall(r"\bname in \(([^)]*)\)", query):
        names |= set(re.findall(r'"([^"]+)"', group))
    values = set(re.findall(r'customDimensions\.(\w+)\) == "([^"]+)"', query))
    values |= set(re.findall(r'\b(outcome|queue|operation|status|entry_point|target) [!=]= "([^"]+)"', query))
    for dimension, group in re.findall(
        r"\b(outcome|queue|operation|entry_point|target) !?in \(([^)]*)\)", query
    ):
        values |= {(dimension, v) for v in re.findall(r'"([^"]+)"', group)}
    return names, values


def _assert_within_contract(query: str) -> None:
    names, values = _kql_names_and_values(query)
    assert names, query
    assert names <= set(METRICS), names - set(METRICS)
    known = {(d, v) for dims in METRICS.values() for d, vs in dims.items() for v in (vs or ())}
    assert values <= known, values - known


def test_the_alert_rules_are_log_search_alerts_over_the_contracts_metrics():
    resources = _alerts()["resources"]
    rules = {k: r for k, r in resources.items() if r["type"] == "Microsoft.Insights/scheduledQueryRules"}
    assert set(rules) == {*RULES, "silenceRule"}
    rules.pop("silenceRule")  # its own test below: it fires on what does not arrive
    for symbol, (phrases, window, threshold) in RULES.items():
        rule = rules[symbol]
        assert rule["api_version"] == "2023-12-01", symbol  # the current GA version
        config = rule["config"]
        assert config["kind"] == "LogAlert"
        # Keyless and minimal: no identity (the rule queries only the component it is scoped to).
        assert "identity" not in config, symbol
        props = config["properties"]
        assert props["scopes"] and [_accessor(s) for s in props["scopes"]] == ["insights.id"], symbol
        assert [_accessor(g) for g in props["actions"]["actionGroups"]] == ["actionGroup.id"], symbol
        assert props["severity"] in (0, 1, 2, 3, 4), symbol
        assert props["enabled"] == "alertsEnabled", symbol
        assert props["evaluationFrequency"] == "PT5M" and props["windowSize"] == window, symbol
        assert props["autoMitigate"] is True, symbol  # stateful: one notification per episode
        assert len(props["description"]) > 80 and props["displayName"].startswith("Payments relay: "), symbol
        [condition] = props["criteria"]["allOf"]
        query = condition["query"]
        for phrase in phrases:
            assert phrase in query, (symbol, phrase)
        if symbol != "failedRule":
            _assert_within_contract(query)
        assert condition["operator"] == "GreaterThan" and condition["threshold"] == threshold, symbol
        # The measured column is the one the query summarizes into.
        assert re.search(rf"summarize {condition['metricMeasureColumn']} = ", query), symbol
        for dimension in condition.get("dimensions", []):
            assert re.search(rf"\bby {dimension['name']}\b", query), (symbol, dimension)
    # What each one tells the operator to do.
    descriptions = {k: r["config"]["properties"]["description"] for k, r in rules.items()}
    assert "python -m payments ledger list" in descriptions["ambiguousRule"]
    assert "python -m payments queue status" in descriptions["poisonRule"]
    assert "same identity" in descriptions["throttledRule"]
    assert "${throttledThreshold}" in descriptions["throttledRule"]
    # Severity: an unknown outcome and unprocessed work are errors, throttling and failures warnings.
    assert {k: r["config"]["properties"]["severity"] for k, r in rules.items()} == {
        "ambiguousRule": 1,
        "poisonRule": 1,
        "throttledRule": 2,
        "failedRule": 2,
    }


def test_silence_of_the_queue_depths_is_an_alert_too():
    """The poison alert reads what the work_redrive timer emits every five minutes: if nothing comes for
    half an hour, the timer or the telemetry has stopped, and that is said."""
    rule = _alerts()["resources"]["silenceRule"]["config"]
    props = rule["properties"]
    assert rule["kind"] == "LogAlert" and "identity" not in rule
    assert (props["evaluationFrequency"], props["windowSize"]) == ("PT15M", "PT30M")
    [condition] = props["criteria"]["allOf"]
    assert 'name == "queue.depth"' in condition["query"] and "summarize arrived = count()" in condition["query"]
    _assert_within_contract(condition["query"])
    assert (condition["operator"], condition["threshold"], condition["metricMeasureColumn"]) == ("LessThan", 1, "arrived")
    assert [_accessor(g) for g in props["actions"]["actionGroups"]] == ["actionGroup.id"]
    assert "work_redrive" in props["description"] and props["severity"] == 2


def test_the_throttling_threshold_and_the_switch_are_parameters_of_main():
    main = parse("main.bicep")
    params = main["parameters"]
    assert params["alertsEnabled"]["type"] == "bool" and params["alertsEnabled"]["default"] is True
    assert params["throttledAlertThreshold"]["default"] == 50
    assert _decorator(params["throttledAlertThreshold"], "min_value") == 1
    call = main["modules"]["alerts"]
    assert call["detail"]["path"] == "modules/alerts.bicep"
    assert set(call["config"]) == {"name", "params"}  # no condition: deployed by default, always
    passed = call["config"]["params"]
    assert passed["alertsEnabled"] == "alertsEnabled"
    assert passed["throttledThreshold"] == "throttledAlertThreshold"
    text = (INFRA / "main.bicep").read_text()
    assert "appInsightsName: monitoring.outputs.name" in text
    module = _alerts()["parameters"]
    assert module["throttledThreshold"]["default"] == 50 and module["alertsEnabled"]["default"] is True
    assert "output ALERT_ACTION_GROUP_ID string = alerts.outputs.actionGroupId" in text


def test_the_alert_email_reaches_the_action_groups_receiver():
    # azd: RELAY_ALERT_EMAIL -> alertEmail (empty by default) -> the module -> the e-mail receiver.
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["alertEmail"]["value"] == "${RELAY_ALERT_EMAIL=}"
    main = parse("main.bicep")
    assert main["parameters"]["alertEmail"]["default"] == ""
    assert main["modules"]["alerts"]["config"]["params"]["alertEmail"] == "alertEmail"
    alerts = _alerts()
    assert alerts["parameters"]["alertEmail"]["default"] == ""
    group = alerts["resources"]["actionGroup"]
    assert group["type"] == "Microsoft.Insights/actionGroups" and group["api_version"] == "2023-01-01"
    props = group["config"]["properties"]
    # The action group always exists (the rules always have one); the receiver only with an address.
    assert props["enabled"] is True and 1 <= len(props["groupShortName"]) <= 12
    assert props["emailReceivers"] == "emailReceivers"
    receivers = alerts["variables"]["emailReceivers"]["value"]["operator"]
    assert receivers["type"] == "conditional"
    assert receivers["operands"]["condition"] == {
        "function": {"type": "empty", "parameters": {"item_to_test": "alertEmail"}}
    }
    assert receivers["operands"]["true_value"] == []
    [receiver] = receivers["operands"]["false_value"]
    assert receiver["emailAddress"] == "alertEmail" and receiver["useCommonAlertSchema"] is True
    assert group["config"]["location"] == "Global"


def test_the_workbook_shows_the_payment_funnel_per_day_from_the_component():
    alerts = _alerts()
    workbook = alerts["resources"]["workbook"]
    assert workbook["type"] == "Microsoft.Insights/workbooks" and workbook["api_version"] == "2023-06-01"
    config = workbook["config"]
    assert config["kind"] == "shared"
    # A deterministic name: the same workbook on every deployment.
    assert config["name"]["function"]["type"] == "guid"
    props = config["properties"]
    assert props["category"] == "workbook" and _accessor(props["sourceId"]) == "insights.id"
    serialized = props["serializedData"]["function"]
    assert serialized["type"] == "string"
    union = serialized["parameters"]["value_to_convert"]["function"]
    assert union["type"] == "union" and union["parameters"]["arg_1"] == "workbookContent"
    assert [_accessor(i) for i in union["parameters"]["arg_2"]["fallbackResourceIds"]] == ["insights.id"]
    loaded = alerts["variables"]["workbookContent"]["value"]["function"]
    assert loaded["type"] == "load_json_content"
    assert (INFRA / "modules" / loaded["parameters"]["file_path"]).resolve() == WORKBOOK.resolve()

    content = json.loads(WORKBOOK.read_text())
    assert content["version"] == "Notebook/1.0"
    queries = {i["name"]: i["content"]["query"] for i in content["items"] if i["type"] == 3}
    for query in queries.values():
        assert query.startswith(("customMetrics", "requests")), query
        if query.startswith("customMetrics"):
            _assert_within_contract(query)
    funnel = queries["funnel"]
    assert "bin(timestamp, 1d)" in funnel and "valueSum" in funnel
    assert 'name == "payments.received"' in funnel
    for outcome in FUNNEL[1:]:
        assert f'outcome == "{outcome}"' in funnel, outcome
    columns = re.findall(r"^\s+(\w+) = sumif", funnel, re.M)
    assert columns[: len(FUNNEL)] == FUNNEL
    assert 'name in ("target.requests", "target.duration")' in queries["target-requests"]
    assert "status" in queries["target-requests"] and "bin(timestamp, 1h)" in queries["target-requests"]
    assert 'name == "target.throttled"' in queries["target-throttled"]
    assert "bin(timestamp, 1h)" in queries["target-throttled"]
    assert all('name == "queue.depth"' in queries[q] for q in ("queue-depth", "queue-depth-latest"))
    # Every query follows the workbook's time range.
    assert {i["content"].get("timeContextFromParameter") for i in content["items"] if i["type"] == 3} == {
        "TimeRange"
    }


def test_alerts_and_workbook_hold_no_key_connection_string_or_secret():
    for path in (INFRA / "modules" / "alerts.bicep", WORKBOOK):
        text = path.read_text().lower()
        for word in (
            "instrumentationkey",
            "connectionstring",
            "connection_string",
            "listkeys",
            "apikey",
            "@secure",
        ):
            assert word not in text, (path.name, word)
    assert "connectionString" not in json.dumps(parse("main.bicep")["modules"]["alerts"])


def test_the_readme_explains_each_alert_and_the_email_variable():
    readme = (ROOT / "docs" / "deploy.md").read_text()  # the README's deploy page
    section = readme[readme.index("### Alerts") :]
    ends = [i for i in (section.find("\n## "), section.find("\n### ")) if i > 0]
    section = section[: min(ends, default=len(section))]
    for rule in [*RULES, "silenceRule"]:
        title = _alerts()["resources"][rule]["config"]["properties"]["displayName"]
        assert title.removeprefix("Payments relay: ") in section, title
    assert "| `RELAY_ALERT_EMAIL` | `alertEmail` |" in readme


def test_several_identities_are_one_by_default_and_each_further_one_is_assigned_and_named_to_the_relay():
    """Issue 25: targetIdentityCount further user-assigned identities, assigned to the function app, their
    client ids in PAYMENTS_TARGET_CLIENT_IDS after the relay identity's; with one, the setting is empty
    (AZURE_CLIENT_ID's identity alone, as before)."""
    main, app = parse("main.bicep"), parse("modules/functionapp.bicep")
    count = main["parameters"]["targetIdentityCount"]
    assert count["default"] == 1 and _decorator(count, "max_value") == 5
    further = app["parameters"]["targetIdentityIds"]
    assert _decorator(further, "max_length") == 5 - 1  # the relay identity is the first
    identities = main["resources"]["targetIdentities"]
    assert identities["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    text = (INFRA / "modules" / "functionapp.bicep").read_text()
    assert "further[3]" in text and "length(targetIdentityIds) > 3" in text  # every further one assigned
    assert (
        "PAYMENTS_TARGET_CLIENT_IDS: empty(targetIdentityClientIds) ? '' : "
        "join(concat([identityClientId], targetIdentityClientIds), ',')"
    ) in text
    outputs = main["outputs"]
    assert {"RELAY_EXTRA_TARGET_CLIENT_IDS", "RELAY_EXTRA_TARGET_PRINCIPAL_IDS"} <= set(outputs)
