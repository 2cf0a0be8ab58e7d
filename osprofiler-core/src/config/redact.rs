//! Connection strings and text with their secrets masked, for messages and `Debug` output.

/// A connection string with any password replaced by `***`, for messages: the URL's password
/// and the values of query options whose name says they hold one (`headers`, `password`,
/// `token`, `secret`, `key`, `auth`, `credential` in the name).
///
/// ```
/// use osprofiler_core::config::redact;
/// assert_eq!(
///     redact("otlp://u:pw@h:4318?headers=authorization%3DBearer%20t0k&certificate=/ca.pem"),
///     "otlp://u:***@h:4318?headers=***&certificate=/ca.pem",
/// );
/// ```
pub fn redact(connection_string: &str) -> String {
    let s = redact_urls(connection_string);
    let Some((base, query)) = s.split_once('?') else {
        return s.into_owned();
    };
    let secret = |k: &str| {
        let k = k.to_ascii_lowercase();
        [
            "header",
            "pass",
            "pwd",
            "token",
            "secret",
            "key",
            "auth",
            "credential",
        ]
        .iter()
        .any(|w| k.contains(w))
    };
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if secret(k) => format!("{k}=***"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// `text` with the password of every URL in it (`scheme://user:password@host…`) replaced by
/// `***`; borrowed when there is none. The authority of a URL ends at `/`, `?`, `#`,
/// whitespace, a quote or the end of the text, so URLs inside Debug output or log lines are
/// found too.
///
/// ```
/// use osprofiler_core::config::redact_urls;
/// assert_eq!(
///     redact_urls(r#"Config { url: "postgres://app:hunter2@db/app", pool: 5 }"#),
///     r#"Config { url: "postgres://app:***@db/app", pool: 5 }"#,
/// );
/// assert!(matches!(redact_urls("no secrets"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn redact_urls(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let rest = &text[start..];
        let end = rest
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        from = start + end;
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let Some(colon) = authority[..at].find(':') else {
            continue;
        };
        out.push_str(&text[copied..start + colon + 1]);
        out.push_str("***");
        copied = start + at;
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(redact("postgresql://u:p@h/db"), "postgresql://u:***@h/db");
        assert_eq!(redact("sqlite:///tmp/x@y"), "sqlite:///tmp/x@y");
        assert_eq!(
            redact_urls("a=redis://:p1@h b='amqp://u:p@2@h2?x' c=http://h/@:x"),
            "a=redis://:***@h b='amqp://u:***@h2?x' c=http://h/@:x"
        );
    }
}
