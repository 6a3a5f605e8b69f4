// The function's storage account: host state, the deployment package, the file-drop containers
// and the idempotency ledger's table. No shared keys: every client uses Microsoft Entra ID.

@description('Storage account name (3-24 lower-case letters and digits)')
param name string

@description('Azure region')
param location string

@description('Container the file-drop trigger watches')
param inboxContainer string

@description('Container for reports and failed-record CSVs')
param reportsContainer string

@description('Container whose processed/ and failed/ areas receive handled files')
param archiveContainer string

@description('Container holding the Flex Consumption deployment package')
param deploymentContainer string

@description('Container receiving Event Grid events that could not be delivered to the file-drop trigger')
param deadLetterContainer string

@description('Container of the small blobs whose leases carry the limits shared by every instance')
param flowContainer string

@description('Container of the records behind GET /api/batches/{id}')
param batchesContainer string

@description('Container of what operators maintain: the payer IBAN map for bank statements')
param configContainer string

@description('Queue the webhook and the file drop hand accepted payments to (the poster reads it)')
param workQueue string

@description('Queue of small webhook calls a caller waits for (the post_priority function reads it)')
param priorityQueue string

@description('Table of the idempotency ledger')
param ledgerTable string

@description('Table of the bank credits decided, per company and bank account')
param bankTable string

@description('Table of the signed webhook deliveries seen')
param webhookTable string

// main.bicep explains the default: Standard_LRS is the SKU every Flex Consumption region offers.
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
@description('Redundancy; zone- or geo-redundant where the region offers it (the ledger is the record of what was paid)')
param skuName string = 'Standard_LRS'

param tags object = {}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Event Grid, the Flex Consumption host and deployments reach the account over its public endpoint without a VNet; access is Entra ID only (no shared keys, no public blobs)
  // checkov:skip=CKV_AZURE_59: as above: public network access without keys or anonymous blobs; private endpoints need a VNet this template does not create
  // checkov:skip=CKV_AZURE_206: replication is the skuName parameter (main.bicep storageSku, azd: RELAY_STORAGE_SKU); the default Standard_LRS is the one SKU every Flex Consumption region can create, zone/geo SKUs are allowed values to choose per region
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 14
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 14
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in [inboxContainer, reportsContainer, archiveContainer, deploymentContainer, flowContainer, batchesContainer, configContainer]: {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

// Events Event Grid could not deliver to the file-drop trigger (retries exhausted or expired) land
// here as blobs, written by the system topic's own managed identity (no key): nothing is dropped.
resource deadLetter 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainer
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The work queue, the priority queue, and the queues the Functions host moves a message to after
// maxDequeueCount failed deliveries (host.json); created here so an operator can watch them from the
// first deployment.
resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in [workQueue, '${workQueue}-poison', priorityQueue, '${priorityQueue}-poison']: {
    parent: queueService
    name: queue
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource ledger 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTable
}

// The bank credits decided, per company and bank account: none is posted twice across journals and files.
resource bank 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: bankTable
}

// The signed webhook deliveries seen, so that a replayed one is refused by every instance.
resource webhooks 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: webhookTable
}

// Blob events for the file-drop trigger; the subscription is added after the code is deployed
// (infra/eventgrid.bicep), because the trigger's webhook key exists only then. The system-assigned
// identity writes undeliverable events to the dead-letter container (deadLetterWithResourceIdentity).
resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: '${name}-events'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// Storage Blob Data Contributor: the role Event Grid's documentation names for dead-lettering to
// Blob storage with a managed identity (no narrower built-in role can write blobs), scoped to the
// one dead-letter container rather than the account.
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetter.id, topic.id, storageBlobDataContributor)
  scope: deadLetter
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output topicName string = topic.name
output deadLetterContainer string = deadLetter.name
output workQueue string = queues[0].name
