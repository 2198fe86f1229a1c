//! Bearer tokens for a Schema Registry behind OAuth (Confluent Cloud's OAuth for Schema Registry): fetched with the
//! client credentials grant (RFC 6749 section 4.4) and set on every registry request by a middleware of the registry
//! client, renewed once 80% of a token's lifetime has passed, as librdkafka renews Kafka's.

use std::time::{Duration, Instant};

use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use tokio::sync::Mutex;

use crate::config::RegistryOAuthConfig;

/// The lifetime assumed when the identity provider does not give `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
#[error("cannot get a Schema Registry token from {endpoint}: {reason}")]
pub(crate) struct TokenError {
    endpoint: String,
    reason: String,
    /// The identity provider answered and said no (a 4xx): retrying will not help.
    refused: bool,
}

struct Token {
    value: String,
    renew_after: Instant,
}

pub(crate) struct BearerTokens {
    client: reqwest::Client,
    endpoint: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    current: Mutex<Option<Token>>,
}

impl BearerTokens {
    pub(crate) fn new(config: &RegistryOAuthConfig, client: reqwest::Client) -> Self {
        Self {
            client,
            endpoint: config.token_endpoint_url.value().to_owned(),
            client_id: config.client_id.value().to_owned(),
            client_secret: config.client_secret.expose().to_owned(),
            scope: config.scope.as_ref().map(|scope| scope.value().to_owned()),
            current: Mutex::new(None),
        }
    }

    /// The token to send: the current one, or a new one once it is due for renewal.
    async fn token(&self) -> Result<String, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|token| Instant::now() < token.renew_after) {
            return Ok(token.value.clone());
        }
        let token = self.fetch().await?;
        let value = token.value.clone();
        *current = Some(token);
        Ok(value)
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        let failed = |reason: String| TokenError {
            endpoint: self.endpoint.clone(),
            reason,
            refused: false,
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let asked = Instant::now();
        let response = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|error| failed(error.to_string()))?;
        let status = response.status();
        let body = response.text().await.map_err(|error| failed(error.to_string()))?;
        if !status.is_success() {
            return Err(TokenError {
                refused: status.is_client_error(),
                ..failed(format!(
                    "status {status}: {}",
                    body.chars().take(300).collect::<String>()
                ))
            });
        }
        let answer: TokenResponse = serde_json::from_str(&body)
            .map_err(|error| failed(format!("the answer is not a token response: {error}")))?;
        let lifetime = answer.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
        crate::redact::record(&answer.access_token);
        Ok(Token {
            value: answer.access_token,
            renew_after: asked + lifetime.mul_f64(0.8),
        })
    }
}

/// A registry's 401 answer, in its error shape, carrying why no token was had.
fn refusal(error: &TokenError) -> reqwest::Response {
    let body = serde_json::json!({"error_code": 401, "message": error.to_string()}).to_string();
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/vnd.schemaregistry.v1+json"),
    );
    reqwest::Response::from(response)
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[async_trait::async_trait]
impl Middleware for BearerTokens {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let token = match self.token().await {
            Ok(token) => token,
            // Answered as the registry answers refused credentials, so that the registry client fails the record
            // instead of retrying it as it retries an unreachable registry.
            Err(error) if error.refused => return Ok(refusal(&error)),
            Err(error) => return Err(reqwest_middleware::Error::middleware(error)),
        };
        let header =
            http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(reqwest_middleware::Error::middleware)?;
        request.headers_mut().insert(http::header::AUTHORIZATION, header);
        next.run(request, extensions).await
    }
}
