//! The portal's one error type. Every variant is shown to people on an
//! error page, so none carries a secret: keys appear as public keys or
//! fingerprints, files by path, never by content.

use std::path::PathBuf;

/// Everything the portal can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    /// The configuration file is unusable.
    #[error("{path}: {key}: {problem}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The key (or `file` for the whole file).
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The roles document could not be loaded or does not carry the three
    /// operators' signatures.
    #[error("roles document {path}: {source}")]
    Roles {
        /// The roles file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: triad_auth::AuthError,
    },
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The OS random generator failed.
    #[error("the OS random generator failed: {0}")]
    Randomness(String),
    /// Sign-in refused: the message says why (unknown key, revoked key,
    /// expired challenge, bad signature).
    #[error("sign-in refused: {0}")]
    SignIn(String),
    /// The request needs a signed-in user.
    #[error("you are not signed in (or your session expired): sign in again")]
    NotSignedIn,
    /// The signed-in user lacks the role the page needs.
    #[error("{user} does not have the {role} role in the deployment's roles document")]
    Forbidden {
        /// The user's name.
        user: String,
        /// The role needed.
        role: triad_auth::Role,
    },
    /// No such recording, job or page.
    #[error("not found: {0}")]
    NotFound(String),
    /// A recording or approved file that does not check.
    #[error("{path}: {problem}")]
    Recording {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The request is not acceptable (a missing field, a recording that
    /// is no longer pending, a signature that does not verify).
    #[error("{0}")]
    BadRequest(String),
    /// Two requests changed the same thing at once.
    #[error("{0}")]
    Conflict(String),
    /// Job records could not be fetched from the nodes.
    #[error("job records: {0}")]
    Jobs(String),
}

impl PortalError {
    /// The HTTP status the error is shown with.
    pub fn status(&self) -> u16 {
        match self {
            PortalError::NotSignedIn => 401,
            PortalError::Forbidden { .. } | PortalError::SignIn(_) => 403,
            PortalError::NotFound(_) => 404,
            PortalError::BadRequest(_) | PortalError::Recording { .. } => 400,
            PortalError::Conflict(_) => 409,
            PortalError::Jobs(_) => 502,
            PortalError::Config { .. }
            | PortalError::Roles { .. }
            | PortalError::Io { .. }
            | PortalError::Randomness(_) => 500,
        }
    }

    /// A closure that wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PortalError + '_ {
        move |source| PortalError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
