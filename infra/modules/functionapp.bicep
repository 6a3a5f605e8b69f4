// Flex Consumption plan and the Linux Python function app. Every setting the relay reads is set
// here (tests/test_infra.py derives the list from payments/settings.py); none holds a secret.

@description('Function app name')
param name string

@description('Azure region')
param location string

param tags object = {}

@description('Resource id of the user-assigned identity')
param identityId string

@description('Client id of the user-assigned identity')
param identityClientId string

@description('Further user-assigned identities the relay calls Business Central as (resource ids; at most 4); empty: the relay identity alone')
@maxLength(4)
param targetIdentityIds array = []

@description('Client ids of targetIdentityIds, in the same order')
param targetIdentityClientIds array = []

@description('Blob endpoint of the function storage account')
param blobEndpoint string

@description('Queue endpoint of the function storage account')
param queueEndpoint string

@description('Table endpoint of the function storage account')
param tableEndpoint string

@description('Container holding the deployment package')
param deploymentContainer string

@description('Application Insights connection string (an ingestion address, not a key: local auth is off)')
param appInsightsConnectionString string

@description('Settings of the relay itself (PAYMENTS_*)')
param relaySettings object

@description('Tenant whose applications may call the relay')
param authTenantId string

@description('Client id of the relay\'s app registration (infra/api-registration.bicep): the audience callers get tokens for')
param apiClientId string

@description('Client ids of the applications allowed to call; empty: any application of the tenant holding the app role')
param allowedClientApplications array = []

@description('Names of the Standard Webhooks senders: each one\'s secret is the Key Vault secret webhook-<name>')
param webhookSenders array = []

@description('Key Vault holding the senders\' secrets (read with the identity, through Key Vault references)')
param keyVaultName string

// See main.bicep for what these two mean together for Business Central (5 requests at once).
@minValue(1)
@maxValue(1000)
@description('Most on-demand instances per scale group (Flex Consumption applies it to each group separately)')
param maximumInstanceCount int = 1

@minValue(1)
@maxValue(1000)
@description('HTTP invocations at once per instance')
param httpPerInstanceConcurrency int = 5

@description('Memory per instance')
param instanceMemoryMB int = 2048

@description('Spread the plan across availability zones (Flex Consumption supports it in some regions only)')
param zoneRedundant bool = false

// The further identities, four at most (main.bicep's targetIdentityCount is at most 5), each as the one-key
// object userAssignedIdentities takes; ARM evaluates only the branch of a condition that holds, so a
// missing index is never read.
var further = [
  length(targetIdentityIds) > 0 ? { '${targetIdentityIds[0]}': {} } : {}
  length(targetIdentityIds) > 1 ? { '${targetIdentityIds[1]}': {} } : {}
  length(targetIdentityIds) > 2 ? { '${targetIdentityIds[2]}': {} } : {}
  length(targetIdentityIds) > 3 ? { '${targetIdentityIds[3]}': {} } : {}
]

var appSettings = union(relaySettings, {
  // The host's own storage, reached with the identity (no connection string anywhere).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  AZURE_CLIENT_ID: identityClientId
  // Every identity the relay calls Business Central as, each with a budget of its own (docs/scale.md: several
  // identities); empty with one identity: AZURE_CLIENT_ID's.
  PAYMENTS_TARGET_CLIENT_IDS: empty(targetIdentityClientIds) ? '' : join(concat([identityClientId], targetIdentityClientIds), ',')
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The worker's traces, metrics and logs (payments.telemetry, with the same identity); the host's go
  // as OpenTelemetry too (host.json telemetryMode), so one trace spans both.
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  // The worker configures the distro itself: only the relay's own loggers (not every library's), and
  // none of the automatic instrumentations (the relay records its own spans, chosen to carry no secret).
  PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME: 'payments'
  // Follow the host's sampling decision (its traceparent), so a sampled invocation is one whole trace
  // from the host's request to the target's answers; the distro's default rate limiter decides span by
  // span and breaks traces apart.
  OTEL_TRACES_SAMPLER: 'parentbased_always_on'
  OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: 'azure_sdk,django,fastapi,flask,httpx,psycopg2,requests,urllib,urllib3'
  // glibc gives each thread that allocates its own heap arena; with the posting workers, lease
  // renewal and SDK threads a file drop's peak memory crept up with the file's size (+31 MiB at
  // 100,000 records with $batch). Two arenas: +25 MiB, measured with bench/filedrop.py.
  MALLOC_ARENA_MAX: '2'
})

// Each sender's secrets: a Key Vault reference the platform resolves with keyVaultReferenceIdentity; the
// app setting holds the reference, never the secret.
var senderSettings = [for sender in webhookSenders: {
  name: 'PAYMENTS_WEBHOOK_SECRET_${toUpper(replace(sender, '-', '_'))}'
  value: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=webhook-${sender})'
}]
var baseSettings = [for setting in items(appSettings): {
  name: setting.key
  value: setting.value
}]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is the zoneRedundant parameter; Flex Consumption offers it only in some regions, so it cannot be forced on here
  name: '${name}-plan'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: webhook senders and Event Grid reach the app over the internet; callers authenticate with Entra ID tokens or Standard Webhooks signatures
  // checkov:skip=CKV_AZURE_17: incoming client certificates would break webhook integrations; callers authenticate with Entra ID tokens or signatures over TLS 1.2
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales out on demand from zero; a standing minimum would be always-ready instances billed around the clock
  // checkov:skip=CKV_AZURE_213: the Functions host is health-managed by the platform; the app exposes no HTTP health endpoint of its own
  // checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share; the package is in blob storage, read with the identity
  // checkov:skip=CKV_AZURE_80: not a .NET app (Python 3.11)
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'relay' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: union({ '${identityId}': {} }, further[0], further[1], further[2], further[3])
  }
  properties: {
    serverFarmId: plan.id
    keyVaultReferenceIdentity: identityId
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      // checkov:skip=CKV_AZURE_78: siteConfig.ftpsState is rejected on Flex Consumption (ARM error 51021); FTP and basic-auth publishing are disabled by the basicPublishingCredentialsPolicies ftp and scm below
      // checkov:skip=CKV_AZURE_18: siteConfig.http20Enabled is an App Service web-server setting Flex Consumption does not apply, so it is not set
      // checkov:skip=CKV_AZURE_67: as CKV_AZURE_18: http20Enabled does nothing on Flex Consumption, so it is not set
      // Only what Flex Consumption honours. Not set, on purpose: ftpsState (newer Flex stamps reject it,
      // error 51021) and the App Service web-server settings that do nothing on Flex (http20Enabled,
      // remoteDebuggingEnabled, httpLoggingEnabled, detailedErrorLoggingEnabled,
      // requestTracingEnabled); tests/infra/test_infra.py keeps them out. (At most 9 comment lines
      // per object: checkov's older Bicep parser fails beyond that.)
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      appSettings: concat(baseSettings, senderSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// FTP and basic-auth (SCM) publishing off, the Flex Consumption way (siteConfig.ftpsState is rejected).
resource basicPublishingFtp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource basicPublishingScm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication: a call without a valid Entra ID token for the relay's registration is
// answered 401 before it reaches the code. The relay checks again what this cannot (the app role, and
// the token itself where this is not enforced). Excluded: the signed webhook routes (senders sign, they
// hold no token) and the host's blob-extension endpoint Event Grid delivers to (system key). Token
// validation only: no client secret, no token store.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: this is App Service Authentication, in the authsettingsV2 shape (platform.enabled: true); checkov reads only the legacy authsettings shape (properties.enabled)
  // checkov:skip=CKV_AZURE_66: a check of the site that checkov also applies to its config children; Flex Consumption does not apply request tracing (see the site)
  // checkov:skip=CKV_AZURE_63: a check of the site applied to its config child; Flex Consumption does not apply HTTP logging (see the site)
  // checkov:skip=CKV_AZURE_222: a check of the site applied to its config child; the site answers it (webhook senders and Event Grid call over the internet)
  // checkov:skip=CKV_AZURE_80: a check of the site applied to its config child; not a .NET app (Python 3.11)
  // checkov:skip=CKV_AZURE_88: a check of the site applied to its config child; Flex Consumption has no Azure Files content share
  // checkov:skip=CKV_AZURE_65: a check of the site applied to its config child; Flex Consumption does not apply detailed error pages
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // Both forms: whether App Service matches these as prefixes or with wildcards is not documented.
      excludedPaths: [
        '/api/webhooks'
        '/api/webhooks/*'
        '/runtime/webhooks/blobs'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: apiClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${apiClientId}'
            apiClientId
          ]
          defaultAuthorizationPolicy: {
            allowedApplications: allowedClientApplications
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output name string = app.name
output host string = app.properties.defaultHostName
output id string = app.id
