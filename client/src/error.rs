//! The client's errors. None carries a value, a share or a key.

use std::path::PathBuf;

use triad_node::api::{ApiError, ErrorKind};

/// Everything the client can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The connection file is unusable.
    #[error("{path}: {problem}")]
    Connection {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Reading or checking the table failed (names file, row, column).
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// The schema file is unusable.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// Keys, signing or opening results.
    #[error(transparent)]
    Auth(#[from] triad_auth::AuthError),
    /// A certificate could not be loaded.
    #[error(transparent)]
    Net(#[from] triad_net::NetError),
    /// A node could not be reached or the link broke.
    #[error("node {node}: {source}")]
    Link {
        /// The node.
        node: usize,
        /// What happened.
        #[source]
        source: triad_net::LinkError,
    },
    /// A node refused the request.
    #[error("node {node} refused: {error}")]
    Refused {
        /// The node.
        node: usize,
        /// Its reason.
        error: ApiError,
    },
    /// A node answered something that does not fit the request, or its
    /// result share disagrees with the other two nodes'.
    #[error("node {node} misbehaved: {problem}")]
    Misbehaving {
        /// The node.
        node: usize,
        /// What was wrong.
        problem: String,
    },
    /// The three nodes disagree and no single node is to blame.
    #[error("the nodes disagree: {0}")]
    Disagreement(String),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The refusal's kind, if a node refused.
    pub fn refusal(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Refused { error, .. } => Some(error.kind),
            _ => None,
        }
    }
}
