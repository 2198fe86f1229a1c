//! AWS as the worker reaches it: the SDK configuration from the worker's `aws` section (region, endpoint, profile,
//! assumed role), shared by PutEvents, SQS, S3, the MSK IAM token and the secrets read from Secrets Manager and SSM.

pub mod blocking;
pub mod secrets;

use aws_config::{sts::AssumeRoleProvider, BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::config::AwsConfig;

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
