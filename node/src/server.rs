//! The running node: client calls on tokio, agreement and execution on
//! one engine thread that owns the link to the other two nodes.
//!
//! # Life of a request
//!
//! 1. A client call arrives (`handle_call`): the header is decoded, the
//!    signature, deployment, signer, age and nonce are checked, and the
//!    body is checked against the signed digest. Uploads read this node's
//!    components, expand the seeds and stage them on disk here, in
//!    parallel with other calls.
//! 2. The call becomes a `Job` queued for the engine and waits for its
//!    reply.
//! 3. The engine of node 0 picks jobs in arrival order and announces each
//!    by its request digest; all three nodes then tell each other whether
//!    they hold a request with that digest (waiting a bounded time for a
//!    late copy). Unless all three do, each refuses it: this is how the
//!    nodes know they all received the same signed request.
//! 4. All three execute it, exchanging what the operation needs (upload
//!    reports, table digests, status), and each answers its client.
//!
//! A query plan (`run_query`) first has every node type it against its
//! inputs, check the memory budget and read the inputs verified; the three
//! exchange that outcome (and input fingerprints) so that they all run it
//! or all refuse. It then runs as one [`triad_ring::Session`] borrowing the
//! mesh's transport, with the pairwise keys agreed when the mesh formed.
//! An aggregate is sealed to the requester like a sum; a stored result
//! goes through the upload path after staging (cross-check, unconfirmed
//! record, commit or roll back on all three). See [`query`] for how
//! tables map to share columns.
//!
//! When idle, node 0 announces a tick every second, which all three
//! acknowledge to each other; so a dead link is noticed within the idle
//! timeout, and the engine then re-forms the mesh, refusing requests with
//! `PeerUnavailable` until it is back.
//!
//! Each formation of the mesh starts the same way (`reconcile`): the three
//! compare roles documents, rebuild a node that waits to be rebuilt from
//! the other two ([`recovery`]), then settle commits a crash left
//! unconfirmed.

// Store errors name table, column and file by value (see `store`); they
// sit on cold paths, and boxing them would only hide them from matching.
#![allow(clippy::result_large_err)]

mod authz;
pub mod query;
pub mod recovery;
mod status;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use triad_auth::{
    AuthError, Mode, NonceStore, RequestDigest, ResultContext, SignedRequest, UserKey,
    UserPublicKey,
};
use triad_exec::{ExecError, Outcome, Policy};
use triad_net::{
    Call, ClientConnection, ClientListener, LinkConfig, MeshConfig, MeshListener, NodeIdentity,
    PeerConfig, QuicTransport,
};
use triad_ring::{Arith, PairKeys, PartyId, Session, SessionConfig, Transport, TransportError};

use crate::api::{
    self, ApiError, Body, CallHeader, ComponentSource, ErrorKind, QueryStats, Reply, ResultShares,
    TableSummary, UploadBody, UploadPayload,
};
use crate::audit::{AuditEntry, AuditLog, SignedHead};
use crate::config::{Config, Role};
use crate::jobs::{FailReason, JobError, JobStep, JobStore, Requester, StepOutcome};
use crate::pending::{Pending, PendingError, settle};
use crate::store::{
    AgreedUpload, ComponentKeys, Digest, Handle, StagedUpload, Store, StoreError, TableInfo,
    TablePolicy, Upload, combine, derived_handle, derived_upload_id, handle_for,
};

/// Why the node could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys or certificates could not be loaded, or the network set up.
    #[error(transparent)]
    Net(#[from] triad_net::NetError),
    /// The client port could not be opened.
    #[error(transparent)]
    Link(#[from] triad_net::LinkError),
    /// The nonce store could not be opened.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The record of unconfirmed commits could not be read.
    #[error(transparent)]
    Pending(#[from] PendingError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The record of script runs could not be read.
    #[error("script runs: {0}")]
    ScriptRuns(String),
    /// The job records could not be opened.
    #[error(transparent)]
    Jobs(#[from] crate::jobs::JobError),
    /// A runtime or thread could not be started.
    #[error("starting {what}: {source}")]
    Start {
        /// What.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A verified request waiting for the engine.
struct Job {
    digest: RequestDigest,
    request: SignedRequest,
    body: Body,
    /// For uploads: this node's staging report, or why staging failed.
    staged: Option<Result<StagedUpload, ApiError>>,
    /// For a script step: the approved script the call carried.
    approved: Option<Vec<u8>>,
    /// For a step of a job request's action: which.
    job_step: Option<JobStep>,
    reply: tokio::sync::oneshot::Sender<Reply>,
    received: Instant,
}

/// What the node's parts share.
struct Shared {
    config: Config,
    store: Store,
    nonces: Mutex<NonceStore>,
    pending: Mutex<Pending>,
    /// Analysts' progress through approved scripts.
    runs: authz::ScriptRuns,
    /// Job requests and their actions' states.
    job_records: JobStore,
    /// This node's audit log.
    audit: Mutex<AuditLog>,
    /// Signs the audit log's head (and the roles document, offline).
    operator: UserKey,
    /// The three operators' public keys, by node.
    operators: [UserPublicKey; 3],
    pool: rayon::ThreadPool,
    /// Whether the mesh is up: calls are refused at once while it is not.
    mesh_up: AtomicBool,
    stopping: AtomicBool,
    /// Counters for the operator's monitoring (see `metrics`).
    metrics: Arc<crate::metrics::Metrics>,
    /// The query running now and its requester, for cancellation.
    running: Mutex<Option<(RequestDigest, UserPublicKey)>>,
    /// Set when the running query's requester cancels it; read by the
    /// query's transport ([`Cancellable`]).
    cancel: AtomicBool,
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    client_addr: std::net::SocketAddr,
    _runtime: tokio::runtime::Runtime,
    _engine: std::thread::JoinHandle<()>,
    listener: Arc<ClientListener>,
}

impl Node {
    /// Opens the store, binds the client port and starts the engine.
    pub fn start(config: Config) -> Result<Node, NodeError> {
        let store = Store::open(&config.data_dir, config.party)?;
        let nonces = NonceStore::open(&config.data_dir.join("nonces"))?;
        let pending = Pending::open(&config.data_dir)?;
        let runs = authz::ScriptRuns::open(&config.data_dir.join("scripts"))
            .map_err(NodeError::ScriptRuns)?;
        let job_records = JobStore::open(&config.data_dir.join("jobs"))?;
        let audit = AuditLog::open(
            &crate::audit::audit_dir(&config.data_dir),
            config.deployment,
            config.party.index() as u8,
        )?;
        for warning in audit.warnings() {
            tracing::warn!(%warning, "audit log");
        }
        let operator = UserKey::load(&config.operator_key)?;
        let operators = config.operator_public_keys()?;
        let identity = NodeIdentity::load(&config.certificate, &config.key)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.file.threads.compute)
            .thread_name(|i| format!("triad-compute-{i}"))
            .build()
            .map_err(|e| NodeError::Start {
                what: "the compute pool",
                source: std::io::Error::other(e),
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.file.threads.client)
            .thread_name("triad-client")
            .enable_all()
            .build()
            .map_err(|source| NodeError::Start {
                what: "the client runtime",
                source,
            })?;
        let link = LinkConfig {
            idle_timeout: Duration::from_millis(config.file.limits.peer_timeout_ms.max(30_000)),
            ..LinkConfig::default()
        };
        let listener = {
            let _guard = runtime.enter();
            Arc::new(ClientListener::bind(
                config.file.client_listen,
                &identity,
                link,
            )?)
        };
        let client_addr = listener.local_addr()?;
        let metrics_listener = match config.file.metrics_listen {
            Some(address) => {
                Some(
                    crate::metrics::bind(address).map_err(|source| NodeError::Start {
                        what: "the metrics listener",
                        source,
                    })?,
                )
            }
            None => None,
        };
        let metrics = Arc::new(crate::metrics::Metrics::new(config.party));
        let shared = Arc::new(Shared {
            config,
            store,
            nonces: Mutex::new(nonces),
            pending: Mutex::new(pending),
            runs,
            job_records,
            audit: Mutex::new(audit),
            operator,
            operators,
            pool,
            mesh_up: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            metrics,
            running: Mutex::new(None),
            cancel: AtomicBool::new(false),
        });
        tracing::info!(
            node = shared.config.party.index(),
            %client_addr,
            tables = shared.store.tables().len(),
            "node started"
        );
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Job>();
        let engine = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("triad-engine".into())
                .spawn(move || engine_main(&shared, identity, jobs_rx))
                .map_err(|source| NodeError::Start {
                    what: "the engine thread",
                    source,
                })?
        };
        {
            let listener = listener.clone();
            let shared = shared.clone();
            runtime.spawn(async move {
                while let Some(connection) = listener.accept().await {
                    let shared = shared.clone();
                    let jobs = jobs_tx.clone();
                    tokio::spawn(serve_connection(shared, connection, jobs));
                }
                shared.stopping.store(true, Ordering::SeqCst);
            });
        }
        if let Some(metrics_listener) = metrics_listener {
            let shared = shared.clone();
            runtime.spawn(crate::metrics::serve(metrics_listener, move || {
                shared.metrics.render(crate::metrics::Gauges {
                    tables: shared.store.tables().len(),
                    mesh_up: shared.mesh_up.load(Ordering::SeqCst),
                })
            }));
        }
        Ok(Node {
            client_addr,
            _runtime: runtime,
            _engine: engine,
            listener,
        })
    }

    /// The bound client address.
    pub fn client_addr(&self) -> std::net::SocketAddr {
        self.client_addr
    }

    /// Blocks until `stop` is called from elsewhere or the process is
    /// signalled.
    pub fn wait(&self) {
        loop {
            std::thread::park();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.listener.close();
    }
}

async fn serve_connection(shared: Arc<Shared>, connection: ClientConnection, jobs: Sender<Job>) {
    while let Some(call) = connection.accept_call().await {
        let shared = shared.clone();
        let jobs = jobs.clone();
        tokio::spawn(async move {
            let mut call = call;
            let mut kind = crate::metrics::unknown_kind();
            let reply = match handle_call(&shared, &mut call, &jobs, &mut kind).await {
                Ok(reply) => reply,
                Err(error) => {
                    tracing::info!(kind = ?error.kind, %error, "request refused");
                    Reply::Refused(error)
                }
            };
            shared.metrics.count_reply(kind, &reply);
            if let Err(error) = call.write_message(&api::encode(&reply)).await {
                tracing::info!(%error, "reply not delivered");
            }
            let _ = call.finish();
        });
    }
}

/// What every signed call passes, whoever may sign it: the signature
/// covers the body that came with it, and the request is fresh and not a
/// replay (the nonce store verifies the signature before recording the
/// nonce).
fn check_signed(
    shared: &Shared,
    body: triad_auth::Digest,
    request: &SignedRequest,
) -> Result<(), ApiError> {
    if body != request.request.body {
        return Err(refuse(
            ErrorKind::BadRequest,
            "the body does not match the signed digest",
        ));
    }
    let window = shared.config.file.limits.request_max_age_secs;
    let mut nonces = shared
        .nonces
        .lock()
        .map_err(|_| refuse(ErrorKind::Internal, "nonce store unavailable"))?;
    nonces
        .check_and_record(request, now_secs(), window)
        .map_err(auth_error)
}

fn refuse(kind: ErrorKind, message: impl Into<String>) -> ApiError {
    ApiError::new(kind, message)
}

fn auth_error(error: AuthError) -> ApiError {
    let kind = match &error {
        AuthError::Replay { .. } => ErrorKind::Replayed,
        AuthError::RequestTooOld { .. } | AuthError::RequestFromFuture { .. } => ErrorKind::Expired,
        AuthError::BadSignature { .. }
        | AuthError::InvalidPublicKey { .. }
        | AuthError::WeakResultKey { .. }
        | AuthError::SignerMismatch { .. } => ErrorKind::Unauthorized,
        AuthError::RequestVersion { .. }
        | AuthError::RequestTooLong { .. }
        | AuthError::RequestDecode(_)
        | AuthError::RequestTrailingBytes { .. } => ErrorKind::BadRequest,
        _ => ErrorKind::Internal,
    };
    ApiError::new(kind, error.to_string())
}

fn store_error_kind(error: &StoreError) -> ErrorKind {
    match error {
        StoreError::UnknownTable { .. } => ErrorKind::UnknownHandle,
        StoreError::UnknownColumn { .. } => ErrorKind::UnknownColumn,
        StoreError::CrossCheck { .. } => ErrorKind::CrossCheckFailed,
        _ => ErrorKind::Storage,
    }
}

fn store_error(error: StoreError) -> ApiError {
    ApiError::new(store_error_kind(&error), error.to_string())
}

/// Checks one call and turns it into a reply (directly, or through the
/// engine).
async fn handle_call(
    shared: &Arc<Shared>,
    call: &mut Call,
    jobs: &Sender<Job>,
    kind: &mut usize,
) -> Result<Reply, ApiError> {
    let config = &shared.config;
    let bytes = call
        .read_message(api::HEADER_BYTES_MAX)
        .await
        .map_err(|e| refuse(ErrorKind::BadRequest, e.to_string()))?
        .ok_or_else(|| refuse(ErrorKind::BadRequest, "empty call"))?;
    let header: CallHeader = api::decode(&bytes)?;
    *kind = crate::metrics::kind_index(&header.body);
    if let Body::Status = header.body {
        return status::answer(shared, &header);
    }
    if header.api_version != api::API_VERSION {
        return Err(refuse(
            ErrorKind::BadRequest,
            format!(
                "client speaks API version {}, this node {}",
                header.api_version,
                api::API_VERSION
            ),
        ));
    }
    let request = SignedRequest::from_bytes(&header.request).map_err(auth_error)?;
    let signer = request.request.signer;
    if request.request.deployment != config.deployment {
        return Err(refuse(
            ErrorKind::Unauthorized,
            format!(
                "request for deployment {}, this node serves {}",
                request.request.deployment, config.deployment
            ),
        ));
    }
    let Some(user) = config.user(&signer) else {
        return Err(refuse(
            ErrorKind::Unauthorized,
            format!("unknown key {}", signer.fingerprint()),
        ));
    };
    check_signed(shared, header.body.digest(), &request)?;
    let digest = request.digest();
    tracing::info!(
        request = %digest,
        kind = header.body.kind(),
        user = %user.name,
        "request accepted"
    );
    let owner = || -> Result<(), ApiError> {
        if user.roles.contains(&Role::Owner) {
            Ok(())
        } else {
            Err(refuse(
                ErrorKind::Unauthorized,
                format!("user {:?} is not a data owner", user.name),
            ))
        }
    };
    let staged = match &header.body {
        // Goes through the engine like every request, so a listing also
        // tells the client that the three nodes are connected.
        Body::ListTables => None,
        Body::Upload(body) => {
            let mode = request.request.mode;
            match mode {
                // Analysts upload dummy data to design scripts against.
                Mode::Design if user.roles.contains(&Role::Analyst) => {}
                _ => owner()?,
            }
            let policy = upload_policy(shared, mode, body)?;
            let payload = header
                .payload
                .clone()
                .ok_or_else(|| refuse(ErrorKind::BadRequest, "upload without payload"))?;
            Some(stage_upload(shared, call, &signer, body, policy, payload).await)
        }
        Body::Sum { handle, .. } | Body::Count { handle, .. } | Body::Delete { handle } => {
            let table = authz::visible_table(&shared.store, handle, request.request.mode)?;
            if table.owner != api::owner_key(&signer) {
                return Err(refuse(
                    ErrorKind::Unauthorized,
                    format!(
                        "table {handle} belongs to another user; analysts query it through approved scripts"
                    ),
                ));
            }
            // A query result's rows include rows the query did not select
            // (and its mask says which): a plain sum, or a count of a
            // column's present values, would reveal them without a gate.
            let ungated = match &header.body {
                Body::Sum { .. } => Some("sums"),
                Body::Count {
                    column: Some(_), ..
                } => Some("counts of a column"),
                _ => None,
            };
            if let Some(what) = ungated
                && table.is_derived()
            {
                return Err(refuse(
                    ErrorKind::BadRequest,
                    format!(
                        "table {handle} is a query result whose rows include unselected ones; \
                         {what} of it go through a query with a threshold"
                    ),
                ));
            }
            if let Body::Sum { column, .. } = &header.body {
                if !table.columns.iter().any(|c| &c.name == column) {
                    return Err(refuse(
                        ErrorKind::UnknownColumn,
                        format!("table {handle} has no column {column:?}"),
                    ));
                }
                check_budget(shared, table.rows.saturating_mul(16))?;
            }
            if let Body::Count {
                column: Some(column),
                ..
            } = &header.body
                && !table.schema.iter().any(|c| &c.name == column)
            {
                return Err(refuse(
                    ErrorKind::UnknownColumn,
                    format!("table {handle} has no column {column:?}"),
                ));
            }
            None
        }
        // Whether the plan may run is decided by each node in the engine,
        // against the same state, and the three decisions are compared.
        Body::Query { .. } => {
            if !user.roles.contains(&Role::Owner) && !user.roles.contains(&Role::Analyst) {
                return Err(refuse(
                    ErrorKind::Unauthorized,
                    format!("user {:?} is neither an owner nor an analyst", user.name),
                ));
            }
            None
        }
        Body::CloseScript { .. } | Body::SubmitJob(_) | Body::CancelJob { .. } => {
            if request.request.mode != Mode::Authorized {
                return Err(refuse(
                    ErrorKind::BadRequest,
                    "scripts and job requests run, and are closed, in authorized mode",
                ));
            }
            if matches!(header.body, Body::SubmitJob(_)) && !user.roles.contains(&Role::Analyst) {
                return Err(refuse(
                    ErrorKind::Unauthorized,
                    format!("user {:?} is not an analyst", user.name),
                ));
            }
            None
        }
        // Job records hold states and handles, no value: any user of the
        // deployment may read them, as anyone may read a job request page.
        Body::Jobs | Body::Job { .. } => None,
        Body::Status => {
            return Err(refuse(
                ErrorKind::BadRequest,
                "a status probe came this far",
            ));
        }
        // Not queued: the engine is busy with the very query to stop.
        Body::CancelQuery => return Ok(cancel_running(shared, &signer)),
    };
    if header.job.is_some() && header.approved.is_none() {
        return Err(refuse(
            ErrorKind::BadRequest,
            "a job step is a step of an approved script and carries it",
        ));
    }
    if !shared.mesh_up.load(Ordering::SeqCst) {
        if let Some(Ok(report)) = &staged {
            let _ = shared.store.abort(&report.upload_id);
        }
        return Err(refuse(
            ErrorKind::PeerUnavailable,
            "this node is not connected to both other nodes",
        ));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        digest,
        request,
        body: header.body,
        staged,
        approved: header.approved,
        job_step: header.job,
        reply: tx,
        received: Instant::now(),
    };
    jobs.send(job)
        .map_err(|_| refuse(ErrorKind::Internal, "the node is stopping"))?;
    rx.await
        .map_err(|_| refuse(ErrorKind::Internal, "the request was dropped"))
}

/// The policy of a table being uploaded: the request's namespace; a dummy
/// must stand for a production table of exactly its schema; approvers must
/// be public keys.
fn upload_policy(shared: &Shared, mode: Mode, body: &UploadBody) -> Result<TablePolicy, ApiError> {
    if let Some(target) = &body.dummy_for {
        if mode != Mode::Design {
            return Err(refuse(
                ErrorKind::BadRequest,
                "a dummy table (dummy_for) is uploaded in design mode",
            ));
        }
        let production = authz::visible_table(&shared.store, target, Mode::Authorized)?;
        if production.schema != body.schema {
            let differs = production
                .schema
                .iter()
                .zip(&body.schema)
                .find(|(p, d)| p != d)
                .map(|(p, _)| format!("column {:?} differs", p.name))
                .unwrap_or_else(|| {
                    format!(
                        "{} columns, the production table has {}",
                        body.schema.len(),
                        production.schema.len()
                    )
                });
            return Err(refuse(
                ErrorKind::BadRequest,
                format!("a dummy for table {target} must have its schema and ranges: {differs}"),
            ));
        }
    }
    for approver in &body.approvers {
        approver
            .parse::<UserPublicKey>()
            .map_err(|e| refuse(ErrorKind::BadRequest, format!("approver {approver:?}: {e}")))?;
    }
    let mut approvers = body.approvers.clone();
    approvers.sort();
    approvers.dedup();
    Ok(TablePolicy {
        namespace: authz::namespace(mode),
        dummy_for: body.dummy_for,
        approvers,
        restricted: false,
        made_by: None,
    })
}

fn check_budget(shared: &Shared, bytes: u64) -> Result<(), ApiError> {
    let budget = shared.config.file.limits.memory_budget_bytes;
    if bytes > budget {
        return Err(refuse(
            ErrorKind::MemoryBudget,
            format!(
                "the request needs about {bytes} bytes of shares, above this node's memory budget of {budget} bytes"
            ),
        ));
    }
    Ok(())
}

/// Reads this node's components, expands seeds and stages the upload.
async fn stage_upload(
    shared: &Arc<Shared>,
    call: &mut Call,
    signer: &UserPublicKey,
    body: &UploadBody,
    policy: TablePolicy,
    payload: UploadPayload,
) -> Result<StagedUpload, ApiError> {
    let limits = &shared.config.file.limits;
    if let Some(name) = body.columns.iter().find(|name| name.starts_with('#')) {
        return Err(refuse(
            ErrorKind::BadRequest,
            format!("share column {name:?}: names starting with '#' are reserved"),
        ));
    }
    if body.rows > limits.rows_max {
        return Err(refuse(
            ErrorKind::BadRequest,
            format!("{} rows, above the limit of {}", body.rows, limits.rows_max),
        ));
    }
    if payload.columns.len() != body.columns.len() {
        return Err(refuse(
            ErrorKind::BadRequest,
            format!(
                "payload has {} columns, the body names {}",
                payload.columns.len(),
                body.columns.len()
            ),
        ));
    }
    check_budget(
        shared,
        body.rows
            .saturating_mul(16)
            .saturating_mul(body.columns.len() as u64),
    )?;
    let rows = body.rows;
    let mut received = Vec::with_capacity(body.columns.len());
    for (own, next) in &payload.columns {
        let seed = |source: &ComponentSource| match source {
            ComponentSource::Seed(seed) => Some(*seed),
            ComponentSource::Explicit => None,
        };
        let own_seed = seed(own);
        let next_seed = seed(next);
        let own_words = match own_seed {
            None => Some(
                call.read_words(rows, limits.rows_max)
                    .await
                    .map_err(|e| refuse(ErrorKind::BadRequest, e.to_string()))?,
            ),
            Some(_) => None,
        };
        let next_words = match next_seed {
            None => Some(
                call.read_words(rows, limits.rows_max)
                    .await
                    .map_err(|e| refuse(ErrorKind::BadRequest, e.to_string()))?,
            ),
            Some(_) => None,
        };
        received.push((own_seed, own_words, next_seed, next_words));
    }
    let shared2 = shared.clone();
    let upload_id = body.upload_id.clone();
    let owner = api::owner_key(signer);
    let schema = body.schema.clone();
    let names = body.columns.clone();
    let keys = ComponentKeys {
        own: payload.own_key,
        next: payload.next_key,
    };
    tokio::task::spawn_blocking(move || {
        let shared = shared2;
        let columns: Vec<(String, Arith)> = shared
            .pool
            .install(|| {
                use rayon::prelude::*;
                received
                    .into_par_iter()
                    .zip(names.into_par_iter())
                    .map(|((own_seed, own, next_seed, next), name)| {
                        let expand = |seed: Option<[u8; 32]>, words: Option<Vec<u64>>| match seed {
                            Some(seed) => triad_ring::outside::expand(&seed, rows as usize),
                            None => words.unwrap_or_default(),
                        };
                        let own = expand(own_seed, own);
                        let next = expand(next_seed, next);
                        Arith::from_components(own, next).map(|a| (name, a))
                    })
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| refuse(ErrorKind::BadRequest, e.to_string()))?;
        let upload = Upload {
            upload_id,
            owner,
            schema,
            rows,
            policy,
            keys,
            columns,
        };
        shared.store.stage(&upload).map_err(store_error)
    })
    .await
    .map_err(|_| refuse(ErrorKind::Internal, "staging task failed"))?
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// The engine: one thread, the mesh, agreement and execution.

/// Node 0's announcement of what the three do next.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Control {
    Tick,
    Run([u8; 32]),
}

/// What each node tells the other two after an announcement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum Ack {
    Tick,
    Have([u8; 32]),
    Missing([u8; 32]),
}

/// A failure of the link to the other nodes: the mesh is re-formed.
#[derive(Debug, thiserror::Error)]
enum MeshLost {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("malformed message from {peer}")]
    Malformed { peer: PartyId },
    #[error("out of step with {peer}")]
    OutOfStep { peer: PartyId },
    /// A query's protocol failed: the links are in an unknown state.
    #[error("query protocol: {0}")]
    Protocol(#[from] triad_ring::Error),
    /// The peer serves another roles document: the nodes must not run
    /// requests under different user lists.
    #[error(
        "{peer} serves roles document {theirs} (serial {their_serial}), this node {ours} (serial {our_serial}); install the same signed document on all three"
    )]
    RolesDiffer {
        peer: PartyId,
        ours: triad_auth::Digest,
        our_serial: u64,
        theirs: triad_auth::Digest,
        their_serial: u64,
    },
    /// More than one node waits to be rebuilt: each lacks components only
    /// the other held.
    #[error(
        "nodes {} wait to be rebuilt; a node is rebuilt from the other two, so only one at a time can be",
        waiting.iter().map(|p| p.index().to_string()).collect::<Vec<_>>().join(" and ")
    )]
    CannotRebuild { waiting: Vec<PartyId> },
}

struct Mesh {
    transport: crate::metrics::Counted<QuicTransport>,
    me: PartyId,
    /// Pairwise PRG keys, fresh for every formation of the mesh; every
    /// query derives its own streams from them.
    keys: PairKeys,
}

impl Mesh {
    fn others(&self) -> [PartyId; 2] {
        [self.me.next(), self.me.prev()]
    }

    fn send<T: Serialize>(&mut self, to: PartyId, value: &T) -> Result<(), MeshLost> {
        self.transport
            .send(to, bytes_to_words(&api::encode(value)))?;
        Ok(())
    }

    fn recv<T: for<'de> Deserialize<'de>>(&mut self, from: PartyId) -> Result<T, MeshLost> {
        let words = self.transport.recv(from)?;
        let bytes = words_to_bytes(&words).ok_or(MeshLost::Malformed { peer: from })?;
        api::decode(&bytes).map_err(|_| MeshLost::Malformed { peer: from })
    }

    /// Sends `value` to both others and returns what each sent, indexed by
    /// party (this node's own slot holds `value`).
    fn exchange<T: Serialize + for<'de> Deserialize<'de> + Clone>(
        &mut self,
        value: &T,
    ) -> Result<[T; 3], MeshLost> {
        let others = self.others();
        for peer in others {
            self.send(peer, value)?;
        }
        let a: T = self.recv(others[0])?;
        let b: T = self.recv(others[1])?;
        let mut out = [value.clone(), value.clone(), value.clone()];
        out[others[0].index()] = a;
        out[others[1].index()] = b;
        Ok(out)
    }
}

fn bytes_to_words(bytes: &[u8]) -> Vec<u64> {
    let mut words = Vec::with_capacity(1 + bytes.len().div_ceil(8));
    words.push(bytes.len() as u64);
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        words.push(u64::from_le_bytes(word));
    }
    words
}

fn words_to_bytes(words: &[u64]) -> Option<Vec<u8>> {
    let (&len, rest) = words.split_first()?;
    let len = usize::try_from(len).ok()?;
    if len.div_ceil(8) != rest.len() {
        return None;
    }
    let mut bytes: Vec<u8> = rest.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.truncate(len);
    Some(bytes)
}

fn mesh_config(shared: &Shared, identity: NodeIdentity) -> Result<MeshConfig, triad_net::NetError> {
    let config = &shared.config;
    let mut peers = Vec::new();
    for peer in &config.peers {
        peers.push(PeerConfig {
            party: PartyId::from_index(peer.node).unwrap_or(PartyId::P0),
            address: Some(peer.address),
            certificate: triad_net::load_certificate(&peer.certificate)?,
        });
    }
    let [a, b]: [PeerConfig; 2] = peers
        .try_into()
        .map_err(|_| triad_net::ConfigProblem::NoWorkerThreads)?;
    let mut mesh = MeshConfig::new(config.party, config.file.listen, identity, [a, b]);
    mesh.connect_timeout = Duration::from_secs(5);
    mesh.recv_timeout = Some(config.peer_timeout());
    mesh.idle_timeout = Duration::from_millis(config.file.limits.idle_timeout_ms);
    mesh.worker_threads = config.file.threads.network;
    mesh.lanes = config.file.mesh.lanes;
    mesh.part_words = config.file.mesh.part_words;
    // No frame of a query can exceed what the memory budget lets a query
    // hold, so a peer announcing more is refused before anything is
    // allocated for it.
    mesh.frame_words_max = (config.file.limits.memory_budget_bytes / 8).max(1 << 20);
    Ok(mesh)
}

fn engine_main(shared: &Arc<Shared>, identity: NodeIdentity, jobs: Receiver<Job>) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut last_cleanup = Instant::now();
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let transport = mesh_config(shared, identity.clone())
            .and_then(MeshListener::bind)
            .and_then(MeshListener::connect);
        let mut transport = match transport {
            Ok(t) => t,
            Err(error) => {
                tracing::info!(%error, "mesh not formed; retrying");
                refuse_all(
                    &shared.store,
                    &jobs,
                    &mut queue,
                    "the other nodes are not reachable",
                );
                std::thread::sleep(Duration::from_millis(300));
                continue;
            }
        };
        // All three agree the keys first thing on a new mesh.
        let keys = match PairKeys::establish(shared.config.party, &mut transport) {
            Ok(keys) => keys,
            Err(error) => {
                tracing::info!(%error, "pairwise keys not agreed; re-forming the mesh");
                transport.abort();
                refuse_all(
                    &shared.store,
                    &jobs,
                    &mut queue,
                    "the other nodes are not reachable",
                );
                std::thread::sleep(Duration::from_millis(300));
                continue;
            }
        };
        tracing::info!("connected to both other nodes");
        let mut mesh = Mesh {
            transport: crate::metrics::Counted::new(transport, shared.metrics.clone()),
            me: shared.config.party,
            keys,
        };
        shared.mesh_up.store(true, Ordering::SeqCst);
        let lost = serve(shared, &mut mesh, &jobs, &mut queue, &mut last_cleanup);
        shared.mesh_up.store(false, Ordering::SeqCst);
        mesh.transport.into_inner().abort();
        if let MeshLost::RolesDiffer { .. } | MeshLost::CannotRebuild { .. } = lost {
            tracing::error!(error = %lost, "refusing to serve; retrying in 5 s");
            std::thread::sleep(Duration::from_secs(5));
        } else {
            tracing::warn!(error = %lost, "lost the mesh; re-forming");
        }
        refuse_all(
            &shared.store,
            &jobs,
            &mut queue,
            "a node became unreachable during the request",
        );
    }
}

fn refuse_all(store: &Store, jobs: &Receiver<Job>, queue: &mut VecDeque<Job>, why: &str) {
    queue.extend(jobs.try_iter());
    for job in queue.drain(..) {
        abort_staged(Some(store), &job);
        let _ = job
            .reply
            .send(Reply::Refused(refuse(ErrorKind::PeerUnavailable, why)));
    }
}

fn abort_staged(store: Option<&Store>, job: &Job) {
    if let (Some(store), Some(Ok(report))) = (store, &job.staged) {
        let _ = store.abort(&report.upload_id);
    }
}

const TICK: Duration = Duration::from_secs(1);

/// Settles commits that a crash left unconfirmed (see `pending`).
fn reconcile(shared: &Shared, mesh: &mut Mesh) -> Result<(), MeshLost> {
    let roles = (shared.config.roles.digest(), shared.config.roles.serial());
    let all = mesh.exchange(&roles)?;
    if let Some(peer) = mesh.others().into_iter().find(|p| all[p.index()] != roles) {
        let (theirs, their_serial) = all[peer.index()];
        return Err(MeshLost::RolesDiffer {
            peer,
            ours: roles.0,
            our_serial: roles.1,
            theirs,
            their_serial,
        });
    }
    // A node being rebuilt first gets the tables the others hold, so that
    // settling unconfirmed commits below sees it holding them.
    let waiting = mesh.exchange(&recovery::is_marked(&shared.config.data_dir))?;
    recovery::recover(shared, mesh, waiting)?;
    let mine: Vec<Handle> = match shared.pending.lock() {
        Ok(p) => p.handles().iter().copied().collect(),
        Err(_) => Vec::new(),
    };
    let lists = mesh.exchange(&mine)?;
    let union: BTreeSet<Handle> = lists.iter().flatten().copied().collect();
    let held_here: Vec<Handle> = union
        .iter()
        .filter(|h| shared.store.table(h).is_ok())
        .copied()
        .collect();
    let held = mesh.exchange(&held_here)?;
    let sets: Vec<BTreeSet<Handle>> = held.iter().map(|v| v.iter().copied().collect()).collect();
    let (keep, drop) = settle(&union, [&sets[0], &sets[1], &sets[2]]);
    for handle in &drop {
        if shared.store.table(handle).is_ok() {
            match shared.store.delete(handle) {
                Ok(_) => {
                    tracing::warn!(%handle, "dropped a table not committed on all three nodes")
                }
                Err(error) => tracing::warn!(%handle, %error, "cannot drop an unconfirmed table"),
            }
        }
    }
    if !keep.is_empty() || !drop.is_empty() {
        tracing::info!(
            kept = keep.len(),
            dropped = drop.len(),
            "settled unconfirmed commits"
        );
    }
    let settled: Vec<Handle> = keep.into_iter().chain(drop).collect();
    if let Ok(mut pending) = shared.pending.lock()
        && let Err(error) = pending.remove(&settled)
    {
        tracing::warn!(%error, "cannot update the unconfirmed-commit record");
    }
    Ok(())
}

fn serve(
    shared: &Shared,
    mesh: &mut Mesh,
    jobs: &Receiver<Job>,
    queue: &mut VecDeque<Job>,
    last_cleanup: &mut Instant,
) -> MeshLost {
    if let Err(lost) = reconcile(shared, mesh) {
        return lost;
    }
    let agree_timeout = Duration::from_millis(shared.config.file.limits.agree_timeout_ms);
    loop {
        let control = if mesh.me == PartyId::P0 {
            let next = match queue.pop_front() {
                Some(job) => Some(job),
                None => match jobs.recv_timeout(TICK) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        return MeshLost::OutOfStep { peer: mesh.me };
                    }
                },
            };
            let control = match &next {
                Some(job) => Control::Run(*job.digest.as_bytes()),
                None => Control::Tick,
            };
            if let Some(job) = next {
                queue.push_front(job);
            }
            for peer in mesh.others() {
                if let Err(e) = mesh.send(peer, &control) {
                    return e;
                }
            }
            control
        } else {
            match mesh.recv::<Control>(PartyId::P0) {
                Ok(c) => c,
                Err(e) => return e,
            }
        };
        let result = match control {
            Control::Tick => tick(shared, mesh, jobs, queue, last_cleanup),
            Control::Run(digest) => run_one(shared, mesh, jobs, queue, digest, agree_timeout),
        };
        if let Err(e) = result {
            return e;
        }
    }
}

fn tick(
    shared: &Shared,
    mesh: &mut Mesh,
    jobs: &Receiver<Job>,
    queue: &mut VecDeque<Job>,
    last_cleanup: &mut Instant,
) -> Result<(), MeshLost> {
    let acks = mesh.exchange(&Ack::Tick)?;
    for (party, ack) in acks.iter().enumerate() {
        if *ack != Ack::Tick {
            return Err(MeshLost::OutOfStep {
                peer: PartyId::from_index(party).unwrap_or(PartyId::P0),
            });
        }
    }
    // Requests no other node announced in time never will be.
    queue.extend(jobs.try_iter());
    let limit = Duration::from_millis(shared.config.file.limits.agree_timeout_ms) * 3;
    let mut kept = VecDeque::new();
    for job in queue.drain(..) {
        if job.received.elapsed() > limit {
            abort_staged(Some(&shared.store), &job);
            let _ = job.reply.send(Reply::Refused(refuse(
                ErrorKind::NotAgreed,
                "the other nodes never received this request",
            )));
        } else {
            kept.push_back(job);
        }
    }
    *queue = kept;
    if last_cleanup.elapsed() > Duration::from_secs(60) {
        *last_cleanup = Instant::now();
        let timeout = Duration::from_secs(shared.config.file.limits.staging_timeout_secs);
        match shared.store.cleanup_staging(timeout, SystemTime::now()) {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(uploads = removed.len(), "removed stale staged uploads");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "staging clean-up failed"),
        }
        if let Ok(mut nonces) = shared.nonces.lock() {
            let window = shared.config.file.limits.request_max_age_secs;
            if let Err(error) = nonces.compact(now_secs(), window) {
                tracing::warn!(%error, "nonce store compaction failed");
            }
        }
    }
    Ok(())
}

fn run_one(
    shared: &Shared,
    mesh: &mut Mesh,
    jobs: &Receiver<Job>,
    queue: &mut VecDeque<Job>,
    digest: [u8; 32],
    agree_timeout: Duration,
) -> Result<(), MeshLost> {
    let deadline = Instant::now() + agree_timeout;
    let mut job = None;
    loop {
        queue.extend(jobs.try_iter());
        if let Some(position) = queue.iter().position(|j| *j.digest.as_bytes() == digest) {
            job = queue.remove(position);
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match jobs.recv_timeout(left) {
            Ok(j) => queue.push_back(j),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let ack = if job.is_some() {
        Ack::Have(digest)
    } else {
        Ack::Missing(digest)
    };
    let acks = match mesh.exchange(&ack) {
        Ok(acks) => acks,
        Err(lost) => {
            if let Some(job) = job {
                fail_lost(shared, job, &lost);
            }
            return Err(lost);
        }
    };
    let all = acks.iter().all(|a| *a == Ack::Have(digest));
    let Some(job) = job else {
        return Ok(());
    };
    if !all {
        let missing: Vec<usize> = acks
            .iter()
            .enumerate()
            .filter(|(_, a)| **a != Ack::Have(digest))
            .map(|(i, _)| i)
            .collect();
        abort_staged(Some(&shared.store), &job);
        let _ = job.reply.send(Reply::Refused(refuse(
            ErrorKind::NotAgreed,
            format!("nodes {missing:?} did not receive this request; nothing ran"),
        )));
        return Ok(());
    }
    let started = Instant::now();
    let kind = job.body.kind();
    let (mut reply, outcome) = match execute(shared, mesh, &job) {
        Ok(done) => done,
        Err(lost) => {
            fail_lost(shared, job, &lost);
            return Err(lost);
        }
    };
    if let Reply::Uploaded { commit_seconds, .. } = &mut reply {
        *commit_seconds = started.elapsed().as_secs_f64();
    }
    let heads = audit(shared, mesh, &job, &reply, outcome);
    if let Ok(heads) = &heads
        && let Reply::Answer { audit, .. } | Reply::Stored { audit, .. } = &mut reply
    {
        audit.clone_from(heads);
    }
    tracing::info!(
        request = %job.digest,
        kind,
        outcome,
        millis = started.elapsed().as_millis() as u64,
        "request done"
    );
    let _ = job.reply.send(reply);
    heads.map(|_| ())
}

/// Records the request in this node's audit log, then exchanges signed
/// log heads with the other two, who record them: an operator who later
/// rewrites its log no longer matches the heads its peers hold. Returns the
/// three heads, by node.
fn audit(
    shared: &Shared,
    mesh: &mut Mesh,
    job: &Job,
    reply: &Reply,
    outcome: &str,
) -> Result<Vec<SignedHead>, MeshLost> {
    append_and_exchange(shared, mesh, audit_entry(job, reply, outcome))
}

/// The audit entry of `job` answered with `reply`.
fn audit_entry(job: &Job, reply: &Reply, outcome: &str) -> AuditEntry {
    let request = &job.request.request;
    let signer = request.signer;
    let revealed = match reply {
        Reply::Answer {
            passed, ciphertext, ..
        } => format!(
            "{} gate outcomes to the nodes; {} sealed bytes to {}",
            passed.len(),
            ciphertext.len(),
            signer.fingerprint()
        ),
        Reply::Sealed { ciphertext, .. } => {
            format!(
                "{} sealed bytes to {}",
                ciphertext.len(),
                signer.fingerprint()
            )
        }
        Reply::Stored { handle, rows, .. } => format!("handle {handle} ({rows} rows) stored"),
        Reply::Uploaded { handle, rows, .. } => format!("handle {handle} ({rows} rows) stored"),
        Reply::Tables(tables) => format!("public metadata of {} tables", tables.len()),
        Reply::Count(_) => "a public row count".into(),
        Reply::Refused(error) if error.kind == ErrorKind::ThresholdNotMet => {
            "one failed gate bit".into()
        }
        Reply::Job(job) => format!("the record of job {}", job.id),
        Reply::Jobs(jobs) => format!("the records of {} jobs", jobs.len()),
        Reply::Deleted
        | Reply::Closed
        | Reply::Refused(_)
        | Reply::Status(_)
        | Reply::Cancelled(_) => "nothing".into(),
    };
    let plan = match &job.body {
        Body::Query { plan } => Some(hex(&plan.digest())),
        body => Some(body.digest().to_string()),
    };
    AuditEntry {
        time: now_secs(),
        user: signer.to_string(),
        request: job.digest.to_string(),
        kind: job.body.kind().into(),
        mode: match request.mode {
            Mode::Design => "design".into(),
            Mode::Authorized => "authorized".into(),
        },
        script: request.approval.map(|a| a.approval.to_string()),
        step: request.approval.map(|a| a.step),
        plan,
        revealed,
        status: match reply {
            Reply::Refused(error) => format!("refused: {:?}", error.kind),
            _ => outcome.to_owned(),
        },
    }
}

/// Appends `entry` to this node's audit log (a failure is logged, not
/// returned: the request's outcome stands) and returns the log's signed
/// head, or `None` if the log is unavailable.
fn append_signed(shared: &Shared, entry: AuditEntry) -> Option<SignedHead> {
    let Ok(mut log) = shared.audit.lock() else {
        tracing::error!("audit log unavailable");
        return None;
    };
    if let Err(error) = log.append(entry) {
        tracing::error!(%error, "audit log append failed");
    }
    Some(log.sign_head(&shared.operator))
}

/// Appends `entry` to this node's audit log, then exchanges signed log
/// heads with the other two, who record them. Returns the three heads, by
/// node.
fn append_and_exchange(
    shared: &Shared,
    mesh: &mut Mesh,
    entry: AuditEntry,
) -> Result<Vec<SignedHead>, MeshLost> {
    let Some(signed) = append_signed(shared, entry) else {
        return Ok(Vec::new());
    };
    let heads = mesh.exchange(&signed)?;
    if let Ok(mut log) = shared.audit.lock() {
        for (node, head) in heads.iter().enumerate() {
            if node == mesh.me.index() {
                continue;
            }
            if let Err(error) = log.record_peer_head(head, &shared.operators[node]) {
                tracing::error!(node, %error, "a peer's audit head was refused");
            }
        }
    }
    Ok(heads.to_vec())
}

/// Answers a job whose run broke off because a peer went away. An upload
/// that had not committed here is aborted; one that had stays (the other
/// nodes may have committed too) and its owner sees it in the listing.
fn set_running(shared: &Shared, running: Option<(RequestDigest, UserPublicKey)>) {
    *shared
        .running
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = running;
}

/// A `CancelQuery` from `signer`: stops the running query if it is theirs.
/// Another user's query is not theirs to stop, and whether one runs is not
/// theirs to know: both answer `Cancelled(false)`.
fn cancel_running(shared: &Shared, signer: &UserPublicKey) -> Reply {
    let running = shared
        .running
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match &*running {
        Some((digest, requester)) if requester == signer => {
            tracing::info!(request = %digest, "cancelling the running query");
            shared.cancel.store(true, Ordering::SeqCst);
            Reply::Cancelled(true)
        }
        _ => Reply::Cancelled(false),
    }
}

/// The mesh transport as a query sees it: once the query's requester
/// cancels, every send and receive fails, so the query stops at its next
/// message on this node; the engine then re-forms the mesh, and the other
/// two, blocked on this node or told to cancel themselves, stop too.
struct Cancellable<'a, T> {
    inner: &'a mut T,
    cancel: &'a AtomicBool,
}

impl<T> Cancellable<'_, T> {
    fn check(&self, peer: PartyId) -> Result<(), TransportError> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(TransportError::Io {
                peer,
                source: std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "the query was cancelled by its requester",
                ),
            });
        }
        Ok(())
    }
}

impl<T: Transport> Transport for Cancellable<'_, T> {
    fn send(&mut self, to: PartyId, message: Vec<u64>) -> Result<(), TransportError> {
        self.check(to)?;
        self.inner.send(to, message)
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u64>, TransportError> {
        self.check(from)?;
        self.inner.recv(from)
    }

    fn part_words(&self) -> Option<usize> {
        self.inner.part_words()
    }

    fn send_parts(
        &mut self,
        to: PartyId,
        words: usize,
        next_part: &mut dyn FnMut() -> Vec<u64>,
    ) -> Result<(), TransportError> {
        self.check(to)?;
        self.inner.send_parts(to, words, next_part)
    }
}

fn fail_lost(shared: &Shared, job: Job, lost: &MeshLost) {
    abort_staged(Some(&shared.store), &job);
    let reply = if shared.cancel.swap(false, Ordering::SeqCst) {
        tracing::info!(request = %job.digest, "query cancelled by its requester");
        Reply::Refused(refuse(
            ErrorKind::Cancelled,
            "cancelled by the requester; nothing was stored or revealed",
        ))
    } else {
        Reply::Refused(refuse(
            ErrorKind::PeerUnavailable,
            format!(
                "a node became unreachable during the request ({lost}); retry when all three are up"
            ),
        ))
    };
    // Logged here alone: the mesh that would carry the heads is gone. The
    // heads exchanged after the next request cover this entry too.
    append_signed(shared, audit_entry(&job, &reply, "abandoned"));
    let _ = job.reply.send(reply);
}

/// Status each node reports after a local step, so that all three take the
/// same branch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum Status {
    Ok,
    Failed(String),
}

fn all_ok(statuses: &[Status; 3]) -> Result<(), String> {
    for (party, status) in statuses.iter().enumerate() {
        if let Status::Failed(why) = status {
            return Err(format!("node {party}: {why}"));
        }
    }
    Ok(())
}

fn execute(shared: &Shared, mesh: &mut Mesh, job: &Job) -> Result<(Reply, &'static str), MeshLost> {
    let store = &shared.store;
    match &job.body {
        Body::Upload(_) => {
            let mine: Result<StagedUpload, ApiError> = match &job.staged {
                Some(Ok(report)) => Ok(report.clone()),
                Some(Err(e)) => Err(e.clone()),
                None => Err(refuse(ErrorKind::Internal, "no staged upload")),
            };
            Ok(
                match agree_and_commit(
                    shared,
                    mesh,
                    mine,
                    None,
                    job.request.request.issued_at,
                    "the upload",
                )? {
                    Ok(info) => (
                        Reply::Uploaded {
                            handle: info.handle,
                            rows: info.rows,
                            commit_seconds: 0.0,
                        },
                        "committed",
                    ),
                    Err(refused) => refused,
                },
            )
        }
        Body::Query { plan } => run_query(shared, mesh, job, plan),
        Body::ListTables => {
            let namespace = authz::namespace(job.request.request.mode);
            let tables = store
                .tables()
                .iter()
                .filter(|t| t.policy.namespace == namespace)
                .map(TableSummary::from)
                .collect();
            Ok((Reply::Tables(tables), "listed"))
        }
        Body::CloseScript { script } => {
            let key = authz::RunKey::new(*script, job.request.request.signer);
            let status = match shared.runs.close(&key) {
                Ok(()) => Status::Ok,
                Err(why) => Status::Failed(why),
            };
            let statuses = mesh.exchange(&status)?;
            Ok(match all_ok(&statuses) {
                Ok(()) => (Reply::Closed, "closed"),
                Err(why) => (
                    Reply::Refused(refuse(ErrorKind::Storage, why)),
                    "close failed",
                ),
            })
        }
        Body::SubmitJob(submission) => {
            let signer = job.request.request.signer;
            let requester = Requester {
                id: job.digest.to_string()[..16].to_owned(),
                key: signer.to_string(),
                name: shared
                    .config
                    .user(&signer)
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
                // The signed time, not each node's clock: the three
                // records must be equal.
                now: job.request.request.issued_at,
            };
            let planned = shared
                .job_records
                .submit(submission, &requester, &|handle| {
                    authz::visible_table(store, handle, Mode::Authorized).is_ok()
                });
            job_reply(mesh, planned, "submitted")
        }
        Body::CancelJob { job: id } => {
            let signer = job.request.request.signer.to_string();
            let cancelled = shared
                .job_records
                .cancel(id, &signer, job.request.request.issued_at);
            job_reply(mesh, cancelled, "cancelled")
        }
        Body::Job { job: id } => Ok(match shared.job_records.get(id) {
            Ok(view) => (Reply::Job(Box::new(view)), "listed"),
            Err(e) => (Reply::Refused(job_error(e)), "refused"),
        }),
        Body::Jobs => Ok(match shared.job_records.list() {
            Ok(views) => (Reply::Jobs(views), "listed"),
            Err(e) => (Reply::Refused(job_error(e)), "refused"),
        }),
        Body::CancelQuery => Ok((
            Reply::Refused(refuse(
                ErrorKind::BadRequest,
                "a cancellation is answered where it arrives",
            )),
            "refused",
        )),
        // Answered where it arrives (`status`), never scheduled.
        Body::Status => Ok((
            Reply::Refused(refuse(
                ErrorKind::BadRequest,
                "a status probe is not scheduled",
            )),
            "refused",
        )),
        Body::Delete { handle } => {
            let status = match store.delete(handle) {
                Ok(_) => Status::Ok,
                Err(e) => Status::Failed(e.to_string()),
            };
            let statuses = mesh.exchange(&status)?;
            Ok(match all_ok(&statuses) {
                Ok(()) => (Reply::Deleted, "deleted"),
                Err(why) => (
                    Reply::Refused(refuse(ErrorKind::Storage, why)),
                    "delete failed",
                ),
            })
        }
        Body::Sum { handle, column } => {
            reveal_sum(shared, mesh, job, handle, column).map(|r| (r, "revealed"))
        }
        Body::Count { handle, column } => {
            let table = store.table(handle);
            let nullable = match (&table, column) {
                (Ok(t), Some(c)) => t.schema.iter().any(|s| &s.name == c && s.nullable),
                _ => false,
            };
            if nullable {
                let valid = format!("{}#valid", column.as_deref().unwrap_or_default());
                reveal_sum(shared, mesh, job, handle, &valid).map(|r| (r, "revealed"))
            } else {
                let status = match &table {
                    Ok(_) => Status::Ok,
                    Err(e) => Status::Failed(e.to_string()),
                };
                let statuses = mesh.exchange(&status)?;
                Ok(match (all_ok(&statuses), table) {
                    (Ok(()), Ok(t)) => (Reply::Count(t.rows), "counted"),
                    (Err(why), _) => (
                        Reply::Refused(refuse(ErrorKind::UnknownHandle, why)),
                        "refused",
                    ),
                    (_, Err(e)) => (Reply::Refused(store_error(e)), "refused"),
                })
            }
        }
    }
}

fn job_error(error: JobError) -> ApiError {
    let kind = match &error {
        JobError::Storage(_) => ErrorKind::Storage,
        _ => ErrorKind::Job,
    };
    refuse(kind, error.to_string())
}

/// Answers a change to a job record after the three nodes compare what
/// they recorded: the same request on the same state plans the same job.
fn job_reply(
    mesh: &mut Mesh,
    result: Result<crate::jobs::JobView, JobError>,
    outcome: &'static str,
) -> Result<(Reply, &'static str), MeshLost> {
    let status = match &result {
        Ok(view) => Ok(blake3::hash(&api::encode(view)).to_hex().to_string()),
        Err(e) => Err(e.to_string()),
    };
    let statuses = mesh.exchange(&status)?;
    if let Some((party, why)) = statuses
        .iter()
        .enumerate()
        .find_map(|(p, s)| s.as_ref().err().map(|why| (p, why)))
    {
        let kind = match &result {
            Err(JobError::Storage(_)) => ErrorKind::Storage,
            _ => ErrorKind::Job,
        };
        return Ok((
            Reply::Refused(refuse(kind, format!("node {party}: {why}"))),
            "refused",
        ));
    }
    if statuses.iter().any(|s| s != &statuses[0]) {
        return Ok((
            Reply::Refused(refuse(
                ErrorKind::Internal,
                "the nodes recorded different job states",
            )),
            "refused",
        ));
    }
    Ok(match result {
        Ok(view) => (Reply::Job(Box::new(view)), outcome),
        Err(e) => (Reply::Refused(job_error(e)), "refused"),
    })
}

/// Exchanges the three nodes' staging reports, cross-checks them and
/// commits on all three or on none: what follows staging for an upload,
/// and for a query's result table (`derived`: the request digest its
/// handle follows from). The handle is recorded as unconfirmed before
/// committing, so that a crash before all three confirm is settled when
/// the mesh forms again. Returns the committed table, or the refusal.
fn agree_and_commit(
    shared: &Shared,
    mesh: &mut Mesh,
    mine: Result<StagedUpload, ApiError>,
    derived: Option<&Digest>,
    // The signed request's time, not this node's clock: the commit time
    // is part of the table's public metadata, which the three nodes must
    // report alike (a client lists only tables all three agree on).
    committed_at: u64,
    what: &str,
) -> Result<Result<TableInfo, (Reply, &'static str)>, MeshLost> {
    let store = &shared.store;
    let upload_id = mine.as_ref().ok().map(|report| report.upload_id.clone());
    let abort = |store: &Store| {
        if let Some(id) = &upload_id {
            let _ = store.abort(id);
        }
    };
    let reports = match mesh.exchange(&mine) {
        Ok(reports) => reports,
        Err(lost) => {
            abort(store);
            return Err(lost);
        }
    };
    let mut ok = Vec::new();
    for (party, report) in reports.iter().enumerate() {
        match report {
            Ok(r) => ok.push(r),
            Err(why) => {
                abort(store);
                return Ok(Err((
                    Reply::Refused(refuse(
                        why.kind,
                        format!("node {party} could not stage {what}: {why}"),
                    )),
                    "stage failed",
                )));
            }
        }
    }
    let agreed: AgreedUpload = match combine([ok[0], ok[1], ok[2]]) {
        Ok(a) => a,
        Err(error) => {
            abort(store);
            return Ok(Err((
                Reply::Refused(store_error(error)),
                "cross-check failed",
            )));
        }
    };
    let handle = match derived {
        Some(request) => derived_handle(request),
        None => handle_for(&agreed),
    };
    let recorded = shared
        .pending
        .lock()
        .map_err(|_| "poisoned".to_string())
        .and_then(|mut p| p.add(handle).map_err(|e| e.to_string()));
    let committed = match recorded {
        Ok(()) => match derived {
            Some(request) => store.commit_derived(&agreed, request, committed_at),
            None => store.commit(&agreed, committed_at),
        }
        .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let status = match &committed {
        Ok(_) => Status::Ok,
        Err(e) => Status::Failed(e.clone()),
    };
    let statuses = match mesh.exchange(&status) {
        Ok(statuses) => statuses,
        Err(lost) => {
            // A committed table stays recorded as unconfirmed for
            // `reconcile`; an uncommitted one is dropped here.
            if committed.is_err() {
                abort(store);
            }
            return Err(lost);
        }
    };
    let outcome = all_ok(&statuses);
    if outcome.is_err() {
        // Roll back so the handle exists on none of the three.
        if committed.is_ok() {
            let _ = store.delete(&handle);
        } else {
            abort(store);
        }
    }
    if let Ok(mut pending) = shared.pending.lock()
        && let Err(error) = pending.remove(&[handle])
    {
        tracing::warn!(%error, "cannot update the unconfirmed-commit record");
    }
    match (outcome, committed) {
        (Ok(()), Ok(info)) => Ok(Ok(info)),
        (Err(why), _) | (_, Err(why)) => Ok(Err((
            Reply::Refused(refuse(ErrorKind::Storage, format!("commit failed: {why}"))),
            "commit failed",
        ))),
    }
}

/// The digests every node records for a table: equal on all three when
/// they hold the same table.
fn table_fingerprint(table: &TableInfo) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("triad-node table fingerprint v1");
    hasher.update(table.handle.as_bytes());
    for column in &table.columns {
        hasher.update(&(column.name.len() as u64).to_le_bytes());
        hasher.update(column.name.as_bytes());
        for digest in &column.digests {
            hasher.update(digest.as_bytes());
        }
    }
    *hasher.finalize().as_bytes()
}

fn reveal_sum(
    shared: &Shared,
    mesh: &mut Mesh,
    job: &Job,
    handle: &Handle,
    column: &str,
) -> Result<Reply, MeshLost> {
    let store = &shared.store;
    // Read (and verify) first, then compare: a node whose file is damaged
    // makes all three refuse, so the client never gets a partial answer.
    let local = store.table(handle).and_then(|table| {
        let shares = store.read_column(handle, column)?;
        Ok((table_fingerprint(&table), shares))
    });
    let status: Result<[u8; 32], String> = match &local {
        Ok((fingerprint, _)) => Ok(*fingerprint),
        Err(e) => Err(e.to_string()),
    };
    let statuses = mesh.exchange(&status)?;
    let mut fingerprints = Vec::new();
    for (party, status) in statuses.iter().enumerate() {
        match status {
            Ok(f) => fingerprints.push(*f),
            Err(why) => {
                let kind = match &local {
                    Err(e) => store_error_kind(e),
                    Ok(_) => ErrorKind::Storage,
                };
                return Ok(Reply::Refused(refuse(kind, format!("node {party}: {why}"))));
            }
        }
    }
    if fingerprints.iter().any(|f| *f != fingerprints[0]) {
        return Ok(Reply::Refused(refuse(
            ErrorKind::Storage,
            format!("the nodes hold different versions of table {handle}"),
        )));
    }
    let Ok((_, shares)) = local else {
        return Ok(Reply::Refused(refuse(ErrorKind::Internal, "unreachable")));
    };
    let (own, next) = shares.components();
    let sum = |v: &[u64]| shared.pool.install(|| parallel_sum(v));
    let result = ResultShares {
        own: vec![sum(own)],
        next: vec![sum(next)],
    };
    Ok(seal_reply(shared, job, &result))
}

fn parallel_sum(values: &[u64]) -> u64 {
    use rayon::prelude::*;
    values
        .par_chunks(1 << 16)
        .map(|c| c.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
        .reduce(|| 0, u64::wrapping_add)
}

fn seal_reply(shared: &Shared, job: &Job, result: &ResultShares) -> Reply {
    match seal(shared, job, result) {
        Ok((ephemeral_public, ciphertext)) => Reply::Sealed {
            ephemeral_public,
            ciphertext,
        },
        Err(error) => Reply::Refused(error),
    }
}

/// Seals this node's result components to the request's result key: the
/// ephemeral public key and the ciphertext.
fn seal(
    shared: &Shared,
    job: &Job,
    result: &ResultShares,
) -> Result<([u8; 32], Vec<u8>), ApiError> {
    let context = ResultContext {
        request: job.digest,
        node: shared.config.party.index() as u32,
        output: 0,
    };
    triad_auth::seal(
        &job.request.request.result_key,
        &context.to_bytes(),
        &api::encode(result),
    )
    .map(|sealed| (*sealed.ephemeral_public.as_bytes(), sealed.ciphertext))
    .map_err(|error| refuse(ErrorKind::Internal, error.to_string()))
}

// ---------------------------------------------------------------------------
// Queries.

/// What each node reports before a query's protocol starts, so that all
/// three run it or all three refuse.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct QueryStatus {
    /// Per input table, in plan order: [`input_fingerprint`].
    inputs: Vec<[u8; 32]>,
    /// This node's `limits.min_threshold`; the query applies the largest.
    min_threshold: u64,
    /// This node's release policy (redaction bound, rounding); all three
    /// must be equal for a released answer.
    release: (u64, u64),
}

/// A query that typed against its inputs, with the inputs read.
struct PreparedQuery {
    checked: triad_plan::Checked,
    tables: query::StoreTables,
    grant: authz::Grant,
}

/// Equal on all three nodes when they hold the same table with the same
/// public metadata (the handle of a derived table does not commit to its
/// schema, so the schema is compared too).
fn input_fingerprint(table: &TableInfo) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("triad-node query input v1");
    hasher.update(&table_fingerprint(table));
    hasher.update(&api::encode(&(
        table.rows,
        &table.schema,
        &table.derived_from,
    )));
    *hasher.finalize().as_bytes()
}

/// Working-set bytes per input row and share column (plus two for the
/// mask and the sort's position): 16 bytes of shares, times 12 for the
/// copies merges and sorts keep.
const QUERY_BYTES_PER_WORD: u64 = 16 * 12;

/// This node's side of a query before any protocol: the inputs exist, the
/// plan types against them, the estimate fits the memory budget, and every
/// input column reads back verified.
fn prepare_query(
    shared: &Shared,
    job: &Job,
    plan: &triad_plan::Query,
) -> Result<(QueryStatus, PreparedQuery), ApiError> {
    let store = &shared.store;
    let grant = authz::authorize_query(
        &shared.config,
        store,
        &shared.runs,
        &job.request,
        job.approved.as_deref(),
        plan,
        now_secs(),
    )?;
    if let Some(step) = &job.job_step {
        let Some(granted) = &grant.step else {
            return Err(refuse(
                ErrorKind::Job,
                "a job step must be a step of an approved script",
            ));
        };
        shared
            .job_records
            .check_step(
                step,
                &job.request.request.signer.to_string(),
                &granted.run.script.to_string(),
                &plan.inputs(),
            )
            .map_err(job_error)?;
    }
    let mut inputs: Vec<(String, TableInfo)> = Vec::new();
    for (position, text) in plan.inputs().into_iter().enumerate() {
        let handle: Handle = text.parse().map_err(|e| {
            refuse(
                ErrorKind::BadRequest,
                format!("input table {position} of the plan is not a handle: {e}"),
            )
        })?;
        let info = store.table(&handle).map_err(store_error)?;
        inputs.push((text.to_owned(), info));
    }
    let mut schemas = std::collections::BTreeMap::new();
    for (text, info) in &inputs {
        let schema = query::table_schema(info).map_err(|why| refuse(ErrorKind::BadPlan, why))?;
        schemas.insert(text.clone(), schema);
    }
    let checked = triad_plan::check(plan, &|handle| schemas.get(handle).cloned())
        .map_err(|e| refuse(ErrorKind::BadPlan, e.to_string()))?;
    let words = inputs.iter().fold(0u64, |sum, (_, info)| {
        sum.saturating_add(info.rows.saturating_mul(info.columns.len() as u64 + 2))
    });
    check_budget(shared, words.saturating_mul(QUERY_BYTES_PER_WORD))?;
    // Only the columns the plan uses: a sum over a wide stored merge reads
    // two of its columns, not all of them.
    let needed = triad_exec::input_columns(&checked);
    let tables = shared
        .pool
        .install(|| query::StoreTables::read(store, &inputs, &needed))
        .map_err(|error| match error {
            query::ReadError::Store(e) => store_error(e),
            other => refuse(ErrorKind::Storage, other.to_string()),
        })?;
    let status = QueryStatus {
        inputs: inputs
            .iter()
            .map(|(_, info)| input_fingerprint(info))
            .collect(),
        min_threshold: shared.config.file.limits.min_threshold,
        release: (
            shared.config.file.release.redact_at_most,
            shared.config.file.release.round_to,
        ),
    };
    Ok((
        status,
        PreparedQuery {
            checked,
            tables,
            grant,
        },
    ))
}

/// Runs a query and records, for a job's step, how it ended.
fn run_query(
    shared: &Shared,
    mesh: &mut Mesh,
    job: &Job,
    plan: &triad_plan::Query,
) -> Result<(Reply, &'static str), MeshLost> {
    let mut grant = None;
    shared.cancel.store(false, Ordering::SeqCst);
    set_running(shared, Some((job.digest, job.request.request.signer)));
    let answered = run_plan(shared, mesh, job, plan, &mut grant);
    set_running(shared, None);
    if let Some(job_step) = &job.job_step {
        record_job_step(shared, job, job_step, grant.as_ref(), &answered);
    }
    answered
}

/// Runs a query: agree on the inputs, run the plan over the mesh, and
/// answer with the sealed aggregate or store the result table. `granted`
/// is set once this node has authorized a script step.
fn run_plan(
    shared: &Shared,
    mesh: &mut Mesh,
    job: &Job,
    plan: &triad_plan::Query,
    granted: &mut Option<authz::StepGrant>,
) -> Result<(Reply, &'static str), MeshLost> {
    let prepared = prepare_query(shared, job, plan);
    if let Ok((_, prepared)) = &prepared {
        granted.clone_from(&prepared.grant.step);
    }
    let status: Result<QueryStatus, ApiError> = match &prepared {
        Ok((status, _)) => Ok(status.clone()),
        Err(error) => Err(error.clone()),
    };
    let statuses = mesh.exchange(&status)?;
    let mut reports = Vec::new();
    for (party, status) in statuses.iter().enumerate() {
        match status {
            Ok(report) => reports.push(report),
            Err(why) => {
                return Ok((
                    Reply::Refused(refuse(why.kind, format!("node {party}: {}", why.message))),
                    "refused",
                ));
            }
        }
    }
    let inputs = plan.inputs();
    for (position, fingerprint) in reports[0].inputs.iter().enumerate() {
        if reports
            .iter()
            .any(|r| r.inputs.get(position) != Some(fingerprint))
        {
            let handle = inputs.get(position).copied().unwrap_or("?");
            return Ok((
                Reply::Refused(refuse(
                    ErrorKind::Storage,
                    format!("the nodes hold different versions of table {handle}"),
                )),
                "refused",
            ));
        }
    }
    let min_threshold = reports.iter().map(|r| r.min_threshold).max().unwrap_or(0);
    // A job's revealed aggregates are its moderately_sensitive outputs:
    // they leave the nodes only through the deployment's release policy.
    let release = if job.job_step.is_some() {
        if reports.iter().any(|r| r.release != reports[0].release) {
            return Ok((
                Reply::Refused(refuse(
                    ErrorKind::Internal,
                    "the nodes are configured with different release policies",
                )),
                "refused",
            ));
        }
        Some(triad_exec::ReleasePolicy {
            min_threshold: min_threshold.max(1),
            redact_at_most: reports[0].release.0,
            round_to: reports[0].release.1,
        })
    } else {
        None
    };
    let Ok((_, mut prepared)) = prepared else {
        return Ok((
            Reply::Refused(refuse(ErrorKind::Internal, "unreachable")),
            "refused",
        ));
    };
    let digest = job.digest.as_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    let config = SessionConfig {
        epoch: 0,
        query: u64::from_le_bytes(id),
        threads: shared.config.file.threads.compute,
        record_transcript: false,
    };
    let (outcome, stats) = {
        let started = Instant::now();
        let mut transport = Cancellable {
            inner: &mut mesh.transport,
            cancel: &shared.cancel,
        };
        let mut session = Session::new(mesh.me, &mut transport, &mesh.keys, &config)?;
        let outcome = triad_exec::execute(
            &mut session,
            &prepared.checked,
            &mut prepared.tables,
            &Policy {
                min_threshold,
                release,
                ..Policy::default()
            },
        );
        let counted = session.stats();
        let stats = QueryStats {
            seconds: started.elapsed().as_secs_f64(),
            bytes_sent: counted.bytes_sent,
            rounds: counted.rounds,
        };
        shared.metrics.observe_query(stats.seconds);
        tracing::info!(
            seconds = stats.seconds,
            bytes_sent = stats.bytes_sent,
            rounds = stats.rounds,
            "query ran"
        );
        (outcome, stats)
    };
    let grant = prepared.grant.clone();
    drop(prepared);
    let answered = answer_query(shared, mesh, job, outcome, stats, grant.result_policy);
    if let Some(step) = &grant.step {
        let end = match &answered {
            Ok((Reply::Answer { .. }, _)) => authz::StepEnd::Done(None),
            Ok((Reply::Stored { handle, .. }, _)) => authz::StepEnd::Done(Some(*handle)),
            Ok((Reply::Refused(error), _))
                if matches!(
                    error.kind,
                    ErrorKind::ThresholdNotMet | ErrorKind::NotUnique
                ) =>
            {
                authz::StepEnd::DataRefused(error.message.clone())
            }
            _ => authz::StepEnd::NotRun,
        };
        if let Err(why) = shared.runs.finish(step, end) {
            tracing::error!(%why, "recording a script step failed");
        }
    }
    answered
}

/// Records how a job's step ended. Refusals that ran nothing (a peer
/// away, the job's own order) leave the action as it was, so the step can
/// be sent again.
fn record_job_step(
    shared: &Shared,
    job: &Job,
    job_step: &JobStep,
    grant: Option<&authz::StepGrant>,
    answered: &Result<(Reply, &'static str), MeshLost>,
) {
    let last = |g: &authz::StepGrant| g.step + 1 == g.steps;
    let end = match (answered, grant) {
        (Ok((Reply::Stored { handle, .. }, _)), Some(g)) => StepOutcome::Stored {
            step: g.step,
            handle: *handle,
            last: last(g),
        },
        (
            Ok((
                Reply::Answer {
                    ciphertext, rule, ..
                },
                _,
            )),
            Some(g),
        ) => StepOutcome::Answered {
            step: g.step,
            sealed: blake3::hash(ciphertext).to_hex().to_string(),
            rule: rule.clone(),
            last: last(g),
        },
        (Ok((Reply::Refused(error), _)), grant) => {
            let reason = match error.kind {
                ErrorKind::ThresholdNotMet => FailReason::ThresholdNotMet,
                ErrorKind::NotUnique => FailReason::NotUnique,
                ErrorKind::NoMatchingAuthorization => FailReason::NoMatchingAuthorization,
                ErrorKind::Unauthorized | ErrorKind::BadPlan => FailReason::Error,
                _ => return,
            };
            match grant {
                Some(g)
                    if g.allow_errors
                        && matches!(
                            reason,
                            FailReason::ThresholdNotMet | FailReason::NotUnique
                        ) =>
                {
                    StepOutcome::Allowed {
                        step: g.step,
                        last: last(g),
                    }
                }
                _ => StepOutcome::Failed {
                    reason,
                    message: error.message.clone(),
                },
            }
        }
        _ => return,
    };
    let signer = job.request.request.signer.to_string();
    if let Err(error) = shared
        .job_records
        .record_step(job_step, &signer, end, now_secs())
    {
        tracing::error!(%error, job = %job_step.job, "recording a job step failed");
    }
}

/// Turns a query's outcome into the reply: sealed answer, stored table or
/// refusal.
fn answer_query(
    shared: &Shared,
    mesh: &mut Mesh,
    job: &Job,
    outcome: Result<Outcome, ExecError>,
    stats: QueryStats,
    policy: TablePolicy,
) -> Result<(Reply, &'static str), MeshLost> {
    let refused = |kind: ErrorKind, error: ExecError, outcome: &'static str| {
        Ok((Reply::Refused(refuse(kind, error.to_string())), outcome))
    };
    match outcome {
        Ok(Outcome::Answer(answer)) => {
            let (own, next) = answer.words.components();
            let result = ResultShares {
                own: own.to_vec(),
                next: next.to_vec(),
            };
            Ok(match seal(shared, job, &result) {
                Ok((ephemeral_public, ciphertext)) => (
                    Reply::Answer {
                        passed: answer.passed,
                        rule: answer.rule,
                        ephemeral_public,
                        ciphertext,
                        stats,
                        audit: Vec::new(),
                    },
                    "answered",
                ),
                Err(error) => (Reply::Refused(error), "seal failed"),
            })
        }
        Ok(Outcome::Table(table)) => store_derived(shared, mesh, job, table, stats, policy),
        // The three nodes' links are in an unknown state: re-form them.
        Err(ExecError::Protocol(error)) => Err(MeshLost::Protocol(error)),
        Err(error @ ExecError::ThresholdNotMet { .. }) => {
            refused(ErrorKind::ThresholdNotMet, error, "threshold not met")
        }
        Err(error @ ExecError::NotUnique) => refused(ErrorKind::NotUnique, error, "not unique"),
        Err(error @ (ExecError::Plan(_) | ExecError::Unsupported(_))) => {
            refused(ErrorKind::BadPlan, error, "refused")
        }
        Err(error @ ExecError::Table { .. }) => refused(ErrorKind::Storage, error, "refused"),
    }
}

/// Stores a query's result table on all three nodes: staged and
/// cross-checked like an upload (with fresh digest keys the two holders of
/// each component agree over the mesh), committed under the handle the
/// request digest gives, owned by the requester.
fn store_derived(
    shared: &Shared,
    mesh: &mut Mesh,
    job: &Job,
    table: triad_exec::SecretTable,
    stats: QueryStats,
    policy: TablePolicy,
) -> Result<(Reply, &'static str), MeshLost> {
    let request = Digest::from_bytes(*job.digest.as_bytes());
    let party = mesh.me;
    // Component c is held by parties c - 1 (as `next`) and c (as `own`):
    // each node draws the key of its `next` component and gives it to the
    // next node, whose `own` it is. The third node never sees it.
    let mut drawn = [0u8; 32];
    let random = getrandom::fill(&mut drawn)
        .map_err(|e| refuse(ErrorKind::Internal, format!("OS random generator: {e}")));
    mesh.send(party.next(), &drawn)?;
    let received: [u8; 32] = mesh.recv(party.prev())?;
    let mine = random.and_then(|()| {
        let derived = query::derived_table(table, party)
            .map_err(|why| refuse(ErrorKind::Internal, format!("the query result: {why}")))?;
        let upload = Upload {
            upload_id: derived_upload_id(&request),
            owner: api::owner_key(&job.request.request.signer),
            schema: derived.schema,
            rows: derived.rows,
            policy,
            keys: ComponentKeys {
                own: received,
                next: drawn,
            },
            columns: derived.columns,
        };
        shared.store.stage(&upload).map_err(store_error)
    });
    Ok(
        match agree_and_commit(
            shared,
            mesh,
            mine,
            Some(&request),
            job.request.request.issued_at,
            "the query result",
        )? {
            Ok(info) => (
                Reply::Stored {
                    handle: info.handle,
                    rows: info.rows,
                    stats,
                    audit: Vec::new(),
                },
                "stored",
            ),
            Err(refused) => refused,
        },
    )
}
