//! What clients and nodes say to each other: the request bodies a user
//! signs, what travels with them, and the replies.
//!
//! Every call starts with a [`CallHeader`] (bincode 2.0.1, standard
//! configuration), followed for uploads by the explicit share vectors as
//! raw little-endian words, in column order, `own` before `next`. The node
//! answers with one [`Reply`]. The signed [`Request`](triad_auth::Request)
//! covers the digest of the [`Body`], so a node and the client agree on
//! what was asked; the upload payload differs per node (each gets other
//! components) and is bound to the body by the nodes' cross-check of the
//! component digests instead.

use serde::{Deserialize, Serialize};
use triad_auth::Digest as BodyDigest;

use crate::jobs::{JobStep, JobSubmission, JobView};
use crate::store::{ColumnSchema, Handle, OwnerKey, TableInfo, TablePolicy, UploadId};

/// Version of this message set; a node refuses calls of another version.
pub const API_VERSION: u32 = 5;

/// The largest call header a node reads (a schema of many columns fits
/// easily; share vectors do not travel in it).
pub const HEADER_BYTES_MAX: usize = 4 << 20;

/// The largest reply a client reads.
pub const REPLY_BYTES_MAX: usize = 64 << 20;

/// What a request asks for. Its digest is what the user signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Stage and commit a new table.
    Upload(UploadBody),
    /// Public metadata of every table.
    ListTables,
    /// The sum of one share column, revealed to the requester.
    Sum {
        /// The table.
        handle: Handle,
        /// A share column of it.
        column: String,
    },
    /// The number of rows, or of non-null rows of a nullable column.
    Count {
        /// The table.
        handle: Handle,
        /// A schema column; `None` counts all rows (public anyway).
        column: Option<String>,
    },
    /// Remove a table from all three nodes.
    Delete {
        /// The table.
        handle: Handle,
    },
    /// Run a query plan: a gated aggregate or group-by (answered with
    /// [`Reply::Answer`]) or a new stored table ([`Reply::Stored`]).
    Query {
        /// The plan, canonical as the client built it.
        plan: triad_plan::Query,
    },
    /// End the requester's run of an approved script, so that it can be
    /// run again from its first step.
    CloseScript {
        /// The script's digest.
        script: BodyDigest,
    },
    /// Start a job request: the nodes validate the pipeline, plan which
    /// actions run and record it ([`Reply::Job`]).
    SubmitJob(JobSubmission),
    /// Cancel the requester's job.
    CancelJob {
        /// Its id.
        job: String,
    },
    /// Every job request's record ([`Reply::Jobs`]): states and handles,
    /// never a value.
    Jobs,
    /// One job request's record.
    Job {
        /// Its id.
        job: String,
    },
    /// A peer operator's `triad-node check` asking which versions this
    /// node runs and which roles document it serves ([`Reply::Status`]).
    /// Signed with an operator key, not a user's; answered at once, without
    /// the other nodes, and recorded nowhere but the nonce store.
    Status,
    /// Stops the signer's query that is running now, if any: the three
    /// nodes abandon it (the mesh is re-formed, as after a fault) and its
    /// requester gets [`ErrorKind::Cancelled`]. Answered at once, not
    /// queued behind the query it cancels.
    CancelQuery,
}

impl Body {
    /// The digest a request signs: BLAKE3 over the canonical encoding.
    pub fn digest(&self) -> BodyDigest {
        BodyDigest::of(&encode(self))
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Upload(_) => "upload",
            Body::ListTables => "tables",
            Body::Sum { .. } => "sum",
            Body::Count { .. } => "count",
            Body::Delete { .. } => "delete",
            Body::Query { .. } => "query",
            Body::CloseScript { .. } => "close-script",
            Body::SubmitJob(_) => "submit-job",
            Body::CancelJob { .. } => "cancel-job",
            Body::Jobs => "jobs",
            Body::Job { .. } => "job",
            Body::Status => "status",
            Body::CancelQuery => "cancel-query",
        }
    }
}

/// The public part of an upload, the same on all three nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadBody {
    /// Chosen by the client, unique per upload.
    pub upload_id: UploadId,
    /// The schema, with declared ranges.
    pub schema: Vec<ColumnSchema>,
    /// Row count.
    pub rows: u64,
    /// Share column names, in the order the payload carries them.
    pub columns: Vec<String>,
    /// For a dummy table (an upload in design mode): the production table
    /// it stands for, whose schema it must have.
    pub dummy_for: Option<Handle>,
    /// Approvers who must all sign scripts reading this table (public
    /// keys, hex); empty: any one approver.
    pub approvers: Vec<String>,
}

/// Where one component of one share column comes from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComponentSource {
    /// Expanded on the node from this seed (see `triad_ring::outside`).
    Seed([u8; 32]),
    /// Sent as raw words after the header.
    Explicit,
}

impl std::fmt::Debug for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentSource::Seed(_) => f.write_str("Seed(..)"),
            ComponentSource::Explicit => f.write_str("Explicit"),
        }
    }
}

/// One node's part of an upload. Secret: seeds and digest keys; never
/// logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPayload {
    /// Digest key of this node's `own` component.
    pub own_key: [u8; 32],
    /// Digest key of this node's `next` component.
    pub next_key: [u8; 32],
    /// Per share column: (`own`, `next`).
    pub columns: Vec<(ComponentSource, ComponentSource)>,
}

impl std::fmt::Debug for UploadPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadPayload")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// The first message of every call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallHeader {
    /// [`API_VERSION`] of the client.
    pub api_version: u32,
    /// The signed request, as `SignedRequest::to_bytes`.
    pub request: Vec<u8>,
    /// What it asks for; its digest must be the request's `body`.
    pub body: Body,
    /// For uploads, this node's components.
    pub payload: Option<UploadPayload>,
    /// For a step of an approved script: the `.approved` content, as
    /// `triad_auth::ApprovedScript::encode`. The signed request names its
    /// script's digest, so it cannot be swapped.
    pub approved: Option<Vec<u8>>,
    /// For a step of a job's action: which job and action. The nodes run
    /// it only as that job's current action.
    pub job: Option<JobStep>,
}

/// Public metadata of a table, as `tables` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSummary {
    /// Its handle.
    pub handle: Handle,
    /// The owner's public key (hex).
    pub owner: String,
    /// Rows.
    pub rows: u64,
    /// Commit time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Schema with declared ranges.
    pub schema: Vec<ColumnSchema>,
    /// Namespace, the production table a dummy stands for, approvers.
    pub policy: TablePolicy,
}

impl From<&TableInfo> for TableSummary {
    fn from(info: &TableInfo) -> TableSummary {
        TableSummary {
            handle: info.handle,
            owner: info.owner.as_str().to_owned(),
            rows: info.rows,
            created_at: info.created_at,
            schema: info.schema.clone(),
            policy: info.policy.clone(),
        }
    }
}

/// A node's answer to a call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// The upload committed on all three nodes.
    Uploaded {
        /// The new table's handle.
        handle: Handle,
        /// Its rows.
        rows: u64,
        /// Seconds this node spent agreeing, cross-checking and committing
        /// (the rest of the call was transfer and staging).
        commit_seconds: f64,
    },
    /// Public metadata of the tables this node holds.
    Tables(Vec<TableSummary>),
    /// This node's result components, sealed to the request's result key.
    /// Opened, they are [`ResultShares`].
    Sealed {
        /// The sealing's ephemeral public key.
        ephemeral_public: [u8; 32],
        /// The ciphertext.
        ciphertext: Vec<u8>,
    },
    /// The gates of an aggregate query and, sealed to the request's result
    /// key, this node's components of the words of the groups that passed
    /// (opened, they are [`ResultShares`]; layout in
    /// `triad_exec::Answer`).
    Answer {
        /// Gate outcome per candidate group.
        passed: Vec<bool>,
        /// For a released answer (a job's): the release policy applied
        /// (`triad_exec::ReleasePolicy::describe`); the words then carry
        /// a redaction bit per passing group (`triad_exec::Answer`).
        rule: Option<String>,
        /// The sealing's ephemeral public key.
        ephemeral_public: [u8; 32],
        /// The ciphertext.
        ciphertext: Vec<u8>,
        /// What the query cost this node.
        stats: QueryStats,
        /// The three nodes' signed audit-log heads after recording this
        /// request, by node.
        audit: Vec<crate::audit::SignedHead>,
    },
    /// A query's result stored as a new secret table on all three nodes.
    Stored {
        /// Its handle.
        handle: Handle,
        /// Rows stored (selected or not: the count kept is secret).
        rows: u64,
        /// What the query cost this node.
        stats: QueryStats,
        /// The three nodes' signed audit-log heads after recording this
        /// request, by node.
        audit: Vec<crate::audit::SignedHead>,
    },
    /// A public count (a table's row count is public).
    Count(u64),
    /// The table is gone from this node.
    Deleted,
    /// The script run is ended on this node.
    Closed,
    /// A job request's record on this node.
    Job(Box<JobView>),
    /// Every job request's record on this node, newest first.
    Jobs(Vec<JobView>),
    /// The request was refused or failed; nothing was committed.
    Refused(ApiError),
    /// What this node runs, for a peer's `triad-node check`.
    Status(NodeStatus),
    /// Whether this node was running a query of the signer's, now being
    /// stopped.
    Cancelled(bool),
}

/// A node's answer to [`Body::Status`]: public facts an operator compares
/// across the three nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's index.
    pub node: u8,
    /// The `triad-node` release (the crate version).
    pub version: String,
    /// [`API_VERSION`] of the node.
    pub api_version: u32,
    /// The node-to-node wire version ([`triad_net::NET_PROTOCOL_VERSION`]).
    pub net_protocol_version: u32,
    /// The installed roles document's serial.
    pub roles_serial: u64,
    /// The installed roles document's digest.
    pub roles_digest: BodyDigest,
    /// Whether the node is connected to both other nodes.
    pub mesh_up: bool,
    /// Whether the node waits to be rebuilt from the other two (its data
    /// directory is marked by `triad-node recover`).
    pub waiting_to_be_rebuilt: bool,
}

impl NodeStatus {
    /// The versions, as one line for people.
    pub fn versions(&self) -> String {
        format!(
            "triad-node {}, API {}, net protocol {}",
            self.version, self.api_version, self.net_protocol_version
        )
    }

    /// Whether `other` runs the same versions.
    pub fn same_versions(&self, other: &NodeStatus) -> bool {
        (&self.version, self.api_version, self.net_protocol_version)
            == (
                &other.version,
                other.api_version,
                other.net_protocol_version,
            )
    }
}

/// What running a query cost one node: public (message sizes and rounds
/// depend only on the plan and the tables' sizes), reported for
/// benchmarks and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryStats {
    /// Seconds the protocol ran on this node.
    pub seconds: f64,
    /// Payload bytes this node sent to the other two.
    pub bytes_sent: u64,
    /// Communication rounds.
    pub rounds: u32,
}

impl QueryStats {
    /// The larger of each figure: the busiest node's view.
    pub fn max(self, other: QueryStats) -> QueryStats {
        QueryStats {
            seconds: self.seconds.max(other.seconds),
            bytes_sent: self.bytes_sent.max(other.bytes_sent),
            rounds: self.rounds.max(other.rounds),
        }
    }
}

/// A node's result components: for node `i`, the values' components `i`
/// and `i + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultShares {
    /// Component `i`.
    pub own: Vec<u64>,
    /// Component `i + 1`.
    pub next: Vec<u64>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Malformed call, wrong version, body not matching the signature.
    BadRequest,
    /// Unknown key, bad signature, wrong deployment, or not allowed for
    /// this user.
    Unauthorized,
    /// The nonce was seen before.
    Replayed,
    /// Issued too long ago or in the future.
    Expired,
    /// No table with that handle.
    UnknownHandle,
    /// No column of that name.
    UnknownColumn,
    /// The three nodes did not all receive this request.
    NotAgreed,
    /// The nodes' components of the upload do not match.
    CrossCheckFailed,
    /// A peer node is unreachable.
    PeerUnavailable,
    /// The query would exceed the node's memory budget.
    MemoryBudget,
    /// Reading or writing shares failed (a corrupted file ends here).
    Storage,
    /// Anything else on the node.
    Internal,
    /// The query plan does not type against the tables (unknown column,
    /// wrong types, a sum that could overflow).
    BadPlan,
    /// An aggregate's gate counted fewer rows than its threshold; nothing
    /// was revealed but that.
    ThresholdNotMet,
    /// Neither side of a merge has unique keys among its selected rows.
    NotUnique,
    /// The query is not the next step of an approved script this user may
    /// run (or no approval covers it); nothing ran.
    NoMatchingAuthorization,
    /// A job request that does not validate, or a step or cancellation
    /// its job's state does not allow.
    Job,
    /// The requester cancelled the query; nothing was committed.
    Cancelled,
}

/// A refusal, with a message that names what was wrong and never carries
/// a value, key or share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The kind.
    pub kind: ErrorKind,
    /// For people.
    pub message: String,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

/// The owner a table uploaded by `signer` records: its public key in
/// lowercase hex. The client computes the same to check the handle.
pub fn owner_key(signer: &triad_auth::UserPublicKey) -> OwnerKey {
    let hex: String = signer
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // 64 lowercase hex characters are always a valid owner key.
    hex.parse()
        .unwrap_or_else(|_| unreachable!("64 hex characters"))
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// The canonical encoding of any message here.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for these types (no maps with
    // non-string keys, no unsized sequences).
    bincode::serde::encode_to_vec(value, config()).unwrap_or_default()
}

/// Decodes a message, refusing trailing bytes.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    // bincode allocates a string's announced length before reading it, up
    // to the limit, so the limit is what stops a forged length prefix from
    // allocating more than the message could hold. Decoding counts at
    // most 16 bytes against the limit per byte read (a u128 in one varint
    // byte), so a limit 16 times the message's size refuses no valid
    // message: the smallest such limit among a few sizes is used.
    let decoded = if bytes.len() <= 4 << 10 {
        decode_limited::<T, { 64 << 10 }>(bytes)
    } else if bytes.len() <= 256 << 10 {
        decode_limited::<T, { 4 << 20 }>(bytes)
    } else {
        decode_limited::<T, REPLY_BYTES_MAX>(bytes)
    };
    let (value, used) = decoded
        .map_err(|e| ApiError::new(ErrorKind::BadRequest, format!("malformed message: {e}")))?;
    if used != bytes.len() {
        return Err(ApiError::new(
            ErrorKind::BadRequest,
            format!("{} trailing bytes after the message", bytes.len() - used),
        ));
    }
    Ok(value)
}

fn decode_limited<T: for<'de> Deserialize<'de>, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT>())
}
