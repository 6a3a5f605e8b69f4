// Alerts and the operators' workbook over the relay's telemetry, keyless. The relay's business
// outcomes reach the workspace-based Application Insights component as OpenTelemetry custom metrics
// (customMetrics: name, customDimensions, valueSum), which are log-based there: the rules are log
// search alerts (scheduledQueryRules) over the component, in KQL, and so is the failed-invocation
// rule (the host's requests table), since the pre-aggregated standard metric requests/failed is
// not guaranteed for OpenTelemetry telemetry. No rule has a managed identity: each one queries only
// the component it is scoped to, which Azure Monitor evaluates without one (an identity is needed
// for Azure Data Explorer or Resource Graph queries, and would need a read role on the telemetry).
// The component's DisableLocalAuth turns off instrumentation-key ingestion and API keys, not the
// alert service. Nothing here reads or sets a key or a connection string.

@description('Base name of the alert rules and the action group')
param name string

@description('Azure region of the rules and the workbook')
param location string

param tags object = {}

@description('Application Insights component the rules query and the workbook shows')
param appInsightsName string

@description('E-mail address the action group notifies; empty: the action group has no receiver (the alerts are still recorded in Azure Monitor)')
param alertEmail string = ''

@description('false deploys the alert rules disabled (kept, not evaluated)')
param alertsEnabled bool = true

@minValue(1)
@description('The target\'s 429s in 15 minutes above which the throttling alert fires')
param throttledThreshold int = 50

resource insights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var emailReceivers = empty(alertEmail) ? [] : [
  {
    name: 'operators'
    emailAddress: alertEmail
    useCommonAlertSchema: true
  }
]

// Always there, so the rules always have somewhere to send; receivers come from the template only
// (a deployment replaces receivers added by hand in the portal).
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${name}-alerts'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'payrelay'
    enabled: true
    emailReceivers: emailReceivers
  }
}

// a. A payment whose outcome is unknown. Stateful (autoMitigate): one notification when it fires, one
// when 15 minutes pass without a new one. Every rule's window is three evaluations wide so that
// telemetry ingested minutes late is still counted.
resource ambiguousRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${name}-ambiguous-payment'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments relay: ambiguous payment'
    description: 'A payment\'s outcome is unknown (payments.outcome, outcome ambiguous): the target may or may not have posted it, and the relay will not post it again on a guess. Check the journal in Business Central against the ledger: python -m payments ledger list shows the ambiguous entries; settle each one with python -m payments ledger resolve (--posted <id at the target> or --not-posted; README, "Exactly once: the ledger").'
    severity: 1
    enabled: alertsEnabled
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '''
customMetrics
| where name == "payments.outcome" and tostring(customDimensions.outcome) == "ambiguous"
| summarize ambiguous = sum(valueSum)
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'ambiguous'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// b. Payments or file events that could not be processed. queue.depth is a gauge emitted every five
// minutes: the 15-minute window survives one missed emission; one alert per queue.
resource poisonRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${name}-poison-or-deadletter'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments relay: poison queue or dead letters not empty'
    description: 'queue.depth above zero for the poison queue (work messages that failed five times) or the Event Grid dead-letter container (file events that could not be delivered). The payments of a poisoned message are queued again from the ledger by work_redrive, and inbox_redrive processes dead-lettered files within about 10 minutes; if this alert stays, find out why: python -m payments queue status (poison depth, stranded payments), python -m payments inbox list (stranded files), the function logs; then clear the poison queue.'
    severity: 1
    enabled: alertsEnabled
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '''
customMetrics
| where name == "queue.depth"
| extend queue = tostring(customDimensions.queue)
| where queue in ("poison", "deadletter")
| summarize depth = max(value) by queue
'''
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'depth'
          dimensions: [
            {
              name: 'queue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// c. Sustained 429s: the relay keeps within the identity's limits itself, so these come from
// something else.
resource throttledRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${name}-target-throttled'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments relay: the target answers 429'
    description: 'More than ${throttledThreshold} 429 answers from the target in 15 minutes (target.throttled). The relay keeps within Business Central\'s limits for its identity by itself, so either something else uses the same identity, or the limits are set too high (PAYMENTS_SHARED_CONCURRENCY, PAYMENTS_TARGET_RATE_REQUESTS, RELAY_MAX_INSTANCES). Payments are not lost: they wait on the work queue. Find the other caller or lower the limits.'
    severity: 2
    enabled: alertsEnabled
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '''
customMetrics
| where name == "target.throttled"
| summarize throttled = sum(valueSum)
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'throttled'
          operator: 'GreaterThan'
          threshold: throttledThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// d. Failed invocations, from the Functions host's own requests (one per invocation); one alert per
// function. Evaluated every 5 minutes like the others, over 15: a 5-minute window that moves by 5
// minutes misses every failure whose telemetry arrives after the evaluation of its window, and
// ingestion takes minutes. Stateful, so the wider window sends no second notification.
resource failedRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${name}-failed-invocations'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments relay: failed invocations'
    description: 'A function invocation failed (the host\'s requests, success false), evaluated every 5 minutes over the last 15. Queue and blob invocations are retried by the host (five times, then the poison queue), so one failure loses nothing, but it should not happen: read the exception in Application Insights (exceptions and traces of the operation) and fix the cause.'
    severity: 2
    enabled: alertsEnabled
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '''
requests
| where success == false
| summarize failed = count() by function_name = name
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'failed'
          dimensions: [
            {
              name: 'function_name'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// e. Silence: the queue depths come every five minutes from the work_redrive timer; none for half an
// hour means the timer (and the alerts that read what it emits) is not running, or telemetry stopped.
resource silenceRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${name}-telemetry-silent'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Payments relay: no queue depths for 30 minutes'
    description: 'No queue.depth metric arrived for 30 minutes: the work_redrive timer, which emits it every five minutes, is not running, or the relay\'s telemetry stopped. Without it the poison and dead-letter alert cannot fire. Check that the function app runs and its timers fire (Application Insights, requests of work_redrive), and that PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY is true.'
    severity: 2
    enabled: alertsEnabled
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '''
customMetrics
| where name == "queue.depth"
| summarize arrived = count()
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'arrived'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// The operators' workbook, shown in the component's Workbooks blade. Its content is
// infra/workbooks/payments-relay.json; the component's id is added as its fallback resource.
var workbookContent = loadJsonContent('../workbooks/payments-relay.json')

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, insights.id, 'payments-relay-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Payments relay (${name})'
    category: 'workbook'
    sourceId: insights.id
    version: 'Notebook/1.0'
    serializedData: string(union(workbookContent, { fallbackResourceIds: [insights.id] }))
  }
}

output actionGroupId string = actionGroup.id
output workbookId string = workbook.id
