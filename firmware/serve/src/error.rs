//! The crate's one error type. Only setup can fail (and parsing a status
//! page fetched by `swarmsync status`): once running, a bad request becomes
//! an HTTP status and a broken connection is dropped, never an error that
//! stops the server.

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mount prefix is not `/` followed by plain, unencoded segments
    /// without a trailing slash.
    #[error("invalid mount prefix {prefix:?}: {reason}\nuse a form like \"/debian\"")]
    MountPrefix {
        /// The prefix as given.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two mounts have the same prefix.
    #[error("mount prefix {0:?} is given twice")]
    DuplicateMount(String),
    /// A mount root is a relative path (it would depend on the working
    /// directory of the daemon).
    #[error("mount root {0:?} is not an absolute path")]
    RelativeRoot(std::path::PathBuf),
    /// A limit in [`crate::Config`] is out of range.
    #[error("invalid server setting {name}: {reason}")]
    Config {
        /// The field.
        name: &'static str,
        /// The allowed range.
        reason: &'static str,
    },
    /// A status page (`/-/status.json`) that is not valid status JSON.
    #[error("invalid status JSON: {0}")]
    StatusJson(#[source] serde_json::Error),
}
