#!/usr/bin/env bash
# azd postdeploy hook: the second deployment stage. Subscribes the file-drop function to the inbox
# container's BlobCreated events (infra/eventgrid.bicep), dead-lettering what cannot be delivered.
#
# azd runs hooks with its environment: AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP name where azd
# deployed main.bicep, and main.bicep's outputs are there too (FUNCTION_APP_NAME, ...). Every az call
# below names that subscription: az's own default subscription (`az account set`) may be another.
#
# The webhook needs the host's blobs_extension system key, which exists only once the Functions host
# has started and loaded the blob extension, some time after the code deployment. The hook waits for
# it (bounded: RELAY_KEY_WAIT_SECONDS, default 600) before deploying eventgrid.bicep, which reads it.
set -euo pipefail

need() {
  if [ -z "${!1:-}" ]; then
    echo "postdeploy: $1 is not set. Run this through azd (azd deploy, azd up or azd hooks run postdeploy), which passes it." >&2
    exit 1
  fi
}
for name in AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP FUNCTION_APP_NAME FUNCTION_APP_HOST \
            EVENT_GRID_TOPIC_NAME INBOX_CONTAINER DEADLETTER_CONTAINER; do
  need "$name"
done

wait_seconds="${RELAY_KEY_WAIT_SECONDS:-600}"
poll_seconds="${RELAY_KEY_POLL_SECONDS:-15}"

last_error=$(mktemp)
trap 'rm -f "${last_error}"' EXIT

# Asks for the names of the host's system keys only (never their values): is blobs_extension one?
has_blobs_key() {
  local names
  names=$(az functionapp keys list \
    --subscription "${AZURE_SUBSCRIPTION_ID}" \
    --resource-group "${AZURE_RESOURCE_GROUP}" \
    --name "${FUNCTION_APP_NAME}" \
    --query 'keys(systemKeys || `{}`)' \
    --output json 2>"${last_error}") || return 1
  [[ "${names}" == *'"blobs_extension"'* ]]
}

deadline=$(( $(date +%s) + wait_seconds ))
until has_blobs_key; do
  if [ "$(date +%s)" -ge "${deadline}" ]; then
    cat >&2 <<EOF
postdeploy: timed out after ${wait_seconds}s waiting for the blobs_extension system key of ${FUNCTION_APP_NAME}
(subscription ${AZURE_SUBSCRIPTION_ID}, resource group ${AZURE_RESOURCE_GROUP}).
The Functions host creates that key when it starts and loads the blob extension; until then the Event
Grid subscription cannot be created. Check that the app started (Azure portal: Log stream, or the
traces in Application Insights), then run this stage again: azd hooks run postdeploy
(RELAY_KEY_WAIT_SECONDS sets how long it waits).
EOF
    if [ -s "${last_error}" ]; then
      echo "Last error from az functionapp keys list:" >&2
      tail -n 5 "${last_error}" >&2
    fi
    exit 1
  fi
  echo "postdeploy: waiting for the Functions host of ${FUNCTION_APP_NAME} to create its blobs_extension key..."
  # Best effort: a request to the app's home page starts a host if none is running.
  if command -v curl >/dev/null 2>&1; then
    curl --silent --output /dev/null --max-time 30 "https://${FUNCTION_APP_HOST}/" || true
  fi
  sleep "${poll_seconds}"
done

az deployment group create \
  --subscription "${AZURE_SUBSCRIPTION_ID}" \
  --resource-group "${AZURE_RESOURCE_GROUP}" \
  --name payments-eventgrid \
  --template-file "$(dirname "$0")/../eventgrid.bicep" \
  --parameters functionAppName="${FUNCTION_APP_NAME}" topicName="${EVENT_GRID_TOPIC_NAME}" \
               inboxContainer="${INBOX_CONTAINER}" deadLetterContainer="${DEADLETTER_CONTAINER}" \
  --output none
echo "Event Grid subscription for ${INBOX_CONTAINER} -> ${FUNCTION_APP_NAME} is in place (undeliverable events go to ${DEADLETTER_CONTAINER})."
