// The payments relay: storage, identity, monitoring, Flex Consumption function app and the roles
// that tie them together, with no storage key, connection string or secret anywhere.
// Deploy with `azd up`, or `az deployment group create -f infra/main.bicep -p infra/main.parameters.json`
// followed by infra/eventgrid.bicep (see README, "Deploy").

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(20)
@description('Short environment name; resource names derive from it')
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

param tags object = {}

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var baseName = toLower('pay-${environmentName}')
var storageName = take('pay${replace(toLower(environmentName), '-', '')}${token}', 24)
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
  PAYMENTS_DEADLETTER_CONTAINER: 'payments-deadletter' // Event Grid dead-letters undeliverable inbox events here
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
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: '${baseName}-id'
    location: location
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: storageName
    location: location
    tags: allTags
    inboxContainer: inboxContainer
    reportsContainer: reportsContainer
    archiveContainer: archiveContainer
    deploymentContainer: deploymentContainer
    ledgerTable: ledgerTable
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
  dependsOn: [roles]
  params: {
    name: '${baseName}-${take(token, 6)}'
    location: location
    tags: allTags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainer: deploymentContainer
    appInsightsConnectionString: monitoring.outputs.connectionString
    relaySettings: relaySettings
  }
}

output AZURE_LOCATION string = location
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOST string = functionApp.outputs.host
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output EVENT_GRID_TOPIC_NAME string = storage.outputs.topicName
output INBOX_CONTAINER string = inboxContainer
output INBOX_CONTAINER_URL string = '${storage.outputs.blobEndpoint}${inboxContainer}'
output RELAY_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output RELAY_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
