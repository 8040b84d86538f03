//! The authorization token a client presents to its relay.
//!
//! Relays with authorization on check a token at session setup: moq-relay-ietf (with its
//! `auth-cat` feature) and Cloudflare's relays take a Common Access Token (CTA-5007 CAT, the
//! profile draft-ietf-moq-c4m defines for MoQT) in SETUP's AUTHORIZATION TOKEN option. Issuers
//! hand CATs out as base64url text; that text is what [`Token::parse`] takes. Relays that read
//! a token from the URL instead (moq-dev's `?jwt=...`, a token path segment) need nothing
//! here: the URL's path and query reach the relay as written (WebTransport: the CONNECT
//! request; raw QUIC: SETUP's PATH), and logs never show either.

use std::fmt;

use base64::Engine;

use super::ConfigError;

/// The longest token accepted, in bytes once decoded: far above any CAT seen in practice
/// (hundreds of bytes), and well inside a SETUP message.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// An authorization token for the relay (see the module docs). Cheap to clone. Its `Debug`
/// shows only its length: the token itself never reaches a log or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    bytes: Vec<u8>,
}

impl Token {
    /// A token from its base64url text (RFC 4648 §5, padding optional; surrounding whitespace
    /// ignored), as issuers hand Common Access Tokens out.
    ///
    /// Errors: [`ConfigError::InvalidToken`] for an empty token, text that is not base64url,
    /// or a token over [`MAX_TOKEN_BYTES`]. The message never contains the token.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidToken { reason };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let unpadded = text.trim_end_matches('=');
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(unpadded)
            .map_err(|err| invalid(format!("it is not base64url text ({err})")))?;
        if bytes.len() > MAX_TOKEN_BYTES {
            return Err(invalid(format!(
                "it is {} bytes, more than the {MAX_TOKEN_BYTES} accepted",
                bytes.len()
            )));
        }
        Ok(Self { bytes })
    }

    /// The SETUP option carrying it: AUTHORIZATION TOKEN, token type CAT.
    pub(crate) fn setup_token(&self) -> moq_transport::setup::AuthorizationToken {
        moq_transport::setup::AuthorizationToken::new(
            moq_transport::setup::CAT_TOKEN_TYPE,
            self.bytes.clone(),
        )
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes, not shown>)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_with_or_without_padding_and_whitespace_parses() {
        let token = Token::parse(" 0oRDoQEmoA ").unwrap();
        assert_eq!(token.bytes, [0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0]);
        assert_eq!(Token::parse("0oRDoQEmoA==").unwrap(), token);
    }

    #[test]
    fn bad_tokens_are_refused_without_echoing_them() {
        for text in ["", "   ", "not base64!", &"A".repeat(MAX_TOKEN_BYTES * 2)] {
            let err = Token::parse(text).unwrap_err().to_string();
            assert!(err.starts_with("invalid token:"), "{err}");
            assert!(
                text.trim().is_empty() || !err.contains(text.trim()),
                "{err}"
            );
        }
    }

    #[test]
    fn debug_shows_the_length_only() {
        let token = Token::parse("c2VjcmV0LXRva2Vu").unwrap(); // "secret-token"
        assert_eq!(format!("{token:?}"), "Token(<12 bytes, not shown>)");
        let config = super::super::ClientConfig {
            token: Some(token),
            ..super::super::ClientConfig::new("moqt://localhost:4443")
        };
        assert!(!format!("{config:?}").contains("c2VjcmV0"));
    }
}
