//! Errors in log lines: an error followed by every cause beneath it.
//!
//! Many errors print only their own layer (`tokio_postgres` prints `db error`, and the
//! server's reason, `too many clients already`, is its source), so a log line built
//! from `Display` alone can hide why an engine failed.

use std::error::Error;
use std::fmt;

/// Shows an error and its chain of sources, `outer: cause: root`, leaving out a cause
/// whose message is already in the text (errors that repeat their source's message).
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.0.to_string();
        let mut current = self.0.source();
        while let Some(e) = current {
            let msg = e.to_string();
            if !out.contains(&msg) {
                out.push_str(": ");
                out.push_str(&msg);
            }
            current = e.source();
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::engine::CacheError;

    #[derive(Debug, thiserror::Error)]
    #[error("db error")]
    struct Db(#[source] std::io::Error);

    #[test]
    fn a_backend_error_shows_the_cause_its_own_message_leaves_out() {
        let e = CacheError::backend(Db(std::io::Error::other("too many clients already")));
        assert_eq!(
            Chain(&e).to_string(),
            "cache backend error: db error: too many clients already"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = CacheError::backend(std::io::Error::other("disk full"));
        assert_eq!(Chain(&e).to_string(), "cache backend error: disk full");
        assert_eq!(Chain(&CacheError::Miss).to_string(), "cache miss");
    }
}
