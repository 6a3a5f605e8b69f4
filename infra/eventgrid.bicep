// Second stage, after the code is deployed: subscribe the file-drop function to BlobCreated events
// of the inbox container. The blob trigger's webhook needs the host's `blobs_extension` system key,
// which exists only once the function app's host has started and loaded the blob extension;
// infra/hooks/postdeploy.sh waits for the key, then deploys this file.

@description('Function app name (output FUNCTION_APP_NAME of main.bicep)')
param functionAppName string

@description('Event Grid system topic of the storage account (output EVENT_GRID_TOPIC_NAME)')
param topicName string

@description('Container the trigger watches (must equal the app setting PAYMENTS_INBOX_CONTAINER)')
param inboxContainer string = 'payments-inbox'

@description('Container, in the topic source storage account, receiving undeliverable events (output DEADLETTER_CONTAINER)')
param deadLetterContainer string = 'payments-deadletter'

@description('Name of the blob-triggered function in function_app.py')
param functionName string = 'payment_file_drop'

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: topicName
}

var blobsKey = listKeys('${app.id}/host/default', '2024-04-01').systemKeys.blobs_extension

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'payments-file-drop'
  properties: {
    // A webhook (the blob extension's endpoint) authenticates with its key, not with an identity.
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${app.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsKey}'
        maxEventsPerBatch: 1
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${inboxContainer}/'
    }
    // Event Grid's maxima: up to 30 attempts with back-off over at most 24 hours; then the event is
    // dead-lettered below instead of being dropped.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    // Keyless: the system topic's own identity writes the blob (Storage Blob Data Contributor on this
    // container, granted in modules/storage.bicep). The topic's source is the storage account.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: topic.properties.source
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}
