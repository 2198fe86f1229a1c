//! HTTP Basic credentials checked the one way both servers (the REST API and the receiver) check them: the scheme
//! read case-insensitively, the user and the password compared in constant time, so that timing tells nothing of
//! either.

use base64::Engine;
use subtle::ConstantTimeEq;

/// Whether an `Authorization` header carries exactly `user` and `password`.
pub(crate) fn admits(authorization: Option<&http::HeaderValue>, user: &[u8], password: &[u8]) -> bool {
    let given = authorization
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok());
    let Some(given) = given else {
        return false;
    };
    let Some(colon) = given.iter().position(|byte| *byte == b':') else {
        return false;
    };
    bool::from(given[..colon].ct_eq(user) & given[colon + 1..].ct_eq(password))
}

#[cfg(test)]
mod tests {
    use super::admits;

    fn header(text: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn only_the_exact_credentials_pass() {
        // "alice:s3cret:x", "alice:s3cret"
        assert!(admits(Some(&header("Basic YWxpY2U6czNjcmV0")), b"alice", b"s3cret"));
        assert!(admits(Some(&header("basic YWxpY2U6czNjcmV0")), b"alice", b"s3cret"));
        assert!(admits(
            Some(&header("Basic YWxpY2U6czNjcmV0Ong=")),
            b"alice",
            b"s3cret:x"
        ));
        assert!(!admits(Some(&header("Basic YWxpY2U6czNjcmV0")), b"alice", b"other"));
        assert!(!admits(Some(&header("Bearer YWxpY2U6czNjcmV0")), b"alice", b"s3cret"));
        assert!(!admits(Some(&header("Basic not-base64!")), b"alice", b"s3cret"));
        assert!(!admits(Some(&header("Basic YWxpY2U=")), b"alice", b""));
        assert!(!admits(None, b"alice", b"s3cret"));
    }
}
