// The vault holding the signing secrets of the Standard Webhooks senders (secret webhook-<sender>,
// value whsec_...). The app reads them through Key Vault references resolved with the relay's identity,
// which gets Key Vault Secrets User on this vault only: no secret in app settings, code or templates.
// Operators set the secrets (Key Vault Secrets Officer); see docs/http.md, "Who may call".

@description('Key Vault name')
param name string

@description('Azure region')
param location string

param tags object = {}

@description('Principal id of the relay identity')
param principalId string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the app resolves its Key Vault references over the public endpoint (Flex Consumption without a virtual network); access is by Entra ID and RBAC only
  // checkov:skip=CKV_AZURE_189: as CKV_AZURE_109: public network access with RBAC-only authorization
  // checkov:skip=CKV2_AZURE_32: no virtual network in this deployment, so no private endpoint
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
