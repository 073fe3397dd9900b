//! Talking to the three nodes: signed requests, uploads dealt into
//! replicated shares, and results reconstructed only here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use triad_auth::{
    ApprovalStep, DeploymentId, Mode, Nonce, REQUEST_VERSION, Request, ResultContext, ResultSecret,
    Sealed, SignedRequest, UserKey, X25519Public,
};
use triad_net::join::{join_all, join_all_until};
use triad_net::{LinkConfig, NodeLink};
use triad_node::api::{
    self, Body, CallHeader, ComponentSource, ErrorKind, QueryStats, Reply, ResultShares,
    TableSummary, UploadBody, UploadPayload,
};
use triad_node::jobs::JobStep;
use triad_node::store::{
    AgreedUpload, ColumnInfo, ColumnSchema, Handle, TablePolicy, UploadId, component_digest,
    handle_for,
};
use triad_plan::Query;
use triad_ring::PartyId;
use triad_ring::outside::expand;

use crate::connection::ConnectionFile;
use crate::error::ClientError;
use crate::table::EncodedTable;

/// How long the client waits for a node to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected client: one link to each node, the user's key.
#[derive(Debug)]
pub struct Client {
    runtime: tokio::runtime::Runtime,
    links: Vec<NodeLink>,
    key: UserKey,
    deployment: DeploymentId,
    /// Share bytes written to nodes so far, for progress bars.
    sent: Arc<AtomicU64>,
    /// The mode requests are signed for, and the script being recorded or
    /// run (see [`crate::script`]).
    pub(crate) session: std::sync::Mutex<crate::script::Session>,
}

/// What an upload declares besides its data.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Upload a dummy table (in design mode) standing for this production
    /// table, whose schema and ranges it must have.
    pub dummy_for: Option<Handle>,
    /// Approvers (public keys, hex) who must all sign any script reading
    /// the table; empty: any one approver of the deployment.
    pub approvers: Vec<String>,
}

/// Seconds spent in each phase of an upload.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadTimings {
    /// Dealing shares and computing the expected handle.
    pub share: f64,
    /// Sending to the nodes until all three staged.
    pub send: f64,
    /// Cross-check and commit, until the handle came back.
    pub commit: f64,
    /// Bytes sent to each node.
    pub bytes_per_node: [u64; 3],
}

/// A committed upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The table's handle.
    pub handle: Handle,
    /// Rows.
    pub rows: u64,
    /// Where the time went.
    pub timings: UploadTimings,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random32() -> Result<[u8; 32], ClientError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ClientError::Usage(format!("OS random generator failed: {e}")))?;
    Ok(bytes)
}

impl Client {
    /// Connects to the three nodes of `connection`, loading the user's key.
    pub fn connect(connection: &ConnectionFile) -> Result<Client, ClientError> {
        let key = UserKey::load(&connection.key)?;
        let deployment: DeploymentId =
            connection
                .deployment
                .parse()
                .map_err(|e| ClientError::Connection {
                    path: "connection file".into(),
                    problem: format!("deployment: {e}"),
                })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| ClientError::File {
                path: "tokio runtime".into(),
                source,
            })?;
        let mut certificates = Vec::new();
        for node in &connection.nodes {
            certificates.push((
                node.index,
                node.address,
                triad_net::load_certificate(&node.certificate)?,
            ));
        }
        let links = runtime.block_on(async {
            let dials = certificates
                .into_iter()
                .map(|(index, address, certificate)| async move {
                    NodeLink::connect(address, certificate, LinkConfig::default(), CONNECT_TIMEOUT)
                        .await
                        .map_err(|source| ClientError::Link {
                            node: index,
                            source,
                        })
                });
            let mut links = Vec::new();
            for link in join_all(dials.collect()).await {
                links.push(link?);
            }
            Ok::<_, ClientError>(links)
        })?;
        Ok(Client {
            runtime,
            links,
            key,
            deployment,
            sent: Arc::new(AtomicU64::new(0)),
            session: std::sync::Mutex::new(crate::script::Session::default()),
        })
    }

    /// Loads the connection file at `path` and connects.
    pub fn connect_file(path: &std::path::Path) -> Result<Client, ClientError> {
        Client::connect(&ConnectionFile::load(path)?)
    }

    /// A counter of share bytes written to the nodes, across all calls;
    /// read it from another thread to show upload progress.
    pub fn bytes_sent(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }

    /// The user's public key as nodes record it (hex).
    pub fn owner(&self) -> String {
        api::owner_key(&self.key.public()).as_str().to_owned()
    }

    /// The deployment this client is connected to.
    pub fn deployment(&self) -> DeploymentId {
        self.deployment
    }

    /// The user's public key.
    pub fn public_key(&self) -> triad_auth::UserPublicKey {
        self.key.public()
    }

    fn sign(&self, body: &Body) -> Result<(SignedRequest, ResultSecret), ClientError> {
        self.sign_as(body, self.mode(), None)
    }

    pub(crate) fn sign_as(
        &self,
        body: &Body,
        mode: Mode,
        approval: Option<ApprovalStep>,
    ) -> Result<(SignedRequest, ResultSecret), ClientError> {
        let secret = ResultSecret::generate()?;
        let request = Request {
            version: REQUEST_VERSION,
            deployment: self.deployment,
            mode,
            body: body.digest(),
            approval,
            nonce: Nonce::generate()?,
            issued_at: now_secs(),
            result_key: secret.public(),
            signer: self.key.public(),
        };
        Ok((request.sign(&self.key)?, secret))
    }

    /// Sends one call to each node (with `payloads[i]` and `explicit[i]`
    /// for node `i`) and returns the three replies.
    fn call_all(
        &self,
        request: &SignedRequest,
        body: &Body,
        payloads: [Option<UploadPayload>; 3],
        explicit: [Vec<&[u64]>; 3],
    ) -> Result<[Reply; 3], ClientError> {
        self.call_all_with(request, body, payloads, explicit, None, None)
    }

    pub(crate) fn call_all_with(
        &self,
        request: &SignedRequest,
        body: &Body,
        payloads: [Option<UploadPayload>; 3],
        explicit: [Vec<&[u64]>; 3],
        approved: Option<Vec<u8>>,
        job: Option<JobStep>,
    ) -> Result<[Reply; 3], ClientError> {
        let request_bytes = request.to_bytes();
        self.runtime.block_on(async {
            let mut calls = Vec::new();
            for (((index, link), payload), words) in
                self.links.iter().enumerate().zip(payloads).zip(explicit)
            {
                let header = CallHeader {
                    api_version: api::API_VERSION,
                    request: request_bytes.clone(),
                    body: body.clone(),
                    payload,
                    approved: approved.clone(),
                    job: job.clone(),
                };
                let sent = &self.sent;
                calls.push(async move {
                    let link_error = |source| ClientError::Link {
                        node: index,
                        source,
                    };
                    let mut call = link.call().await.map_err(link_error)?;
                    call.write_message(&api::encode(&header))
                        .await
                        .map_err(link_error)?;
                    for w in words {
                        for chunk in w.chunks(1 << 17) {
                            call.write_words(chunk).await.map_err(link_error)?;
                            sent.fetch_add(8 * chunk.len() as u64, Ordering::Relaxed);
                        }
                    }
                    call.finish().map_err(link_error)?;
                    let bytes = call
                        .read_message(api::REPLY_BYTES_MAX)
                        .await
                        .map_err(link_error)?
                        .ok_or_else(|| ClientError::Misbehaving {
                            node: index,
                            problem: "closed the call without a reply".into(),
                        })?;
                    api::decode::<Reply>(&bytes).map_err(|e| ClientError::Misbehaving {
                        node: index,
                        problem: format!("unreadable reply: {e}"),
                    })
                });
            }
            // A node that reports the mesh broken, or a link that failed,
            // settles the request: waiting for the other replies would only
            // wait out the dead node's link timeout.
            let results = join_all_until(calls, |result| match result {
                Err(ClientError::Link { .. }) => true,
                Ok(Reply::Refused(error)) => error.kind == ErrorKind::PeerUnavailable,
                _ => false,
            })
            .await;
            let results = match results {
                Ok(results) => results,
                Err((_, Err(error))) => return Err(error),
                Err((node, Ok(reply))) => {
                    let error = match reply {
                        Reply::Refused(error) => error,
                        _ => api::ApiError {
                            kind: ErrorKind::Internal,
                            message: "a reply stopped the call early".into(),
                        },
                    };
                    return Err(ClientError::Refused { node, error });
                }
            };
            let mut replies = Vec::new();
            for result in results {
                replies.push(result?);
            }
            let [a, b, c]: [Reply; 3] = replies
                .try_into()
                .map_err(|_| ClientError::Usage("expected three replies".into()))?;
            Ok([a, b, c])
        })
    }

    /// Fails with the first refusal among `replies`.
    fn refusals(replies: &[Reply; 3]) -> Result<(), ClientError> {
        for (node, reply) in replies.iter().enumerate() {
            if let Reply::Refused(error) = reply {
                return Err(ClientError::Refused {
                    node,
                    error: error.clone(),
                });
            }
        }
        Ok(())
    }

    /// Secret-shares `table` and uploads it; returns its handle once all
    /// three nodes committed, after checking it is the handle the client
    /// computes itself from what it sent.
    pub fn upload(&self, table: &EncodedTable) -> Result<Uploaded, ClientError> {
        self.upload_inner(table, &UploadOptions::default(), None)
    }

    /// As [`Client::upload`], with a dummy link or approvers. A dummy
    /// table is uploaded in design mode whatever the client's mode.
    pub fn upload_with(
        &self,
        table: &EncodedTable,
        options: &UploadOptions,
    ) -> Result<Uploaded, ClientError> {
        self.upload_inner(table, options, None)
    }

    /// Uploads `table` with node `node`'s components deliberately
    /// inconsistent with the other nodes' (one of its seeds replaced), as a
    /// faulty or malicious client would: the nodes must refuse it at their
    /// cross-check. For tests of that check only.
    #[doc(hidden)]
    pub fn upload_corrupted(
        &self,
        table: &EncodedTable,
        node: usize,
    ) -> Result<Uploaded, ClientError> {
        self.upload_inner(table, &UploadOptions::default(), Some(node))
    }

    fn upload_inner(
        &self,
        table: &EncodedTable,
        options: &UploadOptions,
        corrupt: Option<usize>,
    ) -> Result<Uploaded, ClientError> {
        let started = Instant::now();
        let upload_id: UploadId = hex(&random32()?[..16])
            .parse()
            .map_err(|e| ClientError::Usage(format!("upload id: {e}")))?;
        let schema: Vec<ColumnSchema> = table.schema.to_store_schema();
        let rows = table.rows;
        let names: Vec<String> = table.columns.iter().map(|(n, _)| n.clone()).collect();
        let keys = [random32()?, random32()?, random32()?];
        // Fresh seeds per column; component 2 is explicit.
        let mut seeds = Vec::with_capacity(table.columns.len());
        for _ in &table.columns {
            seeds.push((random32()?, random32()?));
        }
        let dealt: Vec<(Vec<u64>, [triad_node::store::Digest; 3])> = table
            .columns
            .par_iter()
            .zip(seeds.par_iter())
            .map(|((name, values), (s0, s1))| {
                let x0 = expand(s0, values.len());
                let x1 = expand(s1, values.len());
                let x2: Vec<u64> = values
                    .iter()
                    .zip(x0.iter().zip(&x1))
                    .map(|(v, (a, b))| v.wrapping_sub(*a).wrapping_sub(*b))
                    .collect();
                let digests = [
                    component_digest(&keys[0], &upload_id, name, PartyId::P0, &x0),
                    component_digest(&keys[1], &upload_id, name, PartyId::P1, &x1),
                    component_digest(&keys[2], &upload_id, name, PartyId::P2, &x2),
                ];
                (x2, digests)
            })
            .collect();
        let owner = api::owner_key(&self.key.public());
        let expected = handle_for(&AgreedUpload {
            upload_id: upload_id.clone(),
            owner,
            rows,
            schema: schema.clone(),
            columns: names
                .iter()
                .zip(&dealt)
                .map(|(name, (_, digests))| ColumnInfo {
                    name: name.clone(),
                    digests: *digests,
                })
                .collect(),
            // Nodes compare it; the handle does not depend on it.
            policy: TablePolicy::default(),
        });
        let body = Body::Upload(UploadBody {
            upload_id,
            schema,
            rows,
            columns: names,
            dummy_for: options.dummy_for,
            approvers: options.approvers.clone(),
        });
        let mode = if options.dummy_for.is_some() {
            Mode::Design
        } else {
            self.mode()
        };
        let (request, _secret) = self.sign_as(&body, mode, None)?;
        let payload = |party: usize| {
            let mut columns: Vec<(ComponentSource, ComponentSource)> = seeds
                .iter()
                .map(|(s0, s1)| match party {
                    0 => (ComponentSource::Seed(*s0), ComponentSource::Seed(*s1)),
                    1 => (ComponentSource::Seed(*s1), ComponentSource::Explicit),
                    _ => (ComponentSource::Explicit, ComponentSource::Seed(*s0)),
                })
                .collect();
            if corrupt == Some(party)
                && let Some((own, next)) = columns.first_mut()
            {
                let seed = if party == 2 { next } else { own };
                if let ComponentSource::Seed(s) = seed {
                    s[0] ^= 1;
                }
            }
            UploadPayload {
                own_key: keys[party],
                next_key: keys[(party + 1) % 3],
                columns,
            }
        };
        let explicit: Vec<&[u64]> = dealt.iter().map(|(x2, _)| x2.as_slice()).collect();
        let share = started.elapsed().as_secs_f64();
        let sent = Instant::now();
        let bytes = (explicit.len() as u64) * rows * 8;
        let replies = self.call_all(
            &request,
            &body,
            [Some(payload(0)), Some(payload(1)), Some(payload(2))],
            [Vec::new(), explicit.clone(), explicit],
        )?;
        let total = sent.elapsed().as_secs_f64();
        Client::refusals(&replies)?;
        let mut commit = 0f64;
        for (node, reply) in replies.iter().enumerate() {
            match reply {
                Reply::Uploaded {
                    handle,
                    commit_seconds,
                    ..
                } if *handle == expected => commit = commit.max(*commit_seconds),
                Reply::Uploaded { .. } => {
                    return Err(ClientError::Misbehaving {
                        node,
                        problem: "returned a handle that does not match the shares sent".into(),
                    });
                }
                _ => {
                    return Err(ClientError::Misbehaving {
                        node,
                        problem: "answered an upload with something else".into(),
                    });
                }
            }
        }
        Ok(Uploaded {
            handle: expected,
            rows,
            timings: UploadTimings {
                share,
                // The nodes report how long agreeing and committing took;
                // the rest of the call is transfer and staging.
                send: (total - commit).max(0.0),
                commit,
                bytes_per_node: [0, bytes, bytes],
            },
        })
    }

    /// Public metadata of every table, checked to be the same on all three
    /// nodes.
    pub fn tables(&self) -> Result<Vec<TableSummary>, ClientError> {
        self.tables_in(self.mode())
    }

    /// The tables of the namespace of `mode`.
    pub(crate) fn tables_in(&self, mode: Mode) -> Result<Vec<TableSummary>, ClientError> {
        let body = Body::ListTables;
        let (request, _) = self.sign_as(&body, mode, None)?;
        let replies = self.call_all(&request, &body, [None, None, None], Default::default())?;
        Client::refusals(&replies)?;
        let mut lists = Vec::new();
        for (node, reply) in replies.into_iter().enumerate() {
            match reply {
                Reply::Tables(mut tables) => {
                    tables.sort_by_key(|t| t.handle);
                    lists.push(tables);
                }
                _ => {
                    return Err(ClientError::Misbehaving {
                        node,
                        problem: "answered a listing with something else".into(),
                    });
                }
            }
        }
        // A handle exists only where all three committed: a table that a
        // node crash left on one or two nodes is not usable and not listed.
        let common: Vec<TableSummary> = lists[0]
            .iter()
            .filter(|t| lists[1].contains(t) && lists[2].contains(t))
            .cloned()
            .collect();
        Ok(common)
    }

    /// Public metadata of one table.
    pub fn get_table(&self, handle: &Handle) -> Result<TableSummary, ClientError> {
        self.get_table_in(handle, self.mode())
    }

    /// One table of the namespace of `mode`.
    pub(crate) fn get_table_in(
        &self,
        handle: &Handle,
        mode: Mode,
    ) -> Result<TableSummary, ClientError> {
        self.tables_in(mode)?
            .into_iter()
            .find(|t| t.handle == *handle)
            .ok_or_else(|| ClientError::Usage(format!("no table with handle {handle}")))
    }

    /// Opens the three sealed replies and reconstructs, checking that each
    /// component is reported the same by both nodes holding it.
    fn reconstruct(
        request: &SignedRequest,
        secret: &ResultSecret,
        replies: [Reply; 3],
    ) -> Result<Vec<u64>, ClientError> {
        Client::refusals(&replies)?;
        let mut shares = Vec::new();
        for (node, reply) in replies.into_iter().enumerate() {
            let Reply::Sealed {
                ephemeral_public,
                ciphertext,
            } = reply
            else {
                return Err(ClientError::Misbehaving {
                    node,
                    problem: "answered with something other than a sealed result".into(),
                });
            };
            shares.push(Client::open_shares(
                request,
                secret,
                node,
                ephemeral_public,
                ciphertext,
            )?);
        }
        Client::combine(shares)
    }

    /// Opens node `node`'s sealed [`ResultShares`].
    fn open_shares(
        request: &SignedRequest,
        secret: &ResultSecret,
        node: usize,
        ephemeral_public: [u8; 32],
        ciphertext: Vec<u8>,
    ) -> Result<ResultShares, ClientError> {
        let context = ResultContext {
            request: request.digest(),
            node: node as u32,
            output: 0,
        };
        let sealed = Sealed {
            ephemeral_public: X25519Public::from_bytes(ephemeral_public),
            ciphertext,
        };
        let plain = triad_auth::open(secret, &context.to_bytes(), &sealed).map_err(|_| {
            ClientError::Misbehaving {
                node,
                problem: "its sealed result does not open".into(),
            }
        })?;
        api::decode(&plain).map_err(|e| ClientError::Misbehaving {
            node,
            problem: format!("unreadable result: {e}"),
        })
    }

    /// Adds up the three nodes' components, after checking that each
    /// component is reported the same by both nodes holding it (and
    /// blaming the node that lies about two).
    fn combine(shares: Vec<ResultShares>) -> Result<Vec<u64>, ClientError> {
        let len = shares[0].own.len();
        for (node, s) in shares.iter().enumerate() {
            if s.own.len() != len || s.next.len() != len {
                return Err(ClientError::Misbehaving {
                    node,
                    problem: "result of the wrong length".into(),
                });
            }
        }
        // Component c is node c's own and node c-1's next.
        let agree: Vec<bool> = (0..3)
            .map(|c| shares[c].own == shares[(c + 2) % 3].next)
            .collect();
        let bad: Vec<usize> = (0..3).filter(|&c| !agree[c]).collect();
        let holders = |c: usize| [c, (c + 2) % 3];
        match bad[..] {
            [] => {}
            [c] => {
                return Err(ClientError::Disagreement(format!(
                    "nodes {} and {} report different values for component {c}",
                    holders(c)[0],
                    holders(c)[1]
                )));
            }
            [a, b] => {
                // The node holding both broken components is the liar.
                let node = holders(a)
                    .into_iter()
                    .find(|n| holders(b).contains(n))
                    .unwrap_or(a);
                return Err(ClientError::Misbehaving {
                    node,
                    problem: "its result shares disagree with both other nodes".into(),
                });
            }
            _ => {
                return Err(ClientError::Disagreement(
                    "the result shares of the three nodes do not fit together".into(),
                ));
            }
        }
        Ok((0..len)
            .map(|i| {
                shares[0].own[i]
                    .wrapping_add(shares[1].own[i])
                    .wrapping_add(shares[2].own[i])
            })
            .collect())
    }

    /// Runs a query plan on the nodes, as it is: this does not check the
    /// plan first (the [`SecretFrame`](crate::frame::SecretFrame) API does,
    /// and [`Client::check`] can). The three nodes must agree on the gate
    /// outcomes or on the stored handle; result words are reconstructed
    /// here with every component checked against both nodes holding it.
    ///
    /// Refusals of kind `ThresholdNotMet`, `NotUnique` and `BadPlan` come
    /// back as [`ClientError::ThresholdNotMet`], [`ClientError::NotUnique`]
    /// and [`ClientError::BadPlan`]; other refusals as
    /// [`ClientError::Refused`]. A gate that failed inside a group-by is
    /// not an error: its entry of `passed` is false.
    ///
    /// While a script is recorded ([`Client::record`]) the query runs in
    /// design mode and is recorded; while an approved script runs
    /// ([`Client::load`]) it is sent as the script's next step.
    pub fn query(&self, query: &Query) -> Result<QueryReply, ClientError> {
        crate::script::query(self, query)
    }

    /// Sends one query as it is, in `mode`, as step `approval` of the
    /// approved script `approved` (canonical bytes) if given.
    pub(crate) fn send_query(
        &self,
        query: &Query,
        mode: Mode,
        approval: Option<ApprovalStep>,
        approved: Option<Vec<u8>>,
    ) -> Result<QueryReply, ClientError> {
        self.send_step(query, mode, approval, approved, None)
    }

    /// [`Client::send_query`], as a step of a job's action if `job` is
    /// given.
    pub(crate) fn send_step(
        &self,
        query: &Query,
        mode: Mode,
        approval: Option<ApprovalStep>,
        approved: Option<Vec<u8>>,
        job: Option<JobStep>,
    ) -> Result<QueryReply, ClientError> {
        let body = Body::Query {
            plan: query.clone(),
        };
        let (request, secret) = self.sign_as(&body, mode, approval)?;
        let replies = self.call_all_with(
            &request,
            &body,
            [None, None, None],
            Default::default(),
            approved,
            job,
        )?;
        Client::query_reply(&request, &secret, replies)
    }

    /// Ends the requester's run of an approved script on the nodes.
    pub(crate) fn send_close(&self, script: triad_auth::Digest) -> Result<(), ClientError> {
        let body = Body::CloseScript { script };
        let (request, _) = self.sign_as(&body, Mode::Authorized, None)?;
        let replies = self.call_all(&request, &body, [None, None, None], Default::default())?;
        Client::refusals(&replies)?;
        for (node, reply) in replies.iter().enumerate() {
            if !matches!(reply, Reply::Closed) {
                return Err(ClientError::Misbehaving {
                    node,
                    problem: "answered closing a script with something else".into(),
                });
            }
        }
        Ok(())
    }

    /// Decodes the three replies to a query.
    fn query_reply(
        request: &SignedRequest,
        secret: &ResultSecret,
        replies: [Reply; 3],
    ) -> Result<QueryReply, ClientError> {
        for (node, reply) in replies.iter().enumerate() {
            if let Reply::Refused(error) = reply {
                let message = error.message.clone();
                return Err(match error.kind {
                    ErrorKind::ThresholdNotMet => ClientError::ThresholdNotMet { message },
                    ErrorKind::NotUnique => ClientError::NotUnique { message },
                    ErrorKind::BadPlan => ClientError::BadPlan {
                        message,
                        plan: None,
                    },
                    ErrorKind::NoMatchingAuthorization => {
                        ClientError::NoMatchingAuthorization { node, message }
                    }
                    _ => ClientError::Refused {
                        node,
                        error: error.clone(),
                    },
                });
            }
        }
        match &replies[0] {
            Reply::Stored { .. } => {
                let stored: Vec<Option<(Handle, u64)>> = replies
                    .iter()
                    .map(|r| match r {
                        Reply::Stored { handle, rows, .. } => Some((*handle, *rows)),
                        _ => None,
                    })
                    .collect();
                let (handle, rows) = majority(&stored, "stored table")?;
                Ok(QueryReply::Stored {
                    handle,
                    rows,
                    stats: busiest(&replies),
                })
            }
            Reply::Answer { .. } => {
                let gates: Vec<Option<Vec<bool>>> = replies
                    .iter()
                    .map(|r| match r {
                        Reply::Answer { passed, .. } => Some(passed.clone()),
                        _ => None,
                    })
                    .collect();
                let passed = majority(&gates, "gate outcomes")?;
                let rules: Vec<Option<Option<String>>> = replies
                    .iter()
                    .map(|r| match r {
                        Reply::Answer { rule, .. } => Some(rule.clone()),
                        _ => None,
                    })
                    .collect();
                let rule = majority(&rules, "release rule")?;
                let stats = busiest(&replies);
                let any = passed.iter().any(|p| *p);
                let mut shares = Vec::new();
                for (node, reply) in replies.into_iter().enumerate() {
                    let Reply::Answer {
                        ephemeral_public,
                        ciphertext,
                        ..
                    } = reply
                    else {
                        return Err(ClientError::Misbehaving {
                            node,
                            problem: "answered a query with something other than an answer".into(),
                        });
                    };
                    if ciphertext.is_empty() && !any {
                        // Nothing passed: no words to reveal.
                        shares.push(ResultShares {
                            own: Vec::new(),
                            next: Vec::new(),
                        });
                        continue;
                    }
                    shares.push(Client::open_shares(
                        request,
                        secret,
                        node,
                        ephemeral_public,
                        ciphertext,
                    )?);
                }
                let words = Client::combine(shares)?;
                Ok(QueryReply::Answer {
                    passed,
                    words,
                    rule,
                    stats,
                })
            }
            _ => Err(ClientError::Misbehaving {
                node: 0,
                problem: "answered a query with something other than an answer or a table".into(),
            }),
        }
    }

    /// The sum of a column, revealed to this client only. Sums wrap modulo
    /// 2^64 and are read as signed.
    pub fn sum(&self, handle: &Handle, column: &str) -> Result<i64, ClientError> {
        let body = Body::Sum {
            handle: *handle,
            column: column.to_owned(),
        };
        let (request, secret) = self.sign(&body)?;
        let replies = self.call_all(&request, &body, [None, None, None], Default::default())?;
        let values = Client::reconstruct(&request, &secret, replies)?;
        values
            .first()
            .map(|v| *v as i64)
            .ok_or_else(|| ClientError::Disagreement("empty result".into()))
    }

    /// The number of rows, or of non-null values of `column`.
    pub fn count(&self, handle: &Handle, column: Option<&str>) -> Result<u64, ClientError> {
        let body = Body::Count {
            handle: *handle,
            column: column.map(str::to_owned),
        };
        let (request, secret) = self.sign(&body)?;
        let replies = self.call_all(&request, &body, [None, None, None], Default::default())?;
        if replies.iter().any(|r| matches!(r, Reply::Sealed { .. })) {
            let values = Client::reconstruct(&request, &secret, replies)?;
            return values
                .first()
                .copied()
                .ok_or_else(|| ClientError::Disagreement("empty result".into()));
        }
        Client::refusals(&replies)?;
        let counts: Vec<Option<u64>> = replies
            .iter()
            .map(|r| match r {
                Reply::Count(n) => Some(*n),
                _ => None,
            })
            .collect();
        match counts[..] {
            [Some(a), Some(b), Some(c)] if a == b && b == c => Ok(a),
            _ => Err(ClientError::Disagreement(
                "the nodes report different row counts".into(),
            )),
        }
    }

    /// Deletes a table on all three nodes.
    pub fn delete(&self, handle: &Handle) -> Result<(), ClientError> {
        let body = Body::Delete { handle: *handle };
        let (request, _) = self.sign(&body)?;
        let replies = self.call_all(&request, &body, [None, None, None], Default::default())?;
        Client::refusals(&replies)?;
        for (node, reply) in replies.iter().enumerate() {
            if !matches!(reply, Reply::Deleted) {
                return Err(ClientError::Misbehaving {
                    node,
                    problem: "answered a deletion with something else".into(),
                });
            }
        }
        Ok(())
    }

    /// Closes the links.
    pub fn close(self) {
        let Client { runtime, links, .. } = self;
        runtime.block_on(async {
            for link in links {
                link.close().await;
            }
        });
    }
}

/// What the nodes answered to a query (see [`Client::query`]).
#[derive(Debug, Clone, PartialEq)]
pub enum QueryReply {
    /// An aggregate or group-by: the public gate outcomes (one per
    /// candidate group) and the reconstructed result words of the groups
    /// that passed, laid out as `triad_exec::Answer` documents (decode them
    /// with [`crate::answer`]).
    Answer {
        /// Gate outcome per candidate group.
        passed: Vec<bool>,
        /// Result words (encoded integers, two's complement).
        words: Vec<u64>,
        /// For a released answer (a job's action): the release policy
        /// applied; `words` then end with a redaction bit per passing
        /// group (split them with `triad_exec::release::released_layout`).
        rule: Option<String>,
        /// The busiest node's cost of running it.
        stats: QueryStats,
    },
    /// A new secret table, stored on all three nodes.
    Stored {
        /// Its handle.
        handle: Handle,
        /// Rows stored (masked-out rows included: how many are selected is
        /// secret).
        rows: u64,
        /// The busiest node's cost of running it.
        stats: QueryStats,
    },
}

/// The largest cost any node reported for a query.
fn busiest(replies: &[Reply]) -> QueryStats {
    replies
        .iter()
        .filter_map(|r| match r {
            Reply::Answer { stats, .. } | Reply::Stored { stats, .. } => Some(*stats),
            _ => None,
        })
        .fold(QueryStats::default(), QueryStats::max)
}

/// The value all three nodes report; with one odd node out, that node is
/// blamed; with no two agreeing, the nodes disagree.
fn majority<T: PartialEq + Clone>(values: &[Option<T>], what: &str) -> Result<T, ClientError> {
    for (node, v) in values.iter().enumerate() {
        if v.is_none() {
            return Err(ClientError::Misbehaving {
                node,
                problem: format!("answered with something other than the {what} the others sent"),
            });
        }
    }
    if values[0] == values[1] && values[1] == values[2] {
        return values[0]
            .clone()
            .ok_or_else(|| ClientError::Disagreement(format!("no {what}")));
    }
    for odd in 0..3 {
        let (a, b) = ((odd + 1) % 3, (odd + 2) % 3);
        if values[a] == values[b] {
            return Err(ClientError::Misbehaving {
                node: odd,
                problem: format!("its {what} differ from the other two nodes'"),
            });
        }
    }
    Err(ClientError::Disagreement(format!(
        "the three nodes report different {what}"
    )))
}

impl crate::schema::Schema {
    /// The schema as the nodes store it.
    pub fn to_store_schema(&self) -> Vec<ColumnSchema> {
        self.columns
            .iter()
            .map(|c| ColumnSchema {
                name: c.name.clone(),
                type_tag: c.type_tag(),
                min: c.min,
                max: c.max,
                nullable: c.nullable,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_auth::UserKey;

    fn sealed_replies(
        request: &SignedRequest,
        components: [u64; 3],
        lie: Option<(usize, bool, bool)>,
    ) -> [Reply; 3] {
        let replies: Vec<Reply> = (0..3)
            .map(|node| {
                let mut shares = ResultShares {
                    own: vec![components[node]],
                    next: vec![components[(node + 1) % 3]],
                };
                if let Some((liar, own, next)) = lie
                    && liar == node
                {
                    if own {
                        shares.own[0] ^= 8;
                    }
                    if next {
                        shares.next[0] ^= 8;
                    }
                }
                let context = ResultContext {
                    request: request.digest(),
                    node: node as u32,
                    output: 0,
                };
                let sealed = triad_auth::seal(
                    &request.request.result_key,
                    &context.to_bytes(),
                    &api::encode(&shares),
                )
                .unwrap();
                Reply::Sealed {
                    ephemeral_public: *sealed.ephemeral_public.as_bytes(),
                    ciphertext: sealed.ciphertext,
                }
            })
            .collect();
        replies.try_into().unwrap()
    }

    fn request() -> (SignedRequest, ResultSecret) {
        let key = UserKey::generate().unwrap();
        let secret = ResultSecret::generate().unwrap();
        let request = Request {
            version: REQUEST_VERSION,
            deployment: DeploymentId::from_bytes([7; 32]),
            mode: Mode::Authorized,
            body: Body::ListTables.digest(),
            approval: None,
            nonce: Nonce::generate().unwrap(),
            issued_at: 1,
            result_key: secret.public(),
            signer: key.public(),
        }
        .sign(&key)
        .unwrap();
        (request, secret)
    }

    #[test]
    fn reconstructs_and_blames_a_lying_node() {
        let (request, secret) = request();
        let components = [5u64, u64::MAX, 10];
        let value = Client::reconstruct(
            &request,
            &secret,
            sealed_replies(&request, components, None),
        );
        assert_eq!(value.unwrap(), vec![14]);
        for liar in 0..3 {
            let replies = sealed_replies(&request, components, Some((liar, true, true)));
            match Client::reconstruct(&request, &secret, replies) {
                Err(ClientError::Misbehaving { node, .. }) => assert_eq!(node, liar),
                other => panic!("liar {liar}: {other:?}"),
            }
            // One wrong component: the pair holding it disagrees, and
            // which of the two lies cannot be told; never a wrong value.
            let replies = sealed_replies(&request, components, Some((liar, false, true)));
            assert!(matches!(
                Client::reconstruct(&request, &secret, replies),
                Err(ClientError::Disagreement(_))
            ));
        }
        // A reply sealed for another request does not open.
        let (other, _) = self::request();
        let replies = sealed_replies(&other, components, None);
        assert!(matches!(
            Client::reconstruct(&request, &secret, replies),
            Err(ClientError::Misbehaving { node: 0, .. })
        ));
    }

    fn answers(request: &SignedRequest, words: &[u64], passed: [Vec<bool>; 3]) -> [Reply; 3] {
        // Components: x0 = words + 1, x1 = 2, x2 = -3 (they add up).
        let comp = |c: usize| -> Vec<u64> {
            words
                .iter()
                .map(|w| match c {
                    0 => w.wrapping_add(1),
                    1 => 2,
                    _ => 3u64.wrapping_neg(),
                })
                .collect()
        };
        let replies: Vec<Reply> = passed
            .into_iter()
            .enumerate()
            .map(|(node, passed)| {
                let shares = ResultShares {
                    own: comp(node),
                    next: comp((node + 1) % 3),
                };
                let context = ResultContext {
                    request: request.digest(),
                    node: node as u32,
                    output: 0,
                };
                let sealed = triad_auth::seal(
                    &request.request.result_key,
                    &context.to_bytes(),
                    &api::encode(&shares),
                )
                .unwrap();
                Reply::Answer {
                    passed,
                    rule: None,
                    ephemeral_public: *sealed.ephemeral_public.as_bytes(),
                    ciphertext: sealed.ciphertext,
                    stats: QueryStats::default(),
                    audit: Vec::new(),
                }
            })
            .collect();
        replies.try_into().unwrap()
    }

    #[test]
    fn query_replies_decode_and_must_agree() {
        let (request, secret) = request();
        let gates = vec![true, false, true];
        let reply = Client::query_reply(
            &request,
            &secret,
            answers(
                &request,
                &[7, u64::MAX],
                [gates.clone(), gates.clone(), gates.clone()],
            ),
        )
        .unwrap();
        assert_eq!(
            reply,
            QueryReply::Answer {
                passed: gates.clone(),
                words: vec![7, u64::MAX],
                rule: None,
                stats: QueryStats::default(),
            }
        );
        // One node reporting other gate outcomes is blamed.
        let odd = vec![true, true, true];
        match Client::query_reply(
            &request,
            &secret,
            answers(&request, &[7], [gates.clone(), odd.clone(), gates.clone()]),
        ) {
            Err(ClientError::Misbehaving { node: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        // Stored handles must agree.
        let handle: Handle = "11".repeat(32).parse().unwrap();
        let other: Handle = "22".repeat(32).parse().unwrap();
        let stored = |h: Handle| Reply::Stored {
            handle: h,
            rows: 9,
            stats: QueryStats::default(),
            audit: Vec::new(),
        };
        assert_eq!(
            Client::query_reply(
                &request,
                &secret,
                [stored(handle), stored(handle), stored(handle)]
            )
            .unwrap(),
            QueryReply::Stored {
                handle,
                rows: 9,
                stats: QueryStats::default(),
            }
        );
        match Client::query_reply(
            &request,
            &secret,
            [stored(handle), stored(handle), stored(other)],
        ) {
            Err(ClientError::Misbehaving { node: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        // Refusals map to typed errors.
        let refused = |kind| {
            let r = || Reply::Refused(api::ApiError::new(kind, "why"));
            Client::query_reply(&request, &secret, [r(), r(), r()]).unwrap_err()
        };
        assert!(matches!(
            refused(ErrorKind::ThresholdNotMet),
            ClientError::ThresholdNotMet { .. }
        ));
        assert!(matches!(
            refused(ErrorKind::NotUnique),
            ClientError::NotUnique { .. }
        ));
        assert!(matches!(
            refused(ErrorKind::BadPlan),
            ClientError::BadPlan { plan: None, .. }
        ));
        assert_eq!(
            refused(ErrorKind::Storage).refusal(),
            Some(ErrorKind::Storage)
        );
    }
}
