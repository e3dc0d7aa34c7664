//! The server-list kernel (docs/nats-backend.md, "URL credentials"): reads a comma-separated NATS URL
//! list whose user info may hold raw `/`, `,`, `@` or `:`, yields the addresses to
//! dial and the credentials, and renders a redacted copy for `Debug`.
//! Pure string rules: no I/O, never a panic, never echoes user info.
//!
//! # Grammar (docs/nats-backend.md "URL credentials")
//!
//! ```text
//! list    = entry *( "," entry )           ; whitespace around an entry is ignored
//! entry   = "" | [ scheme "://" ] [ userinfo "@" ] host [ ":" port ] [ path ]
//! scheme  = ALPHA *( ALPHA | DIGIT | "+" | "-" | "." )
//! host    = 1*( ALPHA | DIGIT | "-" | "." | "_" | "~" | "%" ) | "[" 1*( HEXDIG | ":" | "." | "%" | ALPHA ) "]"
//! port    = 1*5DIGIT
//! path    = ( "/" | "?" | "#" ) *( any but "," and "@" )   ; ws:// and wss:// only
//! userinfo = any text, up to the LAST "@" of the entry; it may contain ","
//!            unless the text after that "," starts a new entry with a scheme
//! ```
//!
//! A list can have several readings when a raw `,` sits in user info
//! (`nats://abc,def@h` is one server with token `abc,def`, or server `abc` and
//! server `h` with token `def`). [`parse_server_list`] refuses such a list
//! ([`ServerListError::Ambiguous`]); [`redact_server_list`] hides every byte that
//! is user info in *any* reading, so `Debug` is safe even for a refused list.

use std::fmt;
use std::ops::Range;

/// Longest URL list read, in bytes; a longer one is refused (and fully redacted).
pub const MAX_SERVER_LIST_BYTES: usize = 16 * 1024;
/// Most comma-separated pieces read; a list with more is refused.
pub const MAX_SERVER_LIST_PIECES: usize = 512;
/// What `redact_server_list` prints in place of user info.
pub const REDACTED: &str = "[redacted]";

/// Credentials carried as user info in a server URL, percent-decoded.
///
/// `Debug` never shows the secret parts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum UrlCredentials {
    /// `user:password@` (the first raw `:` separates them; the password may be empty).
    UserPassword {
        /// The user name (a `:` in it must be written `%3A`).
        user: String,
        /// The password.
        password: String,
    },
    /// `token@` (user info without a raw `:`), the NATS token convention.
    Token(String),
}

impl fmt::Debug for UrlCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlCredentials::UserPassword { .. } => f.write_str("UserPassword([redacted])"),
            UrlCredentials::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

/// The one reading of a URL list: what to dial and with which credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServerList {
    /// Every non-empty entry with its user info removed (`scheme://host:port/path`),
    /// in the order given.
    pub servers: Vec<String>,
    /// The credentials of the first entry that carries non-empty user info.
    pub credentials: Option<UrlCredentials>,
    /// Whether some later entry carries user info other than `credentials`' (it is
    /// ignored; the executor warns).
    pub credentials_differ: bool,
}

impl fmt::Debug for ServerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerList")
            .field("servers", &self.servers)
            .field("credentials", &self.credentials)
            .field("credentials_differ", &self.credentials_differ)
            .finish()
    }
}

/// Why a URL list was refused. The text never contains any part of the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerListError {
    /// A raw `,` inside user info makes the list readable in more than one way.
    Ambiguous,
    /// The list carries an `@` but no reading makes every entry a server address.
    Unreadable,
    /// Longer than [`MAX_SERVER_LIST_BYTES`] or more than [`MAX_SERVER_LIST_PIECES`] pieces.
    TooLong,
    /// The percent-decoded user info is not UTF-8.
    NotUtf8,
}

impl fmt::Display for ServerListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerListError::Ambiguous => f.write_str(
                "the server URL list can be read in more than one way because a ',' may belong \
                 to the credentials; write ',' inside credentials as %2C and start every server \
                 with its scheme (nats://)",
            ),
            ServerListError::Unreadable => f.write_str(
                "the server URL list carries credentials ('@') but is not a list of \
                 [scheme://][credentials@]host[:port] entries; percent-encode special \
                 characters in the credentials",
            ),
            ServerListError::TooLong => write!(
                f,
                "the server URL list is longer than {MAX_SERVER_LIST_BYTES} bytes or \
                 {MAX_SERVER_LIST_PIECES} comma-separated pieces"
            ),
            ServerListError::NotUtf8 => {
                f.write_str("the percent-decoded credentials in the server URL are not UTF-8")
            }
        }
    }
}

impl std::error::Error for ServerListError {}

/// Reads `url` (one URL or a comma-separated list) by the grammar in the module docs.
///
/// A list without any `@` carries no credentials: it is split at every `,` and
/// each trimmed non-empty entry is returned unchanged (async-nats judges it).
/// Otherwise the list must have exactly one reading.
pub fn parse_server_list(url: &str) -> Result<ServerList, ServerListError> {
    if !url.contains('@') {
        return Ok(ServerList {
            servers: url
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            credentials: None,
            credentials_differ: false,
        });
    }
    let analysis = Analysis::of(url).ok_or(ServerListError::TooLong)?;
    let entries = match analysis.readings {
        0 => return Err(ServerListError::Unreadable),
        1 => analysis.unique_reading(),
        _ => return Err(ServerListError::Ambiguous),
    };
    let mut servers = Vec::with_capacity(entries.len());
    let mut first_info: Option<&str> = None;
    let mut credentials_differ = false;
    for entry in &entries {
        let Entry::Server {
            scheme,
            userinfo,
            host,
        } = entry
        else {
            continue;
        };
        servers.push(format!("{}{}", &url[scheme.clone()], &url[host.clone()]));
        if let Some(info) = userinfo.clone().map(|r| &url[r]).filter(|s| !s.is_empty()) {
            match first_info {
                None => first_info = Some(info),
                Some(first) if first != info => credentials_differ = true,
                Some(_) => {}
            }
        }
    }
    let credentials = first_info.map(decode_credentials).transpose()?;
    Ok(ServerList {
        servers,
        credentials,
        credentials_differ,
    })
}

/// `url` with every byte that is user info in any reading hidden.
///
/// One reading: each entry as `scheme://[redacted]@host…` (or unchanged without
/// user info), trimmed and joined by `,`. Several readings: the text with each
/// run of possibly-user-info bytes replaced by `[redacted]`. No reading, or too
/// long: `[redacted]`. A list without `@` carries no user info and is returned
/// trimmed per entry.
pub fn redact_server_list(url: &str) -> String {
    if !url.contains('@') {
        return url.split(',').map(str::trim).collect::<Vec<_>>().join(",");
    }
    let Some(analysis) = Analysis::of(url) else {
        return REDACTED.to_string();
    };
    match analysis.readings {
        0 => REDACTED.to_string(),
        1 => analysis
            .unique_reading()
            .iter()
            .map(|entry| match entry {
                Entry::Empty => String::new(),
                Entry::Server {
                    scheme,
                    userinfo: None,
                    host,
                } => format!("{}{}", &url[scheme.clone()], &url[host.clone()]),
                Entry::Server {
                    scheme,
                    userinfo: Some(_),
                    host,
                } => format!("{}{REDACTED}@{}", &url[scheme.clone()], &url[host.clone()]),
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => analysis.mask_possible_userinfo(),
    }
}

/// One comma-separated piece, trimmed, with its facts precomputed.
struct Piece {
    /// Byte range of the trimmed text in the list.
    text: Range<usize>,
    /// Length of a leading `scheme://`, 0 when none.
    scheme_len: usize,
    /// Offset (in the list) of the piece's last `@`.
    last_at: Option<usize>,
    /// The text after the last `@` (or after the scheme, without `@`) is `host[:port][path]`.
    host_ok: bool,
}

/// One entry of a reading, as byte ranges into the list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// A whitespace-only piece (`a,,b`); skipped.
    Empty,
    /// `scheme` (with `://`, maybe empty), user info (without `@`), host part.
    Server {
        scheme: Range<usize>,
        userinfo: Option<Range<usize>>,
        host: Range<usize>,
    },
}

struct Analysis<'a> {
    url: &'a str,
    pieces: Vec<Piece>,
    /// `lows[j]`: the first piece an entry ending at piece `j` may start at.
    lows: Vec<usize>,
    /// Number of readings, saturated at 2.
    readings: u8,
}

impl<'a> Analysis<'a> {
    fn of(url: &'a str) -> Option<Analysis<'a>> {
        if url.len() > MAX_SERVER_LIST_BYTES {
            return None;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        for raw in url.split(',') {
            if pieces.len() == MAX_SERVER_LIST_PIECES {
                return None;
            }
            pieces.push(Piece::of(url, start, raw));
            start += raw.len() + 1;
        }
        let n = pieces.len();
        // A piece after the first that starts with a scheme always starts an entry.
        let mut lows = Vec::with_capacity(n);
        let mut low = 0;
        for (j, piece) in pieces.iter().enumerate() {
            if piece.scheme_len > 0 {
                low = j;
            }
            lows.push(low);
        }
        let mut analysis = Analysis {
            url,
            pieces,
            lows,
            readings: 0,
        };
        // Readings of the prefix 0..k, saturated at 2.
        let mut starts = vec![0u8; n + 1];
        starts[0] = 1;
        for j in 0..n {
            for i in analysis.candidate_starts(j) {
                if starts[i] != 0 && analysis.entry(i, j).is_some() {
                    starts[j + 1] = starts[j + 1].saturating_add(starts[i]).min(2);
                }
            }
        }
        analysis.readings = starts[n];
        Some(analysis)
    }

    /// The pieces `i` an entry ending at piece `j` may start at.
    fn candidate_starts(&self, j: usize) -> Range<usize> {
        self.lows[j]..j + 1
    }

    /// The entry made of pieces `i..=j`, if it is one.
    fn entry(&self, i: usize, j: usize) -> Option<Entry> {
        let first = &self.pieces[i];
        let last = &self.pieces[j];
        if first.text.is_empty() && i == j {
            return Some(Entry::Empty);
        }
        if !last.host_ok {
            return None;
        }
        let scheme = first.text.start..first.text.start + first.scheme_len;
        match last.last_at {
            Some(at) => Some(Entry::Server {
                userinfo: Some(scheme.end..at),
                host: at + 1..last.text.end,
                scheme,
            }),
            None if i == j => Some(Entry::Server {
                host: scheme.end..last.text.end,
                userinfo: None,
                scheme,
            }),
            // The host part would hold a ','.
            None => None,
        }
    }

    /// The entries of the only reading (call only when `readings == 1`).
    ///
    /// Once any reading exists, a reading of the pieces from every position `k`
    /// exists too (the reading either has an entry boundary at `k`, or an entry
    /// `a..=b` around it, and then `k..=b` is an entry as well: same last piece,
    /// and `k` is a candidate start of `b`). So every entry that starts where the
    /// previous one ended leads to a complete reading, and with exactly one reading
    /// the first entry found from each start is the reading's.
    fn unique_reading(&self) -> Vec<Entry> {
        let n = self.pieces.len();
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let next = (i..n).find_map(|j| {
                let entry = self.entry(i, j)?;
                self.candidate_starts(j).contains(&i).then_some((j, entry))
            });
            let Some((j, entry)) = next else {
                break;
            };
            out.push(entry);
            i = j + 1;
        }
        out
    }

    /// The list as given with every run of bytes that is user info in some
    /// reading replaced by [`REDACTED`].
    fn mask_possible_userinfo(&self) -> String {
        let n = self.pieces.len();
        let len = self.url.len();
        let mut delta = vec![0i32; len + 1];
        let mut starts_ok = vec![false; n + 1];
        starts_ok[0] = true;
        for j in 0..n {
            for i in self.candidate_starts(j) {
                if !starts_ok[i] {
                    continue;
                }
                let Some(entry) = self.entry(i, j) else {
                    continue;
                };
                starts_ok[j + 1] = true;
                // Every entry reached from the start lies on a complete reading
                // (see `unique_reading`), so its user info is user info in some reading.
                if let Entry::Server {
                    userinfo: Some(info),
                    ..
                } = entry
                {
                    delta[info.start] += 1;
                    delta[info.end] -= 1;
                }
            }
        }
        let mut out = String::with_capacity(len);
        let mut depth = 0i32;
        let mut in_mask = false;
        for (at, ch) in self.url.char_indices() {
            depth += delta[at..at + ch.len_utf8()].iter().sum::<i32>();
            if depth > 0 {
                if !in_mask {
                    out.push_str(REDACTED);
                    in_mask = true;
                }
            } else {
                in_mask = false;
                out.push(ch);
            }
        }
        out
    }
}

impl Piece {
    fn of(url: &str, start: usize, raw: &str) -> Piece {
        let lead = raw.len() - raw.trim_start().len();
        let trimmed = raw.trim();
        let text = start + lead..start + lead + trimmed.len();
        let scheme_len = scheme_len(trimmed);
        let last_at = trimmed[scheme_len..]
            .rfind('@')
            .map(|at| text.start + scheme_len + at);
        let host_part = match last_at {
            Some(at) => &url[at + 1..text.end],
            None => &trimmed[scheme_len..],
        };
        // A path only means something for WebSocket servers.
        let scheme = &trimmed[..scheme_len];
        let path_ok = scheme.eq_ignore_ascii_case("ws://") || scheme.eq_ignore_ascii_case("wss://");
        Piece {
            host_ok: host_part_ok(host_part, path_ok),
            text,
            scheme_len,
            last_at,
        }
    }
}

/// Length of a leading `scheme://`, or 0.
fn scheme_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_alphabetic) {
        return 0;
    }
    let name = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    if text[name..].starts_with("://") {
        name + 3
    } else {
        0
    }
}

/// `host [":" port] [path]` of the module grammar; `path` only when `path_ok`.
fn host_part_ok(text: &str, path_ok: bool) -> bool {
    let bytes = text.as_bytes();
    let host_len = if bytes.first() == Some(&b'[') {
        match bytes.iter().position(|&b| b == b']') {
            Some(close)
                if close > 1
                    && bytes[1..close]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'%')) =>
            {
                close + 1
            }
            _ => return false,
        }
    } else {
        bytes
            .iter()
            .take_while(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%')
            })
            .count()
    };
    if host_len == 0 {
        return false;
    }
    let mut rest = &bytes[host_len..];
    if let Some(after) = rest.strip_prefix(b":") {
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=5).contains(&digits) {
            return false;
        }
        rest = &after[digits..];
    }
    rest.is_empty() || (path_ok && matches!(rest[0], b'/' | b'?' | b'#'))
}

/// Splits raw user info at its first `:` and percent-decodes the parts.
fn decode_credentials(info: &str) -> Result<UrlCredentials, ServerListError> {
    match info.split_once(':') {
        Some((user, password)) => Ok(UrlCredentials::UserPassword {
            user: percent_decode(user)?,
            password: percent_decode(password)?,
        }),
        None => Ok(UrlCredentials::Token(percent_decode(info)?)),
    }
}

/// `%XX` → the byte; a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &str) -> Result<String, ServerListError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ServerListError::NotUtf8)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_pass(user: &str, password: &str) -> Option<UrlCredentials> {
        Some(UrlCredentials::UserPassword {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    fn parsed(url: &str) -> ServerList {
        parse_server_list(url).unwrap()
    }

    #[test]
    fn a_raw_slash_in_a_password_stays_in_the_password() {
        let list = parsed("nats://alice:s3cr/et@host:4222");
        assert_eq!(list.servers, ["nats://host:4222"]);
        assert_eq!(list.credentials, user_pass("alice", "s3cr/et"));
        assert_eq!(
            redact_server_list("nats://alice:s3cr/et@host:4222"),
            "nats://[redacted]@host:4222"
        );
    }

    #[test]
    fn a_raw_comma_in_a_password_stays_in_the_password() {
        let list = parsed("nats://alice:s3cr,et@host:4222");
        assert_eq!(list.servers, ["nats://host:4222"]);
        assert_eq!(list.credentials, user_pass("alice", "s3cr,et"));
        assert_eq!(
            redact_server_list("nats://alice:s3cr,et@host:4222"),
            "nats://[redacted]@host:4222"
        );
    }

    #[test]
    fn the_last_at_ends_the_user_info() {
        let list = parsed("nats://al@ice:p@ss:w/o,rd@host");
        assert_eq!(list.servers, ["nats://host"]);
        assert_eq!(list.credentials, user_pass("al@ice", "p@ss:w/o,rd"));
    }

    #[test]
    fn user_info_without_a_colon_is_a_token() {
        let list = parsed("nats://s3cr3tT0ken@127.0.0.1:4222");
        assert_eq!(list.servers, ["nats://127.0.0.1:4222"]);
        assert_eq!(
            list.credentials,
            Some(UrlCredentials::Token("s3cr3tT0ken".into()))
        );
        assert_eq!(
            redact_server_list("nats://s3cr3tT0ken@127.0.0.1:4222"),
            "nats://[redacted]@127.0.0.1:4222"
        );
    }

    #[test]
    fn a_trailing_colon_is_a_user_with_an_empty_password() {
        assert_eq!(parsed("alice:@h:1").credentials, user_pass("alice", ""));
        assert_eq!(parsed("alice:@h:1").servers, ["h:1"]);
    }

    #[test]
    fn percent_escapes_are_decoded() {
        let list = parsed("nats://al%40ice:p%3As%2C%2F@host:4222");
        assert_eq!(list.credentials, user_pass("al@ice", "p:s,/"));
        assert_eq!(
            parsed("nats://a%2Cb@h").credentials,
            Some(UrlCredentials::Token("a,b".into()))
        );
    }

    #[test]
    fn lower_and_upper_case_hex_digits_decode_alike() {
        assert_eq!(percent_decode("%2c%2C%3a%3A%7e%7E").unwrap(), ",,::~~");
        assert_eq!(percent_decode("%af%AF").map_err(|_| ()), Err(()));
        assert_eq!(percent_decode("%c3%a9%C3%A9").unwrap(), "éé");
    }

    #[test]
    fn malformed_escapes_stay_and_non_utf8_is_refused() {
        assert_eq!(percent_decode("a%2").unwrap(), "a%2");
        assert_eq!(percent_decode("a%zz").unwrap(), "a%zz");
        assert_eq!(percent_decode("%41").unwrap(), "A");
        assert_eq!(
            parse_server_list("nats://u:%FF@h"),
            Err(ServerListError::NotUtf8)
        );
    }

    #[test]
    fn every_entry_of_a_cluster_list_is_stripped_and_the_first_credentials_win() {
        let list = parsed("nats://a:b@h1:1, nats://c:d@h2:2,nats://h3:3");
        assert_eq!(list.servers, ["nats://h1:1", "nats://h2:2", "nats://h3:3"]);
        assert_eq!(list.credentials, user_pass("a", "b"));
        assert!(list.credentials_differ);
        assert_eq!(
            redact_server_list("nats://a:b@h1:1, nats://c:d@h2:2,nats://h3:3"),
            "nats://[redacted]@h1:1,nats://[redacted]@h2:2,nats://h3:3"
        );
    }

    #[test]
    fn raw_commas_in_a_cluster_list_with_schemes_are_read_once() {
        let url = "nats://u:p,q/r@h1:1,nats://u:p,q/r@h2:2";
        let list = parsed(url);
        assert_eq!(list.servers, ["nats://h1:1", "nats://h2:2"]);
        assert_eq!(list.credentials, user_pass("u", "p,q/r"));
        assert!(!list.credentials_differ);
        assert_eq!(
            redact_server_list(url),
            "nats://[redacted]@h1:1,nats://[redacted]@h2:2"
        );
    }

    #[test]
    fn only_websocket_entries_have_a_path() {
        // nats://T0ken/with is no server, so the ',' belongs to the token.
        let list = parsed("nats://T0ken/with,specials@h:1");
        assert_eq!(
            list.credentials,
            Some(UrlCredentials::Token("T0ken/with,specials".into()))
        );
        let list = parsed("wss://u:p@h:443/nats,ws://h2/x");
        assert_eq!(list.servers, ["wss://h:443/nats", "ws://h2/x"]);
        // ws://T0ken/with is a server: the ',' may or may not be in the token.
        assert_eq!(
            parse_server_list("ws://T0ken/with,specials@h:1"),
            Err(ServerListError::Ambiguous)
        );
    }

    #[test]
    fn a_list_without_at_is_split_unchanged() {
        let list = parsed(" nats://h1:1 ,,h2:2,whatever goes");
        assert_eq!(list.servers, ["nats://h1:1", "h2:2", "whatever goes"]);
        assert_eq!(list.credentials, None);
        assert_eq!(redact_server_list("nats://h1:1, h2:2"), "nats://h1:1,h2:2");
    }

    #[test]
    fn a_comma_that_may_sit_in_a_token_is_ambiguous_and_fully_masked() {
        // `abc` is a valid host: one server with token `abc,def`, or two servers.
        assert_eq!(
            parse_server_list("nats://abc,def@h:1"),
            Err(ServerListError::Ambiguous)
        );
        assert_eq!(
            redact_server_list("nats://abc,def@h:1"),
            "nats://[redacted]@h:1"
        );
        // `u:12` is a valid host and port.
        assert_eq!(
            parse_server_list("nats://u:12,x@h"),
            Err(ServerListError::Ambiguous)
        );
        assert_eq!(redact_server_list("nats://u:12,x@h"), "nats://[redacted]@h");
    }

    #[test]
    fn a_leading_raw_comma_in_user_info_is_ambiguous() {
        // An empty entry and user `x`, or user `,x`.
        assert_eq!(parse_server_list(",x:p@h"), Err(ServerListError::Ambiguous));
        assert_eq!(redact_server_list(",x:p@h"), "[redacted]@h");
        // Empty entries are skipped where no credentials can follow.
        assert_eq!(parsed("x:p@h,, nats://h2").servers, ["h", "nats://h2"]);
    }

    #[test]
    fn credentials_on_a_later_entry_without_a_scheme_are_ambiguous() {
        // Two servers, or user `h1` with password `1,u:p`.
        let url = "nats://h1:1,u:p@h2:2";
        assert_eq!(parse_server_list(url), Err(ServerListError::Ambiguous));
        assert_eq!(redact_server_list(url), "nats://[redacted]@h2:2");
        assert_eq!(parsed("nats://h1:1,nats://u:p@h2:2").servers.len(), 2);
    }

    #[test]
    fn an_unreadable_list_with_credentials_is_refused_and_fully_masked() {
        for url in ["nats://u:p@", "nats://u:p@host:port", "nats://u:p@h,x y"] {
            assert_eq!(
                parse_server_list(url),
                Err(ServerListError::Unreadable),
                "{url}"
            );
            assert_eq!(redact_server_list(url), "[redacted]", "{url}");
        }
    }

    #[test]
    fn over_long_lists_are_refused() {
        let long = format!("nats://u:p@{}", "a".repeat(MAX_SERVER_LIST_BYTES));
        assert_eq!(parse_server_list(&long), Err(ServerListError::TooLong));
        assert_eq!(redact_server_list(&long), REDACTED);
        let many = format!("nats://u:p@h{}", ",h".repeat(MAX_SERVER_LIST_PIECES));
        assert_eq!(parse_server_list(&many), Err(ServerListError::TooLong));
    }

    #[test]
    fn hosts_ports_and_paths() {
        assert!(host_part_ok("h", false));
        assert!(host_part_ok("127.0.0.1:4222", false));
        assert!(host_part_ok("[::1]:4222", false));
        assert!(host_part_ok("h:80/ws?x=1", true));
        assert!(!host_part_ok("h:80/ws?x=1", false));
        assert!(!host_part_ok("", true));
        assert!(!host_part_ok("h:", true));
        assert!(!host_part_ok("h:123456", true));
        assert!(!host_part_ok("h:abc", true));
        assert!(!host_part_ok("[]", true));
        assert!(!host_part_ok("h h", true));
        assert_eq!(scheme_len("nats://x"), 7);
        assert_eq!(scheme_len("u:p@h"), 0);
        assert_eq!(scheme_len("9a://x"), 0);
    }

    #[test]
    fn errors_and_debug_never_echo_the_input() {
        for err in [
            ServerListError::Ambiguous,
            ServerListError::Unreadable,
            ServerListError::TooLong,
            ServerListError::NotUtf8,
        ] {
            assert!(!err.to_string().contains("SECRET"));
        }
        let list = parsed("nats://SECRETUSER:SECRETPASS@h");
        assert!(!format!("{list:?}").contains("SECRET"));
        let token = parsed("nats://SECRETTOKEN@h");
        assert!(!format!("{token:?}").contains("SECRET"));
    }

    /// The texts themselves: `Debug` shows the shape of a list, never a secret,
    /// and each refusal says what to do.
    #[test]
    fn debug_and_error_texts() {
        assert_eq!(
            format!("{:?}", parsed("nats://SECRETTOKEN@h")),
            r#"ServerList { servers: ["nats://h"], credentials: Some(Token([redacted])), credentials_differ: false }"#
        );
        assert_eq!(
            format!("{:?}", parsed("nats://u:SECRET@h").credentials),
            "Some(UserPassword([redacted]))"
        );
        let texts: Vec<String> = [
            ServerListError::Ambiguous,
            ServerListError::Unreadable,
            ServerListError::TooLong,
            ServerListError::NotUtf8,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert!(
            texts[0].contains("write ',' inside credentials as %2C"),
            "{}",
            texts[0]
        );
        assert!(
            texts[1].contains("percent-encode special characters"),
            "{}",
            texts[1]
        );
        assert_eq!(
            texts[2],
            "the server URL list is longer than 16384 bytes or 512 comma-separated pieces"
        );
        assert_eq!(
            texts[3],
            "the percent-decoded credentials in the server URL are not UTF-8"
        );
    }

    /// A list of exactly `MAX_SERVER_LIST_BYTES` bytes is read; one byte more is not.
    #[test]
    fn the_length_limit_is_exact() {
        let at_limit = |extra: usize| {
            let prefix = "nats://u:p@";
            format!(
                "{prefix}{}",
                "a".repeat(MAX_SERVER_LIST_BYTES - prefix.len() + extra)
            )
        };
        assert_eq!(at_limit(0).len(), MAX_SERVER_LIST_BYTES);
        assert_eq!(parsed(&at_limit(0)).servers.len(), 1);
        assert_eq!(
            parse_server_list(&at_limit(1)),
            Err(ServerListError::TooLong)
        );
    }

    /// Entries after the one with credentials that are plain hosts stay entries
    /// of their own (an entry spans pieces only up to an `@`).
    #[test]
    fn plain_hosts_after_credentials_are_servers() {
        let list = parsed("nats://u:p@h,x,y");
        assert_eq!(list.servers, ["nats://h", "x", "y"]);
        assert_eq!(
            redact_server_list("nats://u:p@h,x,y"),
            "nats://[redacted]@h,x,y"
        );
    }

    /// In a list with several readings, user info of an entry that starts after
    /// the first is masked too (here `b,c`, or `c`, read with the later scheme).
    #[test]
    fn an_ambiguous_list_masks_the_credentials_of_later_entries() {
        let url = "nats://a@h1,nats://b,c@h2";
        assert_eq!(parse_server_list(url), Err(ServerListError::Ambiguous));
        assert_eq!(
            redact_server_list(url),
            "nats://[redacted]@h1,nats://[redacted]@h2"
        );
    }
}
