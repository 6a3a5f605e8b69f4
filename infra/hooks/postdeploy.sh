#!/usr/bin/env bash
# azd postdeploy hook: the second deployment stage. Subscribes the file-drop function to the inbox
# container's BlobCreated events, now that the deployed code has created the blobs_extension key.
# azd exports main.bicep's outputs as environment variables.
set -euo pipefail
az deployment group create \
  --resource-group "${AZURE_RESOURCE_GROUP}" \
  --name payments-eventgrid \
  --template-file "$(dirname "$0")/../eventgrid.bicep" \
  --parameters functionAppName="${FUNCTION_APP_NAME}" topicName="${EVENT_GRID_TOPIC_NAME}" \
               inboxContainer="${INBOX_CONTAINER}" \
  --output none
echo "Event Grid subscription for ${INBOX_CONTAINER} -> ${FUNCTION_APP_NAME} is in place."
