//! The percent-encoded parts of connection strings (user names, passwords, query values),
//! decoded strictly.

/// The `%XX` sequences of a part of a connection string decoded (a user name, a password, a
/// virtual host, a query value) with the percent-encoding crate, strictly: where that crate
/// passes a `%` without two hex digits after it through, this refuses it, so that a mistyped
/// secret is an error rather than another secret. Errors never repeat the text.
///
/// ```
/// use osprofiler_core::config::{PercentDecodeError, percent_decode};
/// assert_eq!(percent_decode("s%40cret").as_deref(), Ok("s@cret"));
/// assert_eq!(percent_decode("100%"), Err(PercentDecodeError::Malformed));
/// assert_eq!(percent_decode("%zz"), Err(PercentDecodeError::Malformed));
/// assert_eq!(percent_decode("%ff"), Err(PercentDecodeError::NotUtf8));
/// ```
pub fn percent_decode(text: &str) -> Result<String, PercentDecodeError> {
    let hex_pair = |after: &str| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    };
    if !text.split('%').skip(1).all(hex_pair) {
        return Err(PercentDecodeError::Malformed);
    }
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8();
    decoded
        .map(String::from)
        .map_err(|_| PercentDecodeError::NotUtf8)
}

/// Why [`percent_decode`] refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PercentDecodeError {
    /// A `%` without two hex digits after it.
    Malformed,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for PercentDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PercentDecodeError::Malformed => "bad percent-encoding (expected %XX)",
            PercentDecodeError::NotUtf8 => "percent-encoded text is not UTF-8",
        })
    }
}

impl std::error::Error for PercentDecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_whole_sequences_and_refuses_the_others() {
        for (text, decoded) in [
            ("", ""),
            ("a%41b", "aAb"),
            ("é%C3%A9", "éé"),
            ("%2f%2F", "//"),
        ] {
            assert_eq!(percent_decode(text).as_deref(), Ok(decoded), "{text}");
        }
        for text in ["%", "%4", "a%4", "%+1", "%%41", "%4g"] {
            assert_eq!(
                percent_decode(text),
                Err(PercentDecodeError::Malformed),
                "{text}"
            );
        }
        assert_eq!(percent_decode("%C3"), Err(PercentDecodeError::NotUtf8));
    }
}
