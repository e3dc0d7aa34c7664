//! Authentication options for dialing NATS (docs/nats-backend.md, "URL credentials (issue
//! 9)") and credential redaction. Executor code: it builds `async_nats::ConnectOptions`; it
//! never logs or formats a credential.

use std::io;

use async_nats::{ConnectError, ConnectOptions};
use base64::Engine as _;

use crate::protocol::nats::{UrlCredentials, parse_server_list, redact_server_list};

/// The options to dial with and the server addresses with every userinfo removed.
pub(crate) struct DialPlan {
    pub(crate) options: ConnectOptions,
    servers: Vec<String>,
}

impl DialPlan {
    /// The server addresses to dial, one per entry of the URL list (async-nats
    /// reads one `&str` as one URL), without user info.
    pub(crate) fn servers(&self) -> Vec<String> {
        self.servers.clone()
    }
}

/// The URL list for `Debug` output: every byte that may be user info is
/// replaced by `[redacted]` (`protocol::nats::redact_server_list`).
pub(crate) fn redact_url(url: &str) -> String {
    redact_server_list(url)
}

/// Picks the authentication of docs/nats-backend.md, "URL credentials (issue 9)": inline
/// base64 creds, then a creds file, then user info in the URL (`user:pass@` or `token@`,
/// taken from the first entry that carries any), then none. The URL list is read by
/// `protocol::nats::parse_server_list`; a list it refuses (ambiguous, unreadable, too long,
/// not UTF-8) is an `InvalidInput` error whose text never quotes the URL.
pub(crate) async fn build_options(
    url: &str,
    creds: Option<&str>,
    creds_file: Option<&str>,
) -> Result<DialPlan, ConnectError> {
    let list = parse_server_list(url)
        .map_err(|e| ConnectError::from(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let from_file = creds.is_some() || creds_file.is_some();
    if list.credentials.is_some() && from_file {
        tracing::warn!("the server URL carries credentials, which are ignored: creds are given");
    } else if list.credentials_differ {
        tracing::warn!(
            "several server URLs carry different credentials; only the first entry's are used"
        );
    }
    let options = if let Some(encoded) = creds {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("creds are not base64: {e}"),
                )
            })?;
        let content = String::from_utf8(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "creds are not UTF-8"))?;
        ConnectOptions::with_credentials(&content)?
    } else if let Some(path) = creds_file {
        ConnectOptions::with_credentials_file(path).await?
    } else {
        match list.credentials {
            Some(UrlCredentials::UserPassword { user, password }) => {
                ConnectOptions::with_user_and_password(user, password)
            }
            Some(UrlCredentials::Token(token)) => ConnectOptions::with_token(token),
            None => ConnectOptions::new(),
        }
    };
    Ok(DialPlan {
        options,
        servers: list.servers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_masks_user_info_of_every_entry() {
        assert_eq!(
            redact_url("nats://u:secret@a:1, nats://b:2"),
            "nats://[redacted]@a:1,nats://b:2"
        );
        assert!(!redact_url("nats://u:secret@a:1").contains("secret"));
    }

    #[tokio::test]
    async fn first_userinfo_wins_and_every_entry_is_stripped() {
        let plan = build_options("nats://a:b@h1:1,nats://c:d@h2:2", None, None)
            .await
            .unwrap();
        assert_eq!(plan.servers(), ["nats://h1:1", "nats://h2:2"]);
    }

    #[tokio::test]
    async fn an_ambiguous_list_is_invalid_input_without_the_url() {
        let err = build_options("nats://abc,SECRET@h:1", None, None)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("%2C"), "{err}");
        assert!(!format!("{err} {err:?}").contains("SECRET"));
    }

    #[tokio::test]
    async fn bad_base64_creds_are_invalid_data() {
        let err = build_options("nats://h:1", Some("%%%"), None)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("base64") || format!("{err:?}").contains("InvalidData"));
    }
}
