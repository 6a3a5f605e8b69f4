// Optional: grant the relay's identity the Business Central application permission
// API.ReadWrite.All. Uses the Microsoft Graph Bicep extension (see bicepconfig.json); the deployer
// needs directory rights to assign app roles (e.g. Privileged Role Administrator).
// Kept in its own file: checkov's Bicep parser cannot read `extension` statements.

extension microsoftGraphV1

@description('Principal id of the relay identity (output RELAY_IDENTITY_PRINCIPAL_ID of main.bicep)')
param principalId string

@description('Principal ids of the further identities the relay calls Business Central as (output RELAY_EXTRA_TARGET_PRINCIPAL_IDS of main.bicep); empty: principalId alone')
param principalIds array = []

@description('Application id of the API the relay posts to (default: Dynamics 365 Business Central)')
param resourceAppId string = '996def3d-b36c-4153-8607-a6fd3c01b89f'

@description('App role to grant (default: Business Central API.ReadWrite.All)')
param appRoleId string = 'a42b0b75-311e-488d-b67e-8fe84f924341'

resource api 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: resourceAppId
}

resource grants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for id in union([principalId], principalIds): {
    principalId: id
    resourceId: api.id
    appRoleId: appRoleId
  }
]

output assignmentIds array = [for (id, i) in union([principalId], principalIds): grants[i].id]
