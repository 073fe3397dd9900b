//! Job requests: a pipeline's actions run on the nodes' tables, in
//! dependency order, with every state change kept durably on each node.
//!
//! A requester submits a [`JobSubmission`] (the pipeline text, the approved
//! scripts it names, the requested actions) as a signed request; the three
//! nodes agree on it like on any request, validate the pipeline themselves,
//! decide which actions run and which are skipped, and keep a [`JobView`]
//! under the data directory. The requester's client then sends each
//! running action's steps as approved-script steps tagged with a
//! [`JobStep`]; a node accepts a step only for the job's current action
//! and records what it produced. A step the data refused fails its action
//! and every action that needs it; a cancelled job refuses further steps.
//!
//! # Decisions
//!
//! - **The nodes decide what is skipped.** An action is skipped when it
//!   was not requested, `force_run_dependencies` is off, everything it
//!   needs is skipped too, and an earlier job of the workspace succeeded
//!   with the same action digest (its script's digest and its inputs, a
//!   table of another action counted by that action's digest) and its
//!   stored tables still exist. Digests,
//!   not last statuses: a changed script or input re-runs.
//! - **Only ciphertext and status.** A job record holds states, times,
//!   handles of stored tables and digests of what was sent sealed to the
//!   requester; never a revealed value.
//! - **A job is driven by its requester's client.** Steps are ordinary
//!   approved-script steps, checked like any other; the job only adds an
//!   order and a record. A client that goes away leaves its job running
//!   until it is cancelled.
//!
//! This module owns the job records and the planning. It must not run
//! queries (the engine does) or open anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use triad_auth::{ApprovedScript, parse_output_reference, parse_step_reference};
use triad_pipeline::{InputSource, Pipeline, ScriptBindings, ScriptInfo};

use crate::store::Handle;

/// What a requester signs to start a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSubmission {
    /// The workspace: jobs of one workspace share skipped outputs.
    pub workspace: String,
    /// The pipeline file's text, as the requester has it.
    pub pipeline: String,
    /// Each script path the pipeline names, with the approved script's
    /// canonical bytes (`triad_auth::ApprovedScript::encode`).
    pub scripts: Vec<(String, Vec<u8>)>,
    /// The actions asked for; their needs run (or are skipped) first.
    pub actions: Vec<String>,
    /// Re-run every needed action even when unchanged.
    pub force_run_dependencies: bool,
}

/// Where a job step belongs: sent beside an approved-script step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStep {
    /// The job's id.
    pub job: String,
    /// The action the step is part of.
    pub action: String,
}

/// A job's or an action's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Not started yet.
    Pending,
    /// Steps are being run.
    Running,
    /// Done; every output exists.
    Succeeded,
    /// Not run: an earlier job left the same outputs from the same script
    /// and inputs.
    Skipped,
    /// Ended without its outputs; the reason says why.
    Failed,
}

impl JobStatus {
    /// Whether nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Skipped | JobStatus::Failed
        )
    }

    /// As the pages and the CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Skipped => "skipped",
            JobStatus::Failed => "failed",
        }
    }
}

/// Why an action or a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// An action it needs failed.
    DependencyFailed,
    /// A threshold gate (or the release policy's minimum) refused a step.
    ThresholdNotMet,
    /// Merge keys were not unique where the step required it.
    NotUnique,
    /// The nodes found no approval covering a step.
    NoMatchingAuthorization,
    /// A node could not be reached or went away during a step.
    NodeUnavailable,
    /// The requester cancelled it.
    Cancelled,
    /// Any other refusal (the action's message says which).
    Error,
}

impl FailReason {
    /// As the pages and the CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::DependencyFailed => "dependency_failed",
            FailReason::ThresholdNotMet => "threshold_not_met",
            FailReason::NotUnique => "not_unique",
            FailReason::NoMatchingAuthorization => "no_matching_authorization",
            FailReason::NodeUnavailable => "node_unavailable",
            FailReason::Cancelled => "cancelled",
            FailReason::Error => "error",
        }
    }
}

/// Privacy level of an output, as the pipeline labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A secret table on the nodes: never viewable, only computed on.
    HighlySensitive,
    /// Revealed aggregates, sealed to the requester after the release
    /// policy.
    ModeratelySensitive,
}

impl Level {
    /// As the pipeline file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::HighlySensitive => "highly_sensitive",
            Level::ModeratelySensitive => "moderately_sensitive",
        }
    }
}

/// One output of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputView {
    /// Its name in the pipeline.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// For a table: its handle once stored (or reused when skipped).
    pub handle: Option<Handle>,
    /// For aggregates: BLAKE3 of the ciphertexts this node sealed to the
    /// requester, one per revealing step, once sent.
    pub sealed: Vec<String>,
    /// For aggregates: the release policy they went through.
    #[serde(default)]
    pub rule: Option<String>,
}

/// One action of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionView {
    /// Its name.
    pub name: String,
    /// Actions it needs.
    pub needs: Vec<String>,
    /// The approved script's digest (hex).
    pub script: String,
    /// Its digest over script and inputs: equal digests, equal outputs.
    pub digest: String,
    /// Its state.
    pub status: JobStatus,
    /// Why it failed.
    pub reason: Option<FailReason>,
    /// A sentence for people, without values.
    pub message: Option<String>,
    /// Steps of its script.
    pub steps: u32,
    /// Steps run so far.
    pub steps_done: u32,
    /// Unix seconds.
    pub started_at: Option<u64>,
    /// Unix seconds.
    pub finished_at: Option<u64>,
    /// What it leaves.
    pub outputs: Vec<OutputView>,
    /// The tables its steps stored, by step.
    pub stored: BTreeMap<u32, Handle>,
    /// Its inputs by name: a handle, or `action.output`.
    pub inputs: BTreeMap<String, String>,
}

/// A job request, as each node keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// 16 lowercase hex characters from the signed request's digest.
    pub id: String,
    /// The workspace.
    pub workspace: String,
    /// The requester's public key (hex).
    pub requester: String,
    /// The requester's name in the roles document.
    pub requester_name: String,
    /// The pipeline's text, as submitted.
    pub pipeline: String,
    /// The pipeline's digest (hex).
    pub pipeline_digest: String,
    /// The actions asked for.
    pub requested: Vec<String>,
    /// Whether unchanged dependencies were re-run.
    pub force_run_dependencies: bool,
    /// The job's state: running until every action is final.
    pub status: JobStatus,
    /// Why it failed.
    pub reason: Option<FailReason>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds: its first step.
    pub started_at: Option<u64>,
    /// Unix seconds: its last action's end.
    pub finished_at: Option<u64>,
    /// The actions it covers, dependencies first.
    pub actions: Vec<ActionView>,
}

impl JobView {
    /// Seconds from start to finish (or to `now` while running).
    pub fn runtime(&self, now: u64) -> Option<u64> {
        let start = self.started_at?;
        Some(self.finished_at.unwrap_or(now).saturating_sub(start))
    }

    /// The action whose steps come next.
    pub fn current(&self) -> Option<&ActionView> {
        self.actions.iter().find(|a| !a.status.is_final())
    }

    fn action_mut(&mut self, name: &str) -> Option<&mut ActionView> {
        self.actions.iter_mut().find(|a| a.name == name)
    }

    /// Fails `name` and, transitively, everything that needs it.
    fn fail(&mut self, name: &str, reason: FailReason, message: String, now: u64) {
        let mut failed = BTreeSet::from([name.to_owned()]);
        for action in &mut self.actions {
            let hit =
                action.name == name || action.needs.iter().any(|n| failed.contains(n.as_str()));
            if !hit || action.status.is_final() {
                continue;
            }
            failed.insert(action.name.clone());
            action.status = JobStatus::Failed;
            action.finished_at = Some(now);
            if action.name == name {
                action.reason = Some(reason);
                action.message = Some(message.clone());
            } else {
                action.reason = Some(FailReason::DependencyFailed);
                action.message = Some(format!("{name} failed"));
            }
        }
        self.settle(now);
    }

    /// Sets the job's state from its actions'.
    fn settle(&mut self, now: u64) {
        if self.actions.iter().all(|a| a.status.is_final()) && !self.status.is_final() {
            let failed = self.actions.iter().find(|a| a.status == JobStatus::Failed);
            self.status = if failed.is_some() {
                JobStatus::Failed
            } else {
                JobStatus::Succeeded
            };
            self.reason = failed.and_then(|a| a.reason);
            self.finished_at = Some(now);
        }
    }
}

/// Why a job operation was refused; the message names the job and action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// No such job on this node.
    #[error("no job {0}")]
    Unknown(String),
    /// The pipeline or the submission is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The step does not fit the job's state.
    #[error("{0}")]
    OutOfOrder(String),
    /// The job directory could not be read or written.
    #[error("job storage: {0}")]
    Storage(String),
}

/// The job records under a node's data directory: one JSON file per job,
/// replaced atomically, and an index of the outputs of succeeded actions
/// by action digest, per workspace.
#[derive(Debug)]
pub struct JobStore {
    dir: PathBuf,
}

/// Outputs of one succeeded action, for skipping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Done {
    stored: BTreeMap<u32, Handle>,
    outputs: Vec<OutputView>,
}

impl JobStore {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> Result<JobStore, JobError> {
        fs::create_dir_all(dir)
            .map_err(|e| JobError::Storage(format!("{}: {e}", dir.display())))?;
        Ok(JobStore {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn index_path(&self, workspace: &str) -> PathBuf {
        self.dir.join(format!(
            "done-{}.json",
            blake3::hash(workspace.as_bytes()).to_hex()
        ))
    }

    /// The job `id`.
    pub fn get(&self, id: &str) -> Result<JobView, JobError> {
        if id.len() != 16
            || !id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(JobError::Unknown(id.to_owned()));
        }
        let path = self.path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JobError::Unknown(id.to_owned()));
            }
            Err(e) => return Err(JobError::Storage(format!("{}: {e}", path.display()))),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| JobError::Storage(format!("{}: {e}", path.display())))
    }

    /// Every job, newest first.
    pub fn list(&self) -> Result<Vec<JobView>, JobError> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| JobError::Storage(format!("{}: {e}", self.dir.display())))?;
        let mut jobs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| JobError::Storage(e.to_string()))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if id.starts_with("done-") {
                continue;
            }
            jobs.push(self.get(id)?);
        }
        jobs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(jobs)
    }

    /// Every record file, by name: what a peer being rebuilt from this
    /// node and the third gets, since the records are public and the same
    /// on all three nodes.
    pub fn export(&self) -> Result<Vec<(String, Vec<u8>)>, JobError> {
        let storage = |e: std::io::Error| JobError::Storage(format!("{}: {e}", self.dir.display()));
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(storage)? {
            let entry = entry.map_err(storage)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_record_name(&name) {
                continue;
            }
            let path = entry.path();
            let bytes = fs::read(&path)
                .map_err(|e| JobError::Storage(format!("{}: {e}", path.display())))?;
            files.push((name, bytes));
        }
        files.sort();
        Ok(files)
    }

    /// Writes a record file the other two nodes both sent while rebuilding
    /// this one. Refuses a name that is not a record's and bytes that do
    /// not decode as one, so a peer cannot write elsewhere or plant
    /// something the node would later fail to read.
    pub fn import(&self, name: &str, bytes: &[u8]) -> Result<(), JobError> {
        if !is_record_name(name) {
            return Err(JobError::Invalid(format!(
                "{name:?} is not the name of a job record"
            )));
        }
        let decoded = if name.starts_with("done-") {
            serde_json::from_slice::<BTreeMap<String, Done>>(bytes).map(|_| ())
        } else {
            serde_json::from_slice::<JobView>(bytes).map(|_| ())
        };
        decoded.map_err(|e| JobError::Invalid(format!("job record {name}: {e}")))?;
        write_atomic(&self.dir.join(name), bytes)
    }

    fn put(&self, job: &JobView) -> Result<(), JobError> {
        let bytes = serde_json::to_vec_pretty(job).map_err(|e| JobError::Storage(e.to_string()))?;
        write_atomic(&self.path(&job.id), &bytes)
    }

    fn done(&self, workspace: &str) -> Result<BTreeMap<String, Done>, JobError> {
        let path = self.index_path(workspace);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| JobError::Storage(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(JobError::Storage(format!("{}: {e}", path.display()))),
        }
    }

    fn record_done(&self, workspace: &str, digest: &str, done: Done) -> Result<(), JobError> {
        let mut index = self.done(workspace)?;
        index.insert(digest.to_owned(), done);
        let bytes =
            serde_json::to_vec_pretty(&index).map_err(|e| JobError::Storage(e.to_string()))?;
        write_atomic(&self.index_path(workspace), &bytes)
    }
}

/// Whether `name` is one this store writes: a job (`<16 hex>.json`) or a
/// workspace's index (`done-<64 hex>.json`).
fn is_record_name(name: &str) -> bool {
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    match name.strip_suffix(".json") {
        Some(stem) => match stem.strip_prefix("done-") {
            Some(digest) => hex(digest, 64),
            None => hex(stem, 16),
        },
        None => false,
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), JobError> {
    use std::io::Write;
    let storage = |e: std::io::Error| JobError::Storage(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(storage)?;
    file.write_all(bytes).map_err(storage)?;
    file.sync_all().map_err(storage)?;
    fs::rename(&tmp, path).map_err(storage)?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// What [`triad_pipeline`] needs to know of an approved script: what it
/// reads, which steps store and whether any reveals.
pub fn script_info(approved: &ApprovedScript) -> Result<ScriptInfo, String> {
    let mut bindings = ScriptBindings::default();
    let mut reads = BTreeSet::new();
    let mut outputs = BTreeSet::new();
    let mut reveals = false;
    for (i, step) in approved.script.steps.iter().enumerate() {
        let plan = triad_plan::Query::decode(&step.plan).map_err(|e| format!("step {i}: {e}"))?;
        match plan.output {
            triad_plan::Output::Store { .. } => bindings.stored_steps.push(i as u32),
            _ => reveals = true,
        }
        for input in plan.inputs() {
            if let Some((script, step)) = parse_output_reference(input) {
                outputs.insert((script.to_string(), step));
            } else if parse_step_reference(input).is_none() {
                reads.insert(input.to_owned());
            }
        }
    }
    bindings.reads = reads.into_iter().collect();
    bindings.reads_outputs = outputs.into_iter().collect();
    Ok(ScriptInfo {
        digest: approved.script.digest().to_string(),
        stores: !bindings.stored_steps.is_empty(),
        reveals,
        bindings: Some(bindings),
    })
}

/// The name pipeline errors are reported against.
pub const PIPELINE_FILE: &str = "triad.yaml";

/// A submission decoded: its pipeline and the scripts by path.
#[derive(Debug)]
pub struct Decoded {
    /// The validated pipeline.
    pub pipeline: Pipeline,
    /// The approved scripts, by the path the pipeline names them with.
    pub scripts: BTreeMap<String, ApprovedScript>,
}

/// Decodes and validates a submission: every script decodes, the pipeline
/// validates against them with every error reported, and the requested
/// actions exist.
pub fn decode(submission: &JobSubmission) -> Result<Decoded, JobError> {
    if submission.workspace.is_empty()
        || submission.workspace.len() > 64
        || !submission
            .workspace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(JobError::Invalid(format!(
            "workspace {:?}: 1 to 64 of A-Z a-z 0-9 - _",
            submission.workspace
        )));
    }
    if submission.actions.is_empty() {
        return Err(JobError::Invalid("no action requested".into()));
    }
    let mut scripts = BTreeMap::new();
    for (path, bytes) in &submission.scripts {
        let approved = ApprovedScript::decode(bytes)
            .map_err(|e| JobError::Invalid(format!("script {path:?}: {e}")))?;
        if scripts.insert(path.clone(), approved).is_some() {
            return Err(JobError::Invalid(format!("script {path:?} given twice")));
        }
    }
    let check = |path: &Path| {
        let key = path.to_string_lossy();
        match scripts.get(key.as_ref()) {
            Some(approved) => script_info(approved),
            None => Err("not in the job request".to_owned()),
        }
    };
    let pipeline = triad_pipeline::load_str(&submission.pipeline, PIPELINE_FILE, &check).map_err(
        |errors| {
            JobError::Invalid(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        },
    )?;
    let requested: Vec<&str> = submission.actions.iter().map(String::as_str).collect();
    pipeline
        .order(&requested)
        .map_err(|e| JobError::Invalid(e.to_string()))?;
    Ok(Decoded { pipeline, scripts })
}

/// Digest of an action's script and inputs: an input that is another
/// action's table counts by that action's digest, which is what its
/// outputs follow from.
fn action_digest(
    script: &str,
    inputs: &BTreeMap<String, String>,
    upstream: &BTreeMap<String, String>,
) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("triad job action v1");
    hasher.update(script.as_bytes());
    for (name, source) in inputs {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        let resolved = match source.split_once('.') {
            Some((action, output)) => format!(
                "{}.{output}",
                upstream.get(action).map(String::as_str).unwrap_or(action)
            ),
            None => source.clone(),
        };
        hasher.update(&(resolved.len() as u64).to_le_bytes());
        hasher.update(resolved.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

fn level(level: triad_pipeline::Level) -> Level {
    match level {
        triad_pipeline::Level::HighlySensitive => Level::HighlySensitive,
        triad_pipeline::Level::ModeratelySensitive => Level::ModeratelySensitive,
    }
}

/// Who submitted a job, and when.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The job's id.
    pub id: String,
    /// Public key (hex).
    pub key: String,
    /// Name in the roles document.
    pub name: String,
    /// Unix seconds.
    pub now: u64,
}

impl JobStore {
    /// Plans a new job: which actions run and which are skipped, and
    /// records it as pending. `exists` says whether a table is still
    /// stored (a skipped action's outputs must be).
    pub fn submit(
        &self,
        submission: &JobSubmission,
        requester: &Requester,
        exists: &dyn Fn(&Handle) -> bool,
    ) -> Result<JobView, JobError> {
        if self.path(&requester.id).exists() {
            return Err(JobError::Invalid(format!(
                "job {} exists already",
                requester.id
            )));
        }
        let decoded = decode(submission)?;
        let requested: Vec<&str> = submission.actions.iter().map(String::as_str).collect();
        let order = decoded
            .pipeline
            .order(&requested)
            .map_err(|e| JobError::Invalid(e.to_string()))?;
        let done = self.done(&submission.workspace)?;
        let mut digests = BTreeMap::new();
        let mut actions: Vec<ActionView> = Vec::new();
        for action in order {
            let approved = &decoded.scripts[&action.script.value];
            let script = approved.script.digest().to_string();
            let inputs: BTreeMap<String, String> = action
                .inputs
                .iter()
                .map(|input| {
                    let source = match &input.source {
                        InputSource::Handle(handle) => handle.clone(),
                        InputSource::Output { action, output } => format!("{action}.{output}"),
                    };
                    (input.name.clone(), source)
                })
                .collect();
            let digest = action_digest(&script, &inputs, &digests);
            digests.insert(action.name.clone(), digest.clone());
            let needs: Vec<String> = action.needs.iter().map(|n| n.value.clone()).collect();
            let mut view = ActionView {
                name: action.name.clone(),
                needs: needs.clone(),
                script,
                digest: digest.clone(),
                status: JobStatus::Pending,
                reason: None,
                message: None,
                steps: approved.script.steps.len() as u32,
                steps_done: 0,
                started_at: None,
                finished_at: None,
                outputs: action
                    .outputs
                    .iter()
                    .map(|o| OutputView {
                        name: o.name.clone(),
                        level: level(o.level),
                        handle: None,
                        sealed: Vec::new(),
                        rule: None,
                    })
                    .collect(),
                stored: BTreeMap::new(),
                inputs,
            };
            let needs_skipped = needs.iter().all(|n| {
                actions
                    .iter()
                    .any(|a| a.name == *n && a.status == JobStatus::Skipped)
            });
            let reusable = done.get(&digest).filter(|d| d.stored.values().all(exists));
            if !requested.contains(&action.name.as_str())
                && !submission.force_run_dependencies
                && needs_skipped
                && let Some(reused) = reusable
            {
                view.status = JobStatus::Skipped;
                view.message = Some(
                    "unchanged since an earlier job: script and inputs have the same digest".into(),
                );
                view.steps_done = view.steps;
                view.stored = reused.stored.clone();
                view.outputs = reused.outputs.clone();
            }
            actions.push(view);
        }
        let mut job = JobView {
            id: requester.id.clone(),
            workspace: submission.workspace.clone(),
            requester: requester.key.clone(),
            requester_name: requester.name.clone(),
            pipeline: submission.pipeline.clone(),
            pipeline_digest: decoded.pipeline.digest().to_string(),
            requested: submission.actions.clone(),
            force_run_dependencies: submission.force_run_dependencies,
            status: JobStatus::Pending,
            reason: None,
            created_at: requester.now,
            started_at: None,
            finished_at: None,
            actions,
        };
        job.settle(requester.now);
        self.put(&job)?;
        Ok(job)
    }

    /// Checks that a step of `approved` (script digest) reading `inputs`
    /// may run now as part of `step`'s job, for `signer` (hex).
    pub fn check_step(
        &self,
        step: &JobStep,
        signer: &str,
        script: &str,
        inputs: &[&str],
    ) -> Result<(), JobError> {
        let job = self.get(&step.job)?;
        let out_of_order = |why: String| JobError::OutOfOrder(format!("job {}: {why}", job.id));
        if job.requester != signer {
            return Err(out_of_order("only its requester runs its steps".into()));
        }
        if job.status.is_final() {
            return Err(out_of_order(format!(
                "it has {}{}",
                job.status.as_str(),
                job.reason
                    .map(|r| format!(" ({})", r.as_str()))
                    .unwrap_or_default()
            )));
        }
        let Some(current) = job.current() else {
            return Err(out_of_order("no action is left to run".into()));
        };
        if current.name != step.action {
            return Err(out_of_order(format!(
                "the next action is {:?}, not {:?}",
                current.name, step.action
            )));
        }
        if current.script != script {
            return Err(out_of_order(format!(
                "action {:?} runs script {}, not {script}",
                current.name, current.script
            )));
        }
        // Each table read is an input of the action, one its earlier steps
        // stored, or one its needs left in this job.
        let mut allowed: BTreeSet<String> = current
            .inputs
            .values()
            .filter(|s| !s.contains('.'))
            .cloned()
            .collect();
        allowed.extend(current.stored.values().map(|h| h.to_string()));
        for need in &current.needs {
            if let Some(a) = job.actions.iter().find(|a| a.name == *need) {
                allowed.extend(a.stored.values().map(|h| h.to_string()));
            }
        }
        if let Some(table) = inputs.iter().find(|t| !allowed.contains(**t)) {
            return Err(out_of_order(format!(
                "action {:?} reads table {table}, which is neither its input nor an output of what it needs in this job",
                current.name
            )));
        }
        Ok(())
    }

    /// Records the end of one step of the job's current action, sent by
    /// `signer` (hex). A step from anyone but the requester, or for
    /// another action than the current one, changes nothing: it was
    /// refused, and must not fail someone else's job.
    pub fn record_step(
        &self,
        step: &JobStep,
        signer: &str,
        end: StepOutcome,
        now: u64,
    ) -> Result<JobView, JobError> {
        let mut job = self.get(&step.job)?;
        if job.requester != signer
            || job.status.is_final()
            || job.current().is_none_or(|a| a.name != step.action)
        {
            return Ok(job);
        }
        let workspace = job.workspace.clone();
        if job.started_at.is_none() {
            job.started_at = Some(now);
        }
        job.status = match job.status {
            JobStatus::Pending => JobStatus::Running,
            other => other,
        };
        let Some(action) = job.action_mut(&step.action) else {
            return Err(JobError::OutOfOrder(format!(
                "job {}: no action {:?}",
                step.job, step.action
            )));
        };
        if action.status.is_final() {
            return Ok(job);
        }
        if action.started_at.is_none() {
            action.started_at = Some(now);
        }
        action.status = JobStatus::Running;
        let mut finished = None;
        match end {
            StepOutcome::Stored {
                step: index,
                handle,
                last,
            } => {
                action.stored.insert(index, handle);
                action.steps_done = index + 1;
                if last {
                    finished = Some(());
                }
            }
            StepOutcome::Answered {
                step: index,
                sealed,
                rule,
                last,
            } => {
                if let Some(output) = action
                    .outputs
                    .iter_mut()
                    .find(|o| o.level == Level::ModeratelySensitive)
                {
                    output.sealed.push(sealed);
                    if rule.is_some() {
                        output.rule = rule;
                    }
                }
                action.steps_done = index + 1;
                if last {
                    finished = Some(());
                }
            }
            StepOutcome::Allowed { step: index, last } => {
                action.steps_done = index + 1;
                if last {
                    finished = Some(());
                }
            }
            StepOutcome::Failed { reason, message } => {
                let name = action.name.clone();
                job.fail(&name, reason, message, now);
                self.put(&job)?;
                return Ok(job);
            }
        }
        if finished.is_some() {
            action.status = JobStatus::Succeeded;
            action.finished_at = Some(now);
            // Table outputs name the storing steps in order.
            let stored: Vec<Handle> = action.stored.values().copied().collect();
            let mut tables = stored.into_iter();
            for output in &mut action.outputs {
                if output.level == Level::HighlySensitive {
                    output.handle = tables.next();
                }
            }
            let done = Done {
                stored: action.stored.clone(),
                outputs: action.outputs.clone(),
            };
            let digest = action.digest.clone();
            self.record_done(&workspace, &digest, done)?;
        }
        job.settle(now);
        self.put(&job)?;
        Ok(job)
    }

    /// Cancels a job that has not ended: what runs or waits fails as
    /// cancelled, and further steps are refused.
    pub fn cancel(&self, id: &str, signer: &str, now: u64) -> Result<JobView, JobError> {
        let mut job = self.get(id)?;
        if job.requester != signer {
            return Err(JobError::OutOfOrder(format!(
                "job {id}: only its requester cancels it"
            )));
        }
        if job.status.is_final() {
            return Err(JobError::OutOfOrder(format!(
                "job {id} has {} already",
                job.status.as_str()
            )));
        }
        for action in &mut job.actions {
            if !action.status.is_final() {
                action.status = JobStatus::Failed;
                action.reason = Some(FailReason::Cancelled);
                action.message = Some("the requester cancelled the job".into());
                action.finished_at = Some(now);
            }
        }
        job.status = JobStatus::Failed;
        job.reason = Some(FailReason::Cancelled);
        job.finished_at = Some(now);
        self.put(&job)?;
        Ok(job)
    }
}

/// How one step of a job's action ended.
#[derive(Debug, Clone)]
pub enum StepOutcome {
    /// It stored a table.
    Stored {
        /// The step's index in its script.
        step: u32,
        /// The table.
        handle: Handle,
        /// Whether it was the script's last step.
        last: bool,
    },
    /// It revealed aggregates, sealed to the requester.
    Answered {
        /// The step's index.
        step: u32,
        /// BLAKE3 of the ciphertext (hex).
        sealed: String,
        /// The release policy applied.
        rule: Option<String>,
        /// Whether it was the script's last step.
        last: bool,
    },
    /// The data refused it inside `allow_errors`: the script goes on.
    Allowed {
        /// The step's index.
        step: u32,
        /// Whether it was the script's last step.
        last: bool,
    },
    /// It failed the action.
    Failed {
        /// Why.
        reason: FailReason,
        /// For people, without values.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(name: &str, needs: &[&str], level: Level) -> ActionView {
        ActionView {
            name: name.into(),
            needs: needs.iter().map(|n| n.to_string()).collect(),
            script: "aa".repeat(32),
            digest: format!("{name}-digest"),
            status: JobStatus::Pending,
            reason: None,
            message: None,
            steps: 1,
            steps_done: 0,
            started_at: None,
            finished_at: None,
            outputs: vec![OutputView {
                name: "out".into(),
                level,
                handle: None,
                sealed: Vec::new(),
                rule: None,
            }],
            stored: BTreeMap::new(),
            inputs: BTreeMap::new(),
        }
    }

    fn job(requester: &str) -> JobView {
        JobView {
            id: "0123456789abcdef".into(),
            workspace: "w".into(),
            requester: requester.into(),
            requester_name: "analyst".into(),
            pipeline: String::new(),
            pipeline_digest: String::new(),
            requested: vec!["sums".into()],
            force_run_dependencies: false,
            status: JobStatus::Pending,
            reason: None,
            created_at: 10,
            started_at: None,
            finished_at: None,
            actions: vec![
                action("merge", &[], Level::HighlySensitive),
                action("sums", &["merge"], Level::ModeratelySensitive),
                action("more", &["sums"], Level::ModeratelySensitive),
            ],
        }
    }

    fn step(action: &str) -> JobStep {
        JobStep {
            job: "0123456789abcdef".into(),
            action: action.into(),
        }
    }

    fn failed() -> StepOutcome {
        StepOutcome::Failed {
            reason: FailReason::NoMatchingAuthorization,
            message: "refused".into(),
        }
    }

    #[test]
    fn records_move_to_a_rebuilt_node_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let from = JobStore::open(&dir.path().join("a")).unwrap();
        let planned = job("alice");
        from.put(&planned).unwrap();
        from.record_done("ws", &"ab".repeat(32), Done::default())
            .unwrap();
        fs::write(dir.path().join("a/notes.txt"), b"not a record").unwrap();
        let files = from.export().unwrap();
        assert_eq!(files.len(), 2, "{files:?}");

        let to = JobStore::open(&dir.path().join("b")).unwrap();
        for (name, bytes) in &files {
            to.import(name, bytes).unwrap();
        }
        assert_eq!(to.list().unwrap(), vec![planned.clone()]);
        assert_eq!(to.export().unwrap(), files);
        for name in ["../x.json", "notes.txt", "0123.json", "done-ab.json"] {
            assert!(
                matches!(to.import(name, b"{}"), Err(JobError::Invalid(_))),
                "{name}"
            );
        }
        let garbage = to.import(&format!("{}.json", planned.id), b"{\"id\": 1}");
        assert!(matches!(garbage, Err(JobError::Invalid(_))));
        assert_eq!(to.get(&planned.id).unwrap(), planned);
    }

    #[test]
    fn only_the_requesters_steps_of_the_current_action_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        let planned = job("alice");
        store.put(&planned).unwrap();
        // Someone else's refused step, and a step of a later action, fail
        // nothing.
        store
            .record_step(&step("merge"), "mallory", failed(), 11)
            .unwrap();
        store
            .record_step(&step("sums"), "alice", failed(), 11)
            .unwrap();
        assert_eq!(store.get(&planned.id).unwrap(), planned);
        assert!(matches!(
            store.check_step(&step("merge"), "mallory", &"aa".repeat(32), &[]),
            Err(JobError::OutOfOrder(m)) if m.contains("only its requester")
        ));
        assert!(matches!(
            store.check_step(&step("sums"), "alice", &"aa".repeat(32), &[]),
            Err(JobError::OutOfOrder(m)) if m.contains("the next action is \"merge\"")
        ));
        store
            .check_step(&step("merge"), "alice", &"aa".repeat(32), &[])
            .unwrap();

        // The merge stores its table and succeeds; the job runs on.
        let table: Handle = "cd".repeat(32).parse().unwrap();
        let view = store
            .record_step(
                &step("merge"),
                "alice",
                StepOutcome::Stored {
                    step: 0,
                    handle: table,
                    last: true,
                },
                12,
            )
            .unwrap();
        assert_eq!(view.status, JobStatus::Running);
        assert_eq!(view.started_at, Some(12));
        assert_eq!(view.actions[0].status, JobStatus::Succeeded);
        assert_eq!(view.actions[0].outputs[0].handle, Some(table));
        // The sums may read it; another table they may not.
        store
            .check_step(
                &step("sums"),
                "alice",
                &"aa".repeat(32),
                &[&table.to_string()],
            )
            .unwrap();
        assert!(
            store
                .check_step(
                    &step("sums"),
                    "alice",
                    &"aa".repeat(32),
                    &[&"ef".repeat(32)]
                )
                .is_err()
        );
        // The merge's digest is remembered for skipping.
        assert!(store.done("w").unwrap().contains_key("merge-digest"));

        // The sums fail: so does what needs them, and the job.
        let view = store
            .record_step(&step("sums"), "alice", failed(), 13)
            .unwrap();
        assert_eq!(view.status, JobStatus::Failed);
        assert_eq!(view.reason, Some(FailReason::NoMatchingAuthorization));
        assert_eq!(view.finished_at, Some(13));
        assert_eq!(view.actions[2].reason, Some(FailReason::DependencyFailed));
        assert!(store.cancel(&view.id, "alice", 14).is_err());
    }

    #[test]
    fn cancelling_fails_what_is_left_and_only_the_requester_may() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        let planned = job("alice");
        store.put(&planned).unwrap();
        assert!(store.cancel(&planned.id, "mallory", 11).is_err());
        let view = store.cancel(&planned.id, "alice", 11).unwrap();
        assert_eq!(view.reason, Some(FailReason::Cancelled));
        assert!(
            view.actions
                .iter()
                .all(|a| a.reason == Some(FailReason::Cancelled))
        );
        assert!(matches!(
            store.check_step(&step("merge"), "alice", &"aa".repeat(32), &[]),
            Err(JobError::OutOfOrder(m)) if m.contains("failed (cancelled)")
        ));
        // Ids are checked before any path is made from them.
        assert!(matches!(
            store.get("../../etc/passwd"),
            Err(JobError::Unknown(_))
        ));
        assert_eq!(store.list().unwrap(), vec![view]);
    }
}
