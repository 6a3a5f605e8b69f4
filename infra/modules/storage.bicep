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

@description('Table of the idempotency ledger')
param ledgerTable string

@allowed(['Standard_GZRS', 'Standard_RAGZRS', 'Standard_GRS', 'Standard_RAGRS'])
@description('Geo-redundant: the ledger is the record of what was paid')
param skuName string = 'Standard_GZRS'

param tags object = {}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Event Grid, the Flex Consumption host and deployments reach the account over its public endpoint without a VNet; access is Entra ID only (no shared keys, no public blobs)
  // checkov:skip=CKV_AZURE_59: as above: public network access without keys or anonymous blobs; private endpoints need a VNet this template does not create
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
  for container in [inboxContainer, reportsContainer, archiveContainer, deploymentContainer]: {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource ledger 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTable
}

// Blob events for the file-drop trigger; the subscription is added after the code is deployed
// (infra/eventgrid.bicep), because the trigger's webhook key exists only then.
resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: '${name}-events'
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output topicName string = topic.name
