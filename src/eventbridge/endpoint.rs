//! Where PutEvents requests go and how they are signed. The SDK's endpoint rules decide, so partitions, FIPS,
//! dual-stack and global endpoints resolve exactly as the AWS SDKs resolve them: a regional endpoint (or
//! `aws.endpoint_url`) signed with SigV4, or, with `endpoint_id`, a global endpoint signed with SigV4a.

use aws_config::SdkConfig;
use aws_sdk_eventbridge::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};

/// The service name PutEvents is signed for.
pub(crate) const SIGNING_NAME: &str = "events";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signing {
    V4 {
        region: String,
    },
    /// Global endpoints: one signature valid in the regions of the set (`*`: all).
    V4a {
        region_set: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PutEventsEndpoint {
    pub(crate) url: String,
    pub(crate) signing: Signing,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot resolve the EventBridge endpoint (region {region:?}, endpoint_id {endpoint_id:?}): {reason}")]
pub(crate) struct EndpointError {
    region: Option<String>,
    endpoint_id: Option<String>,
    reason: String,
}

pub(crate) async fn resolve(sdk: &SdkConfig, endpoint_id: Option<&str>) -> Result<PutEventsEndpoint, EndpointError> {
    let region = sdk.region().map(|region| region.to_string());
    let error = |reason: String| EndpointError {
        region: region.clone(),
        endpoint_id: endpoint_id.map(str::to_owned),
        reason,
    };
    let params = Params::builder()
        .set_region(region.clone())
        .set_use_fips(sdk.use_fips())
        .set_use_dual_stack(sdk.use_dual_stack())
        .set_endpoint(sdk.endpoint_url().map(str::to_owned))
        .set_endpoint_id(endpoint_id.map(str::to_owned))
        .build()
        .map_err(|invalid| error(invalid.to_string()))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|reason| error(crate::error_chain(reason.as_ref())))?;
    let sigv4a = endpoint.auth_schemes().iter().find(|scheme| scheme.name() == "sigv4a");
    let signing = match sigv4a {
        Some(scheme) => Signing::V4a {
            region_set: region_set(scheme.get("signingRegionSet")),
        },
        None => Signing::V4 {
            region: region
                .clone()
                .ok_or_else(|| error("no region to sign requests for".into()))?,
        },
    };
    Ok(PutEventsEndpoint {
        url: endpoint.url().to_owned(),
        signing,
    })
}

/// The rules give the region set as a list; SigV4a signs it as one comma-separated header value.
fn region_set(document: Option<&aws_smithy_types::Document>) -> String {
    let regions: Vec<&str> = match document {
        Some(aws_smithy_types::Document::Array(regions)) => {
            regions.iter().filter_map(|region| region.as_string()).collect()
        }
        _ => Vec::new(),
    };
    if regions.is_empty() {
        "*".to_owned()
    } else {
        regions.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::{BehaviorVersion, Region};

    fn sdk(endpoint_url: Option<&str>) -> SdkConfig {
        let builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"));
        match endpoint_url {
            Some(url) => builder.endpoint_url(url).build(),
            None => builder.build(),
        }
    }

    #[tokio::test]
    async fn regional_endpoints_sign_with_sigv4() {
        let endpoint = resolve(&sdk(None), None).await.unwrap();
        assert_eq!(endpoint.url, "https://events.eu-west-1.amazonaws.com");
        assert_eq!(
            endpoint.signing,
            Signing::V4 {
                region: "eu-west-1".into()
            }
        );
        let local = resolve(&sdk(Some("http://127.0.0.1:5000")), None).await.unwrap();
        assert_eq!(local.url, "http://127.0.0.1:5000");
    }

    #[tokio::test]
    async fn global_endpoints_sign_with_sigv4a_for_every_region() {
        let endpoint = resolve(&sdk(None), Some("abcde.veo")).await.unwrap();
        assert_eq!(endpoint.url, "https://abcde.veo.endpoint.events.amazonaws.com");
        assert_eq!(endpoint.signing, Signing::V4a { region_set: "*".into() });
    }

    #[tokio::test]
    async fn a_malformed_endpoint_id_is_an_error() {
        let error = resolve(&sdk(None), Some("not a host label!")).await.unwrap_err();
        assert!(error.to_string().contains("endpoint_id"), "{error}");
    }
}
