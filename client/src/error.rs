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
    /// A query plan that does not type against the tables' public schemas
    /// (unknown column, wrong types, a sum that could overflow, a bad
    /// literal). Found by the client before anything was sent (`plan` is
    /// then the checker's error), or refused by the nodes.
    #[error("bad plan: {message}")]
    BadPlan {
        /// What is wrong; names columns and operators, never values.
        message: String,
        /// The plan checker's error, when the client found it.
        plan: Option<triad_plan::PlanError>,
    },
    /// A threshold gate counted fewer rows than its threshold: nothing but
    /// that one bit was revealed, and no aggregate was reconstructed.
    #[error("threshold not met: {message}")]
    ThresholdNotMet {
        /// The nodes' message (names the threshold applied).
        message: String,
    },
    /// The query is not the next step of an approved script this user may
    /// run: nothing ran and nothing was revealed. The message names the
    /// step and what differed.
    #[error("NoMatchingAuthorization: {message}")]
    NoMatchingAuthorization {
        /// The first node that said so.
        node: usize,
        /// The node's message.
        message: String,
    },
    /// A recording or approval file is not usable.
    #[error("{path}: {problem}")]
    Script {
        /// The file (or what was being done).
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A merge whose keys are unique on neither side among the selected
    /// rows (one side must be unique).
    #[error("merge keys not unique: {message}")]
    NotUnique {
        /// The nodes' message.
        message: String,
    },
}

impl From<triad_plan::PlanError> for ClientError {
    fn from(plan: triad_plan::PlanError) -> ClientError {
        ClientError::BadPlan {
            message: plan.to_string(),
            plan: Some(plan),
        }
    }
}

impl ClientError {
    /// The refusal's kind, if a node refused (a plan the client refused
    /// itself counts as [`ErrorKind::BadPlan`]).
    pub fn refusal(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Refused { error, .. } => Some(error.kind),
            ClientError::BadPlan { .. } => Some(ErrorKind::BadPlan),
            ClientError::ThresholdNotMet { .. } => Some(ErrorKind::ThresholdNotMet),
            ClientError::NotUnique { .. } => Some(ErrorKind::NotUnique),
            ClientError::NoMatchingAuthorization { .. } => Some(ErrorKind::NoMatchingAuthorization),
            _ => None,
        }
    }

    /// Whether this is a failed threshold gate.
    pub fn is_threshold_not_met(&self) -> bool {
        matches!(self, ClientError::ThresholdNotMet { .. })
    }
}
