//! AWS as the worker reaches it: the SDK configuration from the worker's `aws` section (region, endpoint, profile,
//! assumed role), shared by PutEvents, SQS, S3, the MSK IAM token and the secrets read from Secrets Manager and SSM.

pub mod blocking;
pub mod secrets;

use aws_config::{sts::AssumeRoleProvider, BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::config::AwsConfig;

/// An AWS service ebconnect calls, as `aws.service_endpoints` names it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Service {
    Events,
    Sqs,
    S3,
    SecretsManager,
    Ssm,
    Glue,
}

/// The endpoint override for one service: `aws.service_endpoints.<service>`, else `aws.endpoint_url`.
pub(crate) fn endpoint_override(aws: &AwsConfig, service: Service) -> Option<&str> {
    service_endpoint(aws, service)
        .or(aws.endpoint_url.as_ref())
        .map(|url| url.value())
}

fn service_endpoint(aws: &AwsConfig, service: Service) -> Option<&crate::config::Interpolated> {
    let endpoints = &aws.service_endpoints;
    match service {
        Service::Events => endpoints.events.as_ref(),
        Service::Sqs => endpoints.sqs.as_ref(),
        Service::S3 => endpoints.s3.as_ref(),
        Service::SecretsManager => endpoints.secretsmanager.as_ref(),
        Service::Ssm => endpoints.ssm.as_ref(),
        Service::Glue => endpoints.glue.as_ref(),
    }
}

/// The SDK configuration a client of one service is built from: the worker's (loaded with `aws.endpoint_url`), with
/// that service's own endpoint when it has one.
pub(crate) fn service_config(sdk: &aws_config::SdkConfig, aws: &AwsConfig, service: Service) -> aws_config::SdkConfig {
    let Some(url) = service_endpoint(aws, service) else {
        return sdk.clone();
    };
    let mut builder = sdk.clone().into_builder();
    builder.set_endpoint_url(Some(url.value().to_owned()));
    // Marked as set in code: a client takes an endpoint set otherwise only when the environment (`AWS_ENDPOINT_URL`,
    // `AWS_ENDPOINT_URL_SQS`, ...) names none, and the worker file's setting must win over the environment.
    builder.insert_origin("endpoint_url", aws_types::origin::Origin::shared_config());
    builder.build()
}

pub(crate) async fn sdk_config(aws: &AwsConfig) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &aws.region {
        loader = loader.region(Region::new(region.value().to_owned()));
    }
    if let Some(endpoint) = &aws.endpoint_url {
        loader = loader.endpoint_url(endpoint.value());
    }
    if let Some(profile) = &aws.profile {
        loader = loader.profile_name(profile.value());
    }
    let config = loader.load().await;
    let Some(role) = &aws.assume_role else {
        return config;
    };
    let mut provider = AssumeRoleProvider::builder(role.role_arn.value())
        .session_name(role.session_name.as_ref().map_or("ebconnect", |name| name.value()))
        .configure(&config);
    if let Some(external_id) = &role.external_id {
        provider = provider.external_id(external_id.expose());
    }
    let provider = provider.build().await;
    config
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_endpoint_overrides_the_shared_one_for_that_service_only() {
        let aws: AwsConfig = serde_norway::from_str(
            "endpoint_url: http://emulator:5000\nservice_endpoints:\n  sqs: http://elasticmq:9324\n",
        )
        .unwrap();
        assert_eq!(endpoint_override(&aws, Service::Sqs), Some("http://elasticmq:9324"));
        assert_eq!(endpoint_override(&aws, Service::Events), Some("http://emulator:5000"));
        let sdk = aws_config::SdkConfig::builder()
            .endpoint_url("http://emulator:5000")
            .build();
        let sqs = service_config(&sdk, &aws, Service::Sqs);
        assert_eq!(sqs.endpoint_url(), Some("http://elasticmq:9324"));
        assert!(sqs.get_origin("endpoint_url").is_client_config());
        assert_eq!(
            service_config(&sdk, &aws, Service::S3).endpoint_url(),
            Some("http://emulator:5000")
        );
    }

    #[test]
    fn an_unknown_service_is_refused_by_name() {
        let error = serde_norway::from_str::<AwsConfig>("service_endpoints:\n  sns: http://x\n").unwrap_err();
        assert!(error.to_string().contains("unknown field `sns`"), "{error}");
    }
}
