//! Authentication options for dialing NATS (nats-backend.md §3.1) and credential
//! redaction. Executor code: it builds `async_nats::ConnectOptions`; it never logs
//! or formats a credential.

use std::io;

use async_nats::{ConnectError, ConnectOptions};
use base64::Engine as _;

/// The options to dial with and the URL list with every userinfo removed.
pub(crate) struct DialPlan {
    pub(crate) options: ConnectOptions,
    pub(crate) url: String,
}

impl DialPlan {
    /// The server addresses to dial: async-nats reads one `&str` as one URL, so a
    /// comma-separated list is split.
    pub(crate) fn servers(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Userinfo taken out of one URL entry.
struct Userinfo {
    user: String,
    pass: String,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `scheme://userinfo@rest` into the userinfo and the URL without it.
/// Entries without userinfo come back unchanged.
fn strip_userinfo(entry: &str) -> (String, Option<Userinfo>) {
    let trimmed = entry.trim();
    let (scheme, rest) = match trimmed.find("://") {
        Some(at) => (&trimmed[..at + 3], &trimmed[at + 3..]),
        None => ("", trimmed),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (trimmed.to_string(), None);
    };
    let userinfo = &authority[..at];
    let host_and_path = &rest[at + 1..];
    let (user, pass) = match userinfo.find(':') {
        Some(colon) => (&userinfo[..colon], &userinfo[colon + 1..]),
        None => (userinfo, ""),
    };
    (
        format!("{scheme}{host_and_path}"),
        Some(Userinfo {
            user: percent_decode(user),
            pass: percent_decode(pass),
        }),
    )
}

/// The URL list with the password of every userinfo masked, for `Debug` output.
pub(crate) fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|entry| {
            let trimmed = entry.trim();
            let (scheme, rest) = match trimmed.find("://") {
                Some(at) => (&trimmed[..at + 3], &trimmed[at + 3..]),
                None => ("", trimmed),
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                None => trimmed.to_string(),
                Some(at) => {
                    let userinfo = &rest[..at];
                    let user = userinfo.split(':').next().unwrap_or("");
                    format!("{scheme}{user}:[redacted]@{}", &rest[at + 1..])
                }
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Picks the authentication of nats-backend.md §3.1: inline base64 creds, then a
/// creds file, then `user:pass@` in the URL (stripped from every entry), then none.
pub(crate) async fn build_options(
    url: &str,
    creds: Option<&str>,
    creds_file: Option<&str>,
) -> Result<DialPlan, ConnectError> {
    let mut stripped = Vec::new();
    let mut userinfo = None;
    for entry in url.split(',') {
        let (clean, info) = strip_userinfo(entry);
        if userinfo.is_none() {
            userinfo = info;
        }
        stripped.push(clean);
    }
    let dial_url = stripped.join(",");
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
    } else if let Some(info) = userinfo {
        ConnectOptions::with_user_and_password(info.user, info.pass)
    } else {
        ConnectOptions::new()
    };
    Ok(DialPlan {
        options,
        url: dial_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_stripped_and_decoded() {
        let (url, info) = strip_userinfo("nats://al%40ice:p%3Ass@host:4222");
        assert_eq!(url, "nats://host:4222");
        let info = info.unwrap();
        assert_eq!(info.user, "al@ice");
        assert_eq!(info.pass, "p:ss");
    }

    #[test]
    fn entries_without_userinfo_are_unchanged() {
        let (url, info) = strip_userinfo("nats://host:4222");
        assert_eq!(url, "nats://host:4222");
        assert!(info.is_none());
        let (url, info) = strip_userinfo("127.0.0.1:4222");
        assert_eq!(url, "127.0.0.1:4222");
        assert!(info.is_none());
    }

    #[test]
    fn redaction_masks_passwords_only() {
        assert_eq!(
            redact_url("nats://u:secret@a:1, nats://b:2"),
            "nats://u:[redacted]@a:1,nats://b:2"
        );
        assert!(!redact_url("nats://u:secret@a:1").contains("secret"));
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[tokio::test]
    async fn first_userinfo_wins_and_every_entry_is_stripped() {
        let plan = build_options("nats://a:b@h1:1,nats://c:d@h2:2", None, None)
            .await
            .unwrap();
        assert_eq!(plan.url, "nats://h1:1,nats://h2:2");
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
