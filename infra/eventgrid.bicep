// Second stage, after the code is deployed: subscribe the file-drop function to BlobCreated events
// of the inbox container. The blob trigger's webhook needs the host's `blobs_extension` system key,
// which exists only once the function app runs the code; azd runs this from infra/hooks/postdeploy.sh.

@description('Function app name (output FUNCTION_APP_NAME of main.bicep)')
param functionAppName string

@description('Event Grid system topic of the storage account (output EVENT_GRID_TOPIC_NAME)')
param topicName string

@description('Container the trigger watches (must equal the app setting PAYMENTS_INBOX_CONTAINER)')
param inboxContainer string = 'payments-inbox'

@description('Name of the blob-triggered function in function_app.py')
param functionName string = 'payment_file_drop'

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' existing = {
  name: topicName
}

var blobsKey = listKeys('${app.id}/host/default', '2024-04-01').systemKeys.blobs_extension

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: topic
  name: 'payments-file-drop'
  properties: {
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
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
