//! `provision: true`: the rule, the queue with its redrive dead-letter queue, the queue policy that lets the rule
//! send, and the target, created or brought up to date. Every call is idempotent, so each start may run it.

use aws_sdk_sqs::types::QueueAttributeName;

use super::config::ProvisionConfig;
use crate::config::ConnectorName;

#[derive(Debug, thiserror::Error)]
#[error("provisioning {what}: {reason}")]
pub(crate) struct ProvisionError {
    pub(crate) what: String,
    pub(crate) reason: String,
}

fn failed(what: impl Into<String>) -> impl FnOnce(String) -> ProvisionError {
    let what = what.into();
    move |reason| ProvisionError { what, reason }
}

fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    crate::error_chain(error)
}

async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<(String, String), ProvisionError> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|error| describe(&error))
        .map_err(failed(format!("queue {name}")))?
        .queue_url
        .ok_or_else(|| failed(format!("queue {name}"))("no queue URL in the answer".into()))?;
    if !attributes.is_empty() {
        let mut request = sqs.set_queue_attributes().queue_url(&url);
        for (key, value) in attributes {
            request = request.attributes(key.clone(), value);
        }
        request
            .send()
            .await
            .map_err(|error| describe(&error))
            .map_err(failed(format!("attributes of queue {name}")))?;
    }
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| describe(&error))
        .map_err(failed(format!("queue {name}")))?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| failed(format!("queue {name}"))("no QueueArn attribute".into()))?;
    Ok((url, arn))
}

/// Returns the queue's URL.
pub(crate) async fn provision(
    events: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    connector: &ConnectorName,
    config: &ProvisionConfig,
) -> Result<String, ProvisionError> {
    let queue_name = config.queue_name(connector);
    let rule_name = config.rule_name(connector);
    let pattern = config
        .pattern_text()
        .map_err(|invalid| failed("the event pattern")(invalid.to_string()))?;

    let rule_arn = events
        .put_rule()
        .name(&rule_name)
        .event_bus_name(&config.event_bus)
        .event_pattern(pattern)
        .description(format!(
            "ebconnect connector {connector}: events for queue {queue_name}"
        ))
        .send()
        .await
        .map_err(|error| describe(&error))
        .map_err(failed(format!("rule {rule_name} on bus {}", config.event_bus)))?
        .rule_arn
        .unwrap_or_default();

    let (_, dead_letter_arn) = queue(sqs, &format!("{queue_name}-dlq"), &[]).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": config.max_receive_count.to_string(),
    });
    let (url, queue_arn) = queue(
        sqs,
        &queue_name,
        &[(QueueAttributeName::RedrivePolicy, redrive.to_string())],
    )
    .await?;
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ebconnect-eventbridge-rule",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    });
    queue(sqs, &queue_name, &[(QueueAttributeName::Policy, policy.to_string())]).await?;

    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("ebconnect")
        .arn(&queue_arn)
        .build()
        .map_err(|error| describe(&error))
        .map_err(failed("the rule's target"))?;
    let answer = events
        .put_targets()
        .rule(&rule_name)
        .event_bus_name(&config.event_bus)
        .targets(target)
        .send()
        .await
        .map_err(|error| describe(&error))
        .map_err(failed(format!("target of rule {rule_name}")))?;
    if answer.failed_entry_count() > 0 {
        return Err(failed(format!("target of rule {rule_name}"))(format!(
            "{:?}",
            answer.failed_entries()
        )));
    }
    Ok(url)
}
