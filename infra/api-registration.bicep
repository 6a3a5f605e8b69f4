// The relay's app registration: what callers get Entra ID tokens for, and the app role
// (Payments.Submit) an administrator grants to each calling application or managed identity. Keyless:
// the registration has no secret or certificate (App Service Authentication only validates tokens).
// Deploy before main.bicep and pass its apiClientId output (docs/deploy.md); the
// deployer needs rights to create applications (e.g. Application Administrator) and, to grant the role,
// Privileged Role Administrator. Its own file: checkov's Bicep parser cannot read `extension`.

extension microsoftGraphV1

@description('Unique name of the registration in the tenant, e.g. payments-relay-prod')
param uniqueName string

@description('App role callers must hold (PAYMENTS_AUTH_ROLE)')
param callerRole string = 'Payments.Submit'

@description('A fixed id for the app role (any GUID; keep it across deployments)')
param callerRoleId string = '6d1c3b0e-6f55-4f0b-9b3e-3c2b2a6e8f10'

@description('Principal ids (object ids of service principals or managed identities) to grant the role to')
param callerPrincipalIds array = []

var identifierUri = 'api://${tenant().tenantId}/${uniqueName}'

resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: uniqueName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [identifierUri]
  api: {
    requestedAccessTokenVersion: 2
  }
  appRoles: [
    {
      id: callerRoleId
      value: callerRole
      displayName: 'Submit customer payments'
      description: 'Post customer payments through the payments relay'
      allowedMemberTypes: ['Application']
      isEnabled: true
    }
  ]
}

resource apiPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: api.appId
  // Only principals granted the role get tokens for this API.
  appRoleAssignmentRequired: true
}

resource grants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for principalId in callerPrincipalIds: {
    principalId: principalId
    resourceId: apiPrincipal.id
    appRoleId: callerRoleId
  }
]

output apiClientId string = api.appId
output identifierUri string = identifierUri
