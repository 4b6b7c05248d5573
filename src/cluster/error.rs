//! The error of every Redis-facing call of the cluster module.

use std::fmt;

/// A Redis operation that failed, with the URL it was aimed at (password
/// hidden) so the message says where to look.
#[derive(Debug)]
pub struct ClusterError {
    url: String,
    what: String,
    source: Option<redis::RedisError>,
}

impl ClusterError {
    pub(crate) fn new(
        url: &str,
        what: impl Into<String>,
        source: Option<redis::RedisError>,
    ) -> Self {
        ClusterError {
            url: redact(url),
            what: what.into(),
            source,
        }
    }

    /// The Redis URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis at {}: {}", self.url, self.what)?;
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ClusterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(p) => p,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/2"),
            "redis://127.0.0.1:6379/2"
        );
        assert_eq!(redact("redis://u:pw@h:1"), "redis://u:***@h:1");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
        let e = ClusterError::new("redis://:pw@h", "HGETALL nodes failed", None);
        assert_eq!(
            e.to_string(),
            "Redis at redis://:***@h: HGETALL nodes failed"
        );
    }
}
