//! Which queries may run: namespaces by mode, the owner's own tables, and
//! the steps of approved scripts, with each analyst's progress through a
//! script kept durably so that steps run once, in order.
//!
//! Every node decides on its own, before any protocol runs, and the three
//! decisions are exchanged: one node that accepts anything cannot make the
//! other two run a query they refuse.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use triad_auth::{
    ApprovedScript, Digest, Mode, SignedRequest, UserPublicKey, output_reference,
    parse_output_reference, parse_step_reference, step_reference,
};

use crate::api::{ApiError, ErrorKind};
use crate::config::{Config, Role};
use crate::store::{Handle, Namespace, Store, TableInfo, TablePolicy, fsutil};

/// The namespace requests of `mode` see.
pub(crate) fn namespace(mode: Mode) -> Namespace {
    match mode {
        Mode::Design => Namespace::Design,
        Mode::Authorized => Namespace::Production,
    }
}

fn refuse(kind: ErrorKind, message: impl Into<String>) -> ApiError {
    ApiError::new(kind, message)
}

fn no_match(message: impl Into<String>) -> ApiError {
    refuse(ErrorKind::NoMatchingAuthorization, message)
}

/// A table of the request's namespace; tables of the other namespace do
/// not exist for it.
pub(crate) fn visible_table(
    store: &Store,
    handle: &Handle,
    mode: Mode,
) -> Result<TableInfo, ApiError> {
    let unknown = || {
        refuse(
            ErrorKind::UnknownHandle,
            format!(
                "no table {handle} in the {} namespace",
                namespace_name(namespace(mode))
            ),
        )
    };
    let info = store.table(handle).map_err(|_| unknown())?;
    if info.policy.namespace == namespace(mode) {
        Ok(info)
    } else {
        Err(unknown())
    }
}

pub(crate) fn namespace_name(namespace: Namespace) -> &'static str {
    match namespace {
        Namespace::Production => "production",
        Namespace::Design => "design",
    }
}

/// A script step the nodes agreed may run, and what to record after it.
#[derive(Debug, Clone)]
pub(crate) struct StepGrant {
    pub(crate) run: RunKey,
    pub(crate) step: u32,
    pub(crate) allow_errors: bool,
    pub(crate) steps: u32,
}

/// What a query may run as, and the policy its stored result gets.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// For a script step: which, so that the run advances afterwards.
    pub(crate) step: Option<StepGrant>,
    /// The policy of a stored result: the request's namespace, and the
    /// union of the inputs' approvers.
    pub(crate) result_policy: TablePolicy,
}

/// How a step ended, for the run's record.
#[derive(Debug, Clone)]
pub(crate) enum StepEnd {
    /// It answered or stored (the result's handle).
    Done(Option<Handle>),
    /// A threshold or uniqueness failure: the data said no.
    DataRefused(String),
    /// It did not run to an end (a peer went away, storage failed): the
    /// analyst may send the same step again.
    NotRun,
}

/// Decides whether `plan` may run for `request`.
pub(crate) fn authorize_query(
    config: &Config,
    store: &Store,
    runs: &ScriptRuns,
    request: &SignedRequest,
    approved: Option<&[u8]>,
    plan: &triad_plan::Query,
    now: u64,
) -> Result<Grant, ApiError> {
    let signer = request.request.signer;
    let user = config
        .user(&signer)
        .ok_or_else(|| refuse(ErrorKind::Unauthorized, "unknown key"))?;
    let mode = request.request.mode;
    let me = crate::api::owner_key(&signer);
    let mut owns_all = true;
    let mut approvers = BTreeSet::new();
    let mut step_inputs = Vec::new();
    for (position, text) in plan.inputs().into_iter().enumerate() {
        let handle: Handle = match text.parse() {
            Ok(handle) => handle,
            Err(e) => {
                return Err(refuse(
                    ErrorKind::BadRequest,
                    format!("input table {position} of the plan is not a handle: {e}"),
                ));
            }
        };
        let info = visible_table(store, &handle, mode)?;
        owns_all &= info.owner == me && !info.policy.restricted;
        approvers.extend(info.policy.approvers.iter().cloned());
        step_inputs.push(handle);
    }
    let result_policy = TablePolicy {
        namespace: namespace(mode),
        dummy_for: None,
        approvers: approvers.into_iter().collect(),
        restricted: !owns_all,
        made_by: None,
    };
    #[cfg(feature = "fault-injection")]
    if config.file.faults.accept_unauthorized {
        tracing::warn!("fault injection: accepting a query without checking it");
        return Ok(Grant {
            step: None,
            result_policy,
        });
    }
    let may_query = user.roles.contains(&Role::Analyst) || owns_all;
    match (mode, request.request.approval) {
        (Mode::Design, Some(_)) => Err(refuse(
            ErrorKind::BadRequest,
            "design-mode requests run without approvals; approved scripts run in authorized mode",
        )),
        (Mode::Design, None) if may_query => Ok(Grant {
            step: None,
            result_policy,
        }),
        (_, None) if owns_all => Ok(Grant {
            step: None,
            result_policy,
        }),
        (Mode::Design, None) => Err(refuse(
            ErrorKind::Unauthorized,
            format!(
                "user {:?} is neither an analyst nor the owner of every input",
                user.name
            ),
        )),
        (Mode::Authorized, None) => Err(no_match(
            "no approved script covers this query: analysts query production tables \
             through approved scripts (record, approve, load)",
        )),
        (Mode::Authorized, Some(claimed)) => {
            if !user.roles.contains(&Role::Analyst) {
                return Err(refuse(
                    ErrorKind::Unauthorized,
                    format!("user {:?} is not an analyst", user.name),
                ));
            }
            let bytes = approved.ok_or_else(|| {
                no_match("the request names an approved script but does not carry it")
            })?;
            let approved = ApprovedScript::decode(bytes)
                .map_err(|e| no_match(format!("the approved script: {e}")))?;
            let digest = approved.script.digest();
            let step = claimed.step;
            let at = |what: String| no_match(format!("step {step}: {what}"));
            if digest != claimed.approval {
                return Err(at(
                    "the approved script sent is not the one the request was signed for".into(),
                ));
            }
            if approved.script.analyst != signer {
                return Err(at(format!(
                    "the script was recorded by {}, the request is signed by {}",
                    approved.script.analyst.fingerprint(),
                    signer.fingerprint()
                )));
            }
            if config.roles.is_approval_revoked(&digest) {
                return Err(at(format!("the approval of script {digest} was revoked")));
            }
            let production = production_handles(&approved)?;
            let mut read = production.clone();
            read.extend(step_inputs.iter().copied());
            read.sort();
            read.dedup();
            for handle in &production {
                visible_table(store, handle, Mode::Authorized)
                    .map_err(|e| at(format!("the script reads {e}")))?;
            }
            let texts: Vec<String> = production.iter().map(|h| h.to_string()).collect();
            approved
                .check(&config.deployment, &texts, now)
                .map_err(|e| at(e.to_string()))?;
            check_approvers(config, store, &approved, &read).map_err(at)?;
            let key = RunKey {
                script: digest,
                analyst: signer,
            };
            let state = runs.get(&key);
            if let Some(why) = &state.stopped {
                return Err(at(format!(
                    "the script stopped earlier ({why}); close it to run it again"
                )));
            }
            let steps = approved.script.steps.len() as u32;
            if step != state.next_step {
                return Err(at(if step >= steps {
                    format!("the script has {steps} steps, this would be an extra one")
                } else {
                    format!("the next step of this run is {}", state.next_step)
                }));
            }
            let recorded = &approved.script.steps[step as usize];
            let recorded_plan = triad_plan::Query::decode(&recorded.plan)
                .map_err(|e| at(format!("the recorded plan: {e}")))?;
            let mut sent = plan.clone();
            for frame in &mut sent.frames {
                if let triad_plan::Frame::Table { handle } = frame
                    && let Some(j) = state
                        .outputs
                        .iter()
                        .position(|o| o.as_ref().is_some_and(|h| h.to_string() == *handle))
                {
                    *handle = step_reference(j as u32);
                }
            }
            // A table another approved script stored on production data
            // is recorded by what made it; the sent plan names it by handle.
            for (frame, recorded_frame) in sent.frames.iter_mut().zip(&recorded_plan.frames) {
                if let (
                    triad_plan::Frame::Table { handle },
                    triad_plan::Frame::Table { handle: reference },
                ) = (frame, recorded_frame)
                    && parse_output_reference(reference).is_some()
                    && let Ok(parsed) = handle.parse::<Handle>()
                    && let Ok(info) = visible_table(store, &parsed, Mode::Authorized)
                    && info.policy.made_by.as_deref() == Some(reference.as_str())
                {
                    *handle = reference.clone();
                }
            }
            if sent != recorded_plan {
                return Err(at(describe_difference(&recorded_plan, &sent)));
            }
            let result_policy = TablePolicy {
                made_by: Some(output_reference(&digest, step)),
                ..result_policy
            };
            Ok(Grant {
                step: Some(StepGrant {
                    run: key,
                    step,
                    allow_errors: recorded.allow_errors,
                    steps,
                }),
                result_policy,
            })
        }
    }
}

/// The production handles a script's plans read (step references aside).
fn production_handles(approved: &ApprovedScript) -> Result<Vec<Handle>, ApiError> {
    let mut handles = BTreeSet::new();
    for (index, step) in approved.script.steps.iter().enumerate() {
        let plan = triad_plan::Query::decode(&step.plan)
            .map_err(|e| no_match(format!("step {index} of the script: {e}")))?;
        for text in plan.inputs() {
            if parse_output_reference(text).is_some() {
                continue;
            }
            if let Some(earlier) = parse_step_reference(text) {
                if earlier as usize >= index {
                    return Err(no_match(format!(
                        "step {index} of the script reads step {earlier}, which does not come before it"
                    )));
                }
                continue;
            }
            let handle: Handle = text
                .parse()
                .map_err(|e| no_match(format!("step {index} of the script reads {text:?}: {e}")))?;
            handles.insert(handle);
        }
    }
    Ok(handles.into_iter().collect())
}

/// Every approval is by a current approver, and every approver a table's
/// policy names has signed.
fn check_approvers(
    config: &Config,
    store: &Store,
    approved: &ApprovedScript,
    production: &[Handle],
) -> Result<(), String> {
    let mut signed = BTreeSet::new();
    for approval in &approved.approvals {
        let approver = approval.approval.approver;
        match config.user(&approver) {
            Some(user) if user.roles.contains(&Role::Approver) => {}
            Some(user) => {
                return Err(format!(
                    "{:?} signed an approval but is not an approver",
                    user.name
                ));
            }
            None => {
                return Err(format!(
                    "the approval by {} is from an unknown or revoked key",
                    approver.fingerprint()
                ));
            }
        }
        signed.insert(approver.to_string());
    }
    for handle in production {
        let info = store.table(handle).map_err(|e| e.to_string())?;
        for required in &info.policy.approvers {
            if !signed.contains(required) {
                let short = required.get(..16).unwrap_or(required);
                return Err(format!(
                    "table {handle} needs the approval of {short}…, which the script does not carry"
                ));
            }
        }
    }
    Ok(())
}

/// Names the first place where the sent plan differs from the recorded
/// one: a frame, an operator, a column, a constant, a threshold.
pub(crate) fn describe_difference(
    recorded: &triad_plan::Query,
    sent: &triad_plan::Query,
) -> String {
    let (Ok(a), Ok(b)) = (serde_json::to_value(recorded), serde_json::to_value(sent)) else {
        return "the query differs from the recorded step".into();
    };
    let mut path = String::new();
    match first_difference(&a, &b, &mut path) {
        Some((was, now)) => {
            format!(
                "the query differs from the recorded step at {path}: recorded {was}, sent {now}"
            )
        }
        None => "the query differs from the recorded step".into(),
    }
}

fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &mut String,
) -> Option<(String, String)> {
    use serde_json::Value;
    let short = |v: &Value| {
        let text = v.to_string();
        if text.chars().count() > 80 {
            format!("{}…", text.chars().take(77).collect::<String>())
        } else {
            text
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            if x.len() == 1 && y.len() == 1 && x.keys().ne(y.keys()) {
                return Some((short(a), short(b)));
            }
            for key in keys {
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => {
                        let before = path.len();
                        path.push('.');
                        path.push_str(key);
                        if let Some(found) = first_difference(p, q, path) {
                            return Some(found);
                        }
                        path.truncate(before);
                    }
                    _ => return Some((short(a), short(b))),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let before = path.len();
                path.push_str(&format!("[{i}]"));
                if let Some(found) = first_difference(p, q, path) {
                    return Some(found);
                }
                path.truncate(before);
            }
            if x.len() != y.len() {
                return Some((
                    format!("{} entries", x.len()),
                    format!("{} entries", y.len()),
                ));
            }
            None
        }
        _ if a == b => None,
        _ => Some((short(a), short(b))),
    }
}

/// Names one analyst's run of one script.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RunKey {
    pub(crate) script: Digest,
    analyst: UserPublicKey,
}

impl RunKey {
    pub(crate) fn new(script: Digest, analyst: UserPublicKey) -> RunKey {
        RunKey { script, analyst }
    }

    fn file_name(&self) -> String {
        format!("{}-{}.json", self.script, self.analyst)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunState {
    /// The step the run expects next.
    pub(crate) next_step: u32,
    /// Per step done: the handle it stored, if it stored one.
    pub(crate) outputs: Vec<Option<Handle>>,
    /// Why the run stopped, if a step failed outside `allow_errors`.
    pub(crate) stopped: Option<String>,
}

/// The runs in progress, one small file each under `data_dir/scripts`,
/// replaced atomically, so that a restarted node continues every run
/// where it was.
#[derive(Debug)]
pub(crate) struct ScriptRuns {
    dir: PathBuf,
    runs: Mutex<HashMap<String, RunState>>,
}

impl ScriptRuns {
    /// Opens (creating) the directory and reads every run.
    pub(crate) fn open(dir: &Path) -> Result<ScriptRuns, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut runs = HashMap::new();
        for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") {
                continue;
            }
            let path = entry.path();
            let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let state: RunState = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a script run record: {e}", path.display()))?;
            runs.insert(name, state);
        }
        Ok(ScriptRuns {
            dir: dir.to_owned(),
            runs: Mutex::new(runs),
        })
    }

    fn get(&self, key: &RunKey) -> RunState {
        self.runs
            .lock()
            .map(|runs| runs.get(&key.file_name()).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn put(&self, key: &RunKey, state: Option<RunState>) -> Result<(), String> {
        let name = key.file_name();
        let mut runs = self.runs.lock().map_err(|_| "script runs unavailable")?;
        match state {
            Some(state) => {
                let bytes = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
                fsutil::write_bytes_atomic(&self.dir, &name, &bytes).map_err(|e| e.to_string())?;
                runs.insert(name, state);
            }
            None => {
                let path = self.dir.join(&name);
                if path.exists() {
                    fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                }
                fsutil::sync_dir(&self.dir).map_err(|e| e.to_string())?;
                runs.remove(&name);
            }
        }
        Ok(())
    }

    /// Records how a granted step ended. A run that finished its last
    /// step is removed, so the script can be run again from its start.
    pub(crate) fn finish(&self, grant: &StepGrant, end: StepEnd) -> Result<(), String> {
        let mut state = self.get(&grant.run);
        if state.next_step != grant.step {
            return Ok(());
        }
        match end {
            StepEnd::NotRun => return Ok(()),
            StepEnd::Done(output) => state.outputs.push(output),
            StepEnd::DataRefused(why) => {
                state.outputs.push(None);
                if !grant.allow_errors {
                    state.stopped = Some(format!("step {}: {why}", grant.step));
                }
            }
        }
        state.next_step += 1;
        if state.next_step >= grant.steps && state.stopped.is_none() {
            self.put(&grant.run, None)
        } else {
            self.put(&grant.run, Some(state))
        }
    }

    /// Ends a run (the analyst's `close`).
    pub(crate) fn close(&self, key: &RunKey) -> Result<(), String> {
        self.put(key, None)
    }
}
