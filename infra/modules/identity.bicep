// The relay's one identity: a user-assigned managed identity used for storage, monitoring and the
// target API. User-assigned so that role assignments exist before the app first starts.

@description('Name of the user-assigned managed identity')
param name string

@description('Azure region')
param location string

param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
output name string = identity.name
