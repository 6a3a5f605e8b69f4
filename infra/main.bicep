// The payments relay: storage, identity, monitoring, Flex Consumption function app and the roles
// that tie them together, with no storage key, connection string or secret anywhere.
// Deploy with `azd up`, or `az deployment group create -f infra/main.bicep -p infra/main.parameters.json`
// followed by infra/eventgrid.bicep (see docs/deploy.md).

targetScope = 'resourceGroup'

// azd allows 1-64 letters, digits and - _ . ( ) in an environment name (azd's own check:
// ^[a-zA-Z0-9-\(\)_\.]{1,64}$); the names below are built to be valid for every such name.
@minLength(1)
@maxLength(64)
@description('Environment name (azd: AZURE_ENV_NAME): letters, digits and - _ . ( ); resource names derive from it')
param environmentName string

@description('Azure region for every resource')
param location string = resourceGroup().location

@description('Business Central API base: https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>/api/v2.0')
param targetApiBaseUrl string

@allowed(['businesscentral', 'graph'])
@description('businesscentral (works with a managed identity) or graph (delegated-only: see README)')
param target string = 'businesscentral'

@description('Token scope; empty for the target default')
param targetApiScope string = ''

@description('Requests in flight to the target per worker (Business Central allows 5 per user)')
param maxConcurrency int = 5

@description('Payments per JSON $batch request (Business Central up to 100, Graph up to 20); 0 = no batching')
param batchSize int = 0

@description('Decimal places an amount may have')
param amountDecimals int = 2

@description('How callers write amounts: negative, as Business Central posts a customer payment (a credit), or positive, as money received (the relay negates them)')
@allowed([
  'negative'
  'positive'
])
param amountSign string = 'negative'

@description('Company for files dropped at the inbox root (GUID, optional)')
param defaultCompanyId string = ''

@description('Journal for files dropped at the inbox root (GUID, optional)')
param defaultJournalId string = ''

@description('Container the file-drop trigger watches')
param inboxContainer string = 'payments-inbox'

@description('Container for file-drop reports')
param reportsContainer string = 'payments-reports'

@description('Container receiving handled files (processed/ and failed/)')
param archiveContainer string = 'payments-archive'

@description('Table of the idempotency ledger')
param ledgerTable string = 'paymentsledger'

@description('Days a payment key is remembered')
param ledgerRetentionDays int = 30

@description('How many identities the relay calls Business Central as: each has its own 5 requests at once and 6,000 per 5 minutes, and requests go to the one with room. The relay identity is the first; the others are user-assigned identities of their own, each granted in Business Central as the first')
@minValue(1)
@maxValue(5)
param targetIdentityCount int = 1

@description('Table of the bank credits decided, per company and bank account (so none is posted twice)')
param bankTable string = 'paymentsbank'

@description('Days a bank credit and its plan are remembered after their last change: as long as the bank may send a statement again')
@minValue(1)
@maxValue(3650)
param bankRetentionDays int = 400

@description('Container receiving Event Grid events that could not be delivered to the file-drop trigger')
param deadLetterContainer string = 'payments-deadletter'

@description('Requests in flight to the target across every instance together, and one insert per journal across them, kept with blob leases in flowContainer (Business Central processes 5 per identity); 0 = per worker only')
@minValue(0)
@maxValue(50)
param sharedConcurrency int = 5

@description('Container of the small blobs whose leases carry the limits shared by every instance')
param flowContainer string = 'payments-flow'

@description('Queue the webhook and the file drop hand accepted payments to; the post_work function is the only code that sends to the target')
param workQueue string = 'payments-work'

@description('Journals the relay posts every hour in Business Central (companyId/journalId), each only when it holds nothing but lines the relay created; empty: none (README: posting journals)')
param postJournals array = []

@description('Queue of small webhook calls a caller waits for (priorityAtMost payments or fewer): the post_priority function takes them at once, not behind the batches on workQueue')
param priorityQueue string = 'payments-priority'

@description('Container of the records behind GET /api/batches/{id}')
param batchesContainer string = 'payments-batches'

@description('Container of what operators maintain for bank statements: the payer IBAN map (payers.csv, or <companyId>/payers.csv)')
param configContainer string = 'payments-config'

@description('Post a bank credit whose customer is certain (payer map) but whose invoice is not on account; false sends it to the review file')
param bankOnAccount bool = false

@description('How far a bank credit may differ from an invoice remaining amount and still match it, as a decimal text (the amount posted is always the bank one)')
param bankAmountTolerance string = '0'

@description('series: bank credits are posted without documentNumber (the journal number series assigns one); bank: documentNumber derived from the bank transaction, for journals without a number series')
@allowed([
  'series'
  'bank'
])
param bankDocumentNumbers string = 'series'

@description('Seconds a webhook call waits for its payments to be posted before answering 202 Accepted with a status URL')
@minValue(0)
@maxValue(200)
param answerWithinSeconds int = 20

@description('A webhook batch of more payments than this is answered 202 Accepted at once')
param asyncAbove int = 100

@description('Client id of the relay\'s app registration, the audience callers get Entra ID tokens for (infra/api-registration.bicep creates it; README, "Authenticating callers")')
param apiClientId string

@description('Further audiences a caller\'s token may name, e.g. the registration\'s identifier URI (api://<tenant id>/payments-relay)')
param apiAudiences array = []

@description('Tenant whose applications may call the relay')
param authTenantId string = tenant().tenantId

@description('Client ids of the applications allowed to call; empty: any application of the tenant holding the app role')
param allowedClientApplications array = []

@description('App role a caller must hold')
param callerRole string = 'Payments.Submit'

@description('Names of the Standard Webhooks senders (lower-case letters, digits, hyphens); each signs with the Key Vault secret webhook-<name>')
param webhookSenders array = []

@minValue(1)
@maxValue(3600)
@description('Seconds a signed webhook\'s timestamp may be from the relay\'s clock')
param webhookToleranceSeconds int = 300

@description('Table of the signed webhook deliveries seen (replays are refused)')
param webhookTable string = 'paymentswebhooks'

// Standard_LRS by default because it is the one redundancy every Flex Consumption region offers:
// ZRS, GZRS and RA-GZRS exist only in regions with availability zones, GRS/RA-GRS only where the
// region has a geo pair, and Flex Consumption also runs in regions lacking one or the other
// (Microsoft's Flex Consumption quickstarts create the account with Standard_LRS). So redundancy
// is a per-region choice, not a default: set RELAY_STORAGE_SKU (main.parameters.json) where the
// region has it. The idempotency ledger and the archive live in this account: prefer a zone- or
// geo-redundant SKU wherever the region offers one. An existing account keeps its SKU only if the
// same value is passed again (ARM cannot convert e.g. GZRS to LRS in place).
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
@description('Redundancy of the function storage account (ledger, archive, host state)')
param storageSku string = 'Standard_LRS'

// Concurrency budget at Business Central: it processes 5 requests at once per identity (more are
// queued, 429 only beyond 100 connections or 95 queued). Flex Consumption applies
// maximumInstanceCount to the on-demand instances of each scale group separately (all HTTP functions
// are one group, all Event Grid blob functions another, every other function its own).
// Only the post_work queue function sends payments to the target (the webhook and the file drop
// accept and queue them), and each of its instances runs at most host.json's queues.batchSize (5,
// newBatchThreshold 0) messages at once, so
//   requests in flight to the target <= maximumInstanceCount x 5        (defaults: 1 x 5 = 5)
// and, whatever the instance count, PAYMENTS_SHARED_CONCURRENCY (sharedConcurrency, 5) blob leases
// bound them across every instance together, with one insert per journal. Raising
// maximumInstanceCount adds webhook and file-drop capacity and poster instances, never requests
// beyond sharedConcurrency.
//   maximumInstanceCount x httpPerInstanceConcurrency = the most webhook calls running at once.
// tests/infra/test_infra.py holds these bounds.
@minValue(1)
@maxValue(1000)
@description('Most on-demand instances per Flex Consumption scale group (HTTP, Event Grid blob, each other function)')
param maximumInstanceCount int = 1

@minValue(1)
@maxValue(1000)
@description('HTTP invocations at once per instance (Flex Consumption default for Python: 1)')
param httpPerInstanceConcurrency int = 5

@maxLength(24)
@description('Storage account name; empty (the default) derives it. Set it to keep an existing account (the idempotency ledger lives there)')
param storageAccountName string = ''

@maxLength(32)
@description('Function app name; empty (the default) derives it. Set it to keep an existing app')
param functionAppName string = ''

@description('E-mail address the alerts are sent to (RELAY_ALERT_EMAIL); empty: the action group has no receiver and alerts are only recorded in Azure Monitor')
param alertEmail string = ''

@description('Deploy the alert rules enabled; false keeps them, disabled (README, "Alerts")')
param alertsEnabled bool = true

@minValue(1)
@description('The target\'s 429s in 15 minutes above which the throttling alert fires')
param throttledAlertThreshold int = 50

param tags object = {}

// Names. Each resource type gets the environment name in the characters it allows, and the
// globally unique names keep the uniqueness token (13 characters) whole; only the environment
// part is shortened:
//   storage account   3-24 lower-case letters and digits: 'pay' + up to 8 + token = at most 24
//   function app      2-60 letters, digits, hyphens, not starting or ending with one; kept to 32 so
//                     that the Functions host ID (the first 32 characters of the name) holds the token
//   plan, system topic: the app's and the storage account's names plus a suffix
//   identity, workspace (4-63), insights: unique within the resource group only, so a plain
//                     environment name keeps the names it always had (a new identity would need its
//                     Business Central grant again); a name whose characters had to be replaced or
//                     that had to be shortened carries the token, so two such environments cannot meet
// tests/infra/test_infra.py evaluates these expressions for awkward environment names.
var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var envLower = toLower(environmentName)
var envHyphens = replace(replace(replace(replace(envLower, '_', '-'), '.', '-'), '(', '-'), ')', '-')
var envAlnum = replace(envHyphens, '-', '')
var baseName = envHyphens == envLower && length(envLower) <= 40 ? 'pay-${envLower}' : 'pay-${take(envHyphens, 26)}-${token}'
var storageName = empty(storageAccountName) ? 'pay${take(envAlnum, 8)}${token}' : storageAccountName
var appName = empty(functionAppName) ? 'pay-${take(envHyphens, 14)}-${token}' : functionAppName
var identityName = '${baseName}-id'
var keyVaultName = 'kv${take(envAlnum, 8)}${token}' // 3-24 letters, digits, hyphens; starts with a letter
var deploymentContainer = 'app-package'
var allTags = union(tags, { 'azd-env-name': environmentName, product: 'payments-relay' })

// Every PAYMENTS_* setting the relay reads (payments/settings.py); the test suite checks the list.
var relaySettings = {
  PAYMENTS_TARGET: target
  PAYMENTS_API_BASE_URL: targetApiBaseUrl
  PAYMENTS_API_SCOPE: targetApiScope
  PAYMENTS_CREDENTIAL: 'managed'
  PAYMENTS_AMOUNT_DECIMALS: string(amountDecimals)
  PAYMENTS_AMOUNT_SIGN: amountSign
  PAYMENTS_MAX_BODY_BYTES: '1048576'
  PAYMENTS_MAX_ATTEMPTS: '5'
  PAYMENTS_RETRY_MAX_SECONDS: '60'
  PAYMENTS_BACKOFF_BASE_SECONDS: '0.5'
  PAYMENTS_BACKOFF_MAX_SECONDS: '20'
  PAYMENTS_CONNECT_TIMEOUT_SECONDS: '5'
  PAYMENTS_READ_TIMEOUT_SECONDS: '60'
  PAYMENTS_TARGET_SETTLE_SECONDS: '600'
  PAYMENTS_MAX_CONCURRENCY: string(maxConcurrency)
  PAYMENTS_TARGET_RATE_REQUESTS: '6000' // Business Central: 6,000 requests per 5 minutes per identity
  PAYMENTS_TARGET_RATE_WINDOW_SECONDS: '300'
  PAYMENTS_SHARED_CONCURRENCY: string(sharedConcurrency)
  PAYMENTS_FLOW_CONTAINER: flowContainer
  PAYMENTS_WORK_QUEUE: workQueue // host.json's queues section sets how many messages an instance takes
  PAYMENTS_PRIORITY_QUEUE: priorityQueue // single payments and small calls answered synchronously
  PAYMENTS_PRIORITY_AT_MOST: '10'
  PAYMENTS_POST_JOURNALS: join(postJournals, ',')
  PAYMENTS_BATCHES_CONTAINER: batchesContainer
  // Bank statements: the payer map the operators keep, and how sure a credit must be to be posted.
  PAYMENTS_CONFIG_CONTAINER: configContainer
  PAYMENTS_BANK_ON_ACCOUNT: string(bankOnAccount)
  PAYMENTS_BANK_AMOUNT_TOLERANCE: bankAmountTolerance
  PAYMENTS_BANK_DOCUMENT_NUMBERS: bankDocumentNumbers
  PAYMENTS_BANK_TABLE: bankTable
  PAYMENTS_BANK_RETENTION_DAYS: string(bankRetentionDays)
  PAYMENTS_ANSWER_WITHIN_SECONDS: string(answerWithinSeconds)
  PAYMENTS_ASYNC_ABOVE: string(asyncAbove)
  PAYMENTS_DEADLETTER_CONTAINER: deadLetterContainer // Event Grid dead-letters undeliverable inbox events here
  PAYMENTS_REDRIVE_AFTER_SECONDS: '900' // the inbox_redrive timer processes older files no worker took
  PAYMENTS_BATCH_SIZE: string(batchSize)
  PAYMENTS_INBOX_CONTAINER: inboxContainer
  PAYMENTS_REPORTS_CONTAINER: reportsContainer
  PAYMENTS_ARCHIVE_CONTAINER: archiveContainer
  PAYMENTS_DEFAULT_COMPANY_ID: defaultCompanyId
  PAYMENTS_DEFAULT_JOURNAL_ID: defaultJournalId
  PAYMENTS_MAX_FILE_BYTES: '104857600'
  PAYMENTS_MAX_FILE_RECORDS: '100000'
  PAYMENTS_FILE_LEASE_SECONDS: '60'
  PAYMENTS_LEDGER_TABLE: ledgerTable
  PAYMENTS_LEDGER_LEASE_SECONDS: '300'
  PAYMENTS_LEDGER_RETENTION_DAYS: string(ledgerRetentionDays)
  // Callers: Entra ID applications (checked by App Service Authentication and again by the relay, which
  // verifies the token itself), and Standard Webhooks senders on /api/webhooks/<sender>/...
  PAYMENTS_INBOUND_AUTH: 'entra'
  PAYMENTS_AUTH_TENANT_ID: authTenantId
  PAYMENTS_AUTH_AUDIENCES: join(concat([apiClientId, 'api://${apiClientId}'], apiAudiences), ',')
  PAYMENTS_AUTH_CLIENT_APPLICATIONS: join(allowedClientApplications, ',')
  PAYMENTS_AUTH_ROLE: callerRole
  PAYMENTS_AUTH_VERIFY_TOKEN: 'true'
  PAYMENTS_AUTH_AUTHORITY: environment().authentication.loginEndpoint
  PAYMENTS_WEBHOOK_SENDERS: join(webhookSenders, ',')
  PAYMENTS_WEBHOOK_TOLERANCE_SECONDS: string(webhookToleranceSeconds)
  PAYMENTS_WEBHOOK_TABLE: webhookTable
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: identityName
    location: location
    tags: allTags
  }
}

// The further identities the relay calls Business Central as (the relay identity is the first); each is
// granted in Business Central as the first is (docs/scale.md: several identities). None with the default of one.
resource targetIdentities 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [
  for i in range(0, targetIdentityCount - 1): {
    name: '${identityName}-bc${i + 2}'
    location: location
    tags: allTags
  }
]

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: storageName
    location: location
    tags: allTags
    skuName: storageSku
    inboxContainer: inboxContainer
    reportsContainer: reportsContainer
    archiveContainer: archiveContainer
    deploymentContainer: deploymentContainer
    deadLetterContainer: deadLetterContainer
    flowContainer: flowContainer
    batchesContainer: batchesContainer
    configContainer: configContainer
    workQueue: workQueue
    priorityQueue: priorityQueue
    ledgerTable: ledgerTable
    bankTable: bankTable
    webhookTable: webhookTable
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: keyVaultName
    location: location
    tags: allTags
    principalId: identity.outputs.principalId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    name: baseName
    location: location
    tags: allTags
  }
}

// Alert rules (log search alerts over the component), their action group and the operators' workbook.
module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    name: baseName
    location: location
    tags: allTags
    appInsightsName: monitoring.outputs.name
    alertEmail: alertEmail
    alertsEnabled: alertsEnabled
    throttledThreshold: throttledAlertThreshold
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.name
    principalId: identity.outputs.principalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  dependsOn: [roles, keyVault]
  params: {
    name: appName
    location: location
    tags: allTags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    targetIdentityIds: [for i in range(0, targetIdentityCount - 1): targetIdentities[i].id]
    targetIdentityClientIds: [for i in range(0, targetIdentityCount - 1): targetIdentities[i].properties.clientId]
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainer: deploymentContainer
    appInsightsConnectionString: monitoring.outputs.connectionString
    relaySettings: relaySettings
    authTenantId: authTenantId
    apiClientId: apiClientId
    allowedClientApplications: allowedClientApplications
    webhookSenders: webhookSenders
    keyVaultName: keyVault.outputs.name
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
  }
}

output AZURE_LOCATION string = location
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOST string = functionApp.outputs.host
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output EVENT_GRID_TOPIC_NAME string = storage.outputs.topicName
output INBOX_CONTAINER string = inboxContainer
output INBOX_CONTAINER_URL string = '${storage.outputs.blobEndpoint}${inboxContainer}'
output DEADLETTER_CONTAINER string = deadLetterContainer
output RELAY_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output RELAY_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
// The further identities the relay calls Business Central as (beside RELAY_IDENTITY_*): each one is granted
// API.ReadWrite.All (infra/graph-permission.bicep, principalIds) and registered in Business Central's
// Microsoft Entra Applications as the relay identity is.
output RELAY_EXTRA_TARGET_CLIENT_IDS array = [for i in range(0, targetIdentityCount - 1): targetIdentities[i].properties.clientId]
output RELAY_EXTRA_TARGET_PRINCIPAL_IDS array = [for i in range(0, targetIdentityCount - 1): targetIdentities[i].properties.principalId]
output WEBHOOK_KEY_VAULT_NAME string = keyVault.outputs.name
output ALERT_ACTION_GROUP_ID string = alerts.outputs.actionGroupId
