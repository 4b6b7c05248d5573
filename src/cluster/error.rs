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

    /// A configuration that cannot work; `what` names the key.
    pub(crate) fn config(what: impl Into<String>) -> Self {
        ClusterError {
            url: String::new(),
            what: what.into(),
            source: None,
        }
    }

    /// The Redis URL (or the Sentinel/Cluster target), without its
    /// password; empty for a configuration error.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the configuration itself is wrong (no server was asked).
    pub fn is_config(&self) -> bool {
        self.url.is_empty()
    }

    /// Whether the operation ran out of time (connect, read or write).
    pub fn is_timeout(&self) -> bool {
        self.source.as_ref().is_some_and(|e| e.is_timeout())
    }
}

/// What went wrong with a Redis command, with a hint for the cases an
/// operator meets first (credentials, database index), never a password.
pub(crate) fn reason(e: &redis::RedisError) -> String {
    let text = e.to_string();
    let hint = if e.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("invalid password")
        || text.contains("invalid username-password")
    {
        Some("authentication failed: wrong password or unknown ACL user (redis.username / redis.password)")
    } else if text.contains("NOAUTH") {
        Some("the server requires a password and none is configured (redis.password)")
    } else if text.contains("DB index is out of range") || text.contains("switch database") {
        Some("the database index does not exist on the server (redis.db)")
    } else if text.contains("NOPERM") {
        Some("the ACL user may not run this command (redis.username)")
    } else if e.is_timeout() {
        Some("timed out")
    } else {
        None
    };
    match hint {
        Some(h) => format!("{h}: {text}"),
        None => text,
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.url.is_empty() {
            write!(f, "Redis configuration: {}", self.what)?;
        } else {
            write!(f, "Redis at {}: {}", self.url, self.what)?;
        }
        if let Some(e) = &self.source {
            write!(f, ": {}", reason(e))?;
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
