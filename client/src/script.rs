//! Scripts from the analyst's side: record the queries of a design session
//! on dummy tables ([`Client::record`], [`Client::end`]), have an approver
//! sign the recording ([`approve`]), and run the approved script unchanged
//! on the production tables ([`Client::load`], [`Client::close_script`]).
//!
//! Two files carry a script between people:
//!
//! - `NAME.recording` (JSON): the script's canonical bytes (hex), its
//!   digest, and for people the steps: each plan rendered as JSON (integers
//!   beyond 2^53 as strings, so no JSON reader rounds them), the tables it
//!   reads and the output it gave on dummy data.
//! - `NAME.approved` (JSON): the same, plus the approvals and the canonical
//!   bytes of the approved script the nodes check.
//!
//! The nodes decide; this module only records and presents. A script the
//! client changed after approval is refused by the nodes
//! (`NoMatchingAuthorization`), not here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use triad_auth::{
    Approval, ApprovalStep, ApprovedScript, Digest, Mode, SCRIPT_VERSION, Script, ScriptStep,
    UserKey, output_reference, parse_output_reference, parse_step_reference, step_reference,
};
use triad_node::store::Handle;
use triad_plan::{Frame, Query};

use crate::error::ClientError;
use crate::remote::{Client, QueryReply};

/// The `format` field of a recording file.
pub const RECORDING_FORMAT: &str = "triad-recording";

/// The `format` field of an approved-script file.
pub const APPROVED_FORMAT: &str = "triad-approved";

/// Largest integer JSON readers keep exactly (2^53).
const JSON_EXACT: u64 = 1 << 53;

/// The mode and script state of a [`Client`].
#[derive(Debug, Default)]
pub struct Session {
    pub(crate) mode: Option<Mode>,
    pub(crate) state: State,
    /// Dummy tables that steps of ended recordings stored, with the
    /// [`output_reference`] a later recording names them by.
    pub(crate) outputs: BTreeMap<Handle, String>,
}

#[derive(Debug, Default)]
pub(crate) enum State {
    #[default]
    Idle,
    Recording(Recorder),
    Running(Runner),
}

#[derive(Debug)]
pub(crate) struct Recorder {
    name: String,
    steps: Vec<RecordedStep>,
    /// Per recorded step, the dummy table it stored, so that a later
    /// query reading it is recorded as reading that step.
    stored: Vec<Option<Handle>>,
    allow_errors: bool,
}

#[derive(Debug)]
struct RecordedStep {
    plan: Query,
    allow_errors: bool,
    output: Json,
}

#[derive(Debug)]
pub(crate) struct Runner {
    bytes: Vec<u8>,
    digest: Digest,
    next_step: u32,
}

/// One step as people read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepView {
    /// Its index, from 0.
    pub step: u32,
    /// Whether a failed threshold here lets the script go on.
    pub allow_errors: bool,
    /// Production tables (handles) and earlier steps (`step:N`) it reads.
    pub inputs: Vec<String>,
    /// The plan, rendered from its canonical bytes.
    pub plan: Json,
    /// What it gave on the dummy tables.
    pub dummy_output: Json,
}

/// A `.recording` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// [`RECORDING_FORMAT`].
    pub format: String,
    /// The script's name.
    pub name: String,
    /// The deployment (hex).
    pub deployment: String,
    /// The analyst's public key (hex).
    pub analyst: String,
    /// The script's digest (hex): what approvals sign.
    pub digest: String,
    /// The script's canonical bytes (hex).
    pub script: String,
    /// The steps, for people.
    pub steps: Vec<StepView>,
}

/// One approval as people read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalView {
    /// The approver's public key (hex).
    pub approver: String,
    /// Unix seconds after which the nodes refuse it.
    pub expires_at: u64,
    /// The production tables it covers.
    pub handles: Vec<String>,
}

/// A `.approved` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedFile {
    /// [`APPROVED_FORMAT`].
    pub format: String,
    /// The recording it approves.
    pub recording: Recording,
    /// Who approved, until when.
    pub approvals: Vec<ApprovalView>,
    /// The approved script's canonical bytes (hex): what the nodes check.
    pub approved: String,
}

fn script_error(path: &Path, problem: impl Into<String>) -> ClientError {
    ClientError::Script {
        path: path.display().to_string(),
        problem: problem.into(),
    }
}

/// Renders a plan for people: serde's JSON with integers beyond 2^53 as
/// strings.
pub fn render_plan(plan: &Query) -> Json {
    fn exact(value: Json) -> Json {
        match value {
            Json::Number(n) => {
                let big = n.as_u64().is_some_and(|v| v > JSON_EXACT)
                    || n.as_i64().is_some_and(|v| v.unsigned_abs() > JSON_EXACT);
                if big {
                    Json::String(n.to_string())
                } else {
                    Json::Number(n)
                }
            }
            Json::Array(items) => Json::Array(items.into_iter().map(exact).collect()),
            Json::Object(map) => {
                Json::Object(map.into_iter().map(|(k, v)| (k, exact(v))).collect())
            }
            other => other,
        }
    }
    exact(serde_json::to_value(plan).unwrap_or(Json::Null))
}

fn views(script: &Script, outputs: &[Json]) -> Result<Vec<StepView>, String> {
    script
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let plan = Query::decode(&step.plan).map_err(|e| format!("step {i}: {e}"))?;
            Ok(StepView {
                step: i as u32,
                allow_errors: step.allow_errors,
                inputs: plan.inputs().iter().map(|s| s.to_string()).collect(),
                plan: render_plan(&plan),
                dummy_output: outputs.get(i).cloned().unwrap_or(Json::Null),
            })
        })
        .collect()
}

/// The production tables a script reads, sorted.
pub fn production_handles(script: &Script) -> Result<Vec<String>, String> {
    let mut handles = BTreeSet::new();
    for (i, step) in script.steps.iter().enumerate() {
        let plan = Query::decode(&step.plan).map_err(|e| format!("step {i}: {e}"))?;
        for input in plan.inputs() {
            if parse_step_reference(input).is_none() && parse_output_reference(input).is_none() {
                handles.insert(input.to_owned());
            }
        }
    }
    Ok(handles.into_iter().collect())
}

impl Recording {
    /// Reads a recording and checks it: the script decodes, its digest is
    /// the one stated, and every step shown is exactly the step signed (so
    /// an approver reads what they sign).
    pub fn load(path: &Path) -> Result<(Recording, Script), ClientError> {
        let text = fs::read_to_string(path).map_err(|e| script_error(path, e.to_string()))?;
        let recording: Recording =
            serde_json::from_str(&text).map_err(|e| script_error(path, e.to_string()))?;
        let script = recording.check().map_err(|e| script_error(path, e))?;
        Ok((recording, script))
    }

    fn check(&self) -> Result<Script, String> {
        if self.format != RECORDING_FORMAT {
            return Err(format!(
                "format {:?}, expected {RECORDING_FORMAT:?}",
                self.format
            ));
        }
        let bytes = hex::decode(&self.script).map_err(|e| format!("script: {e}"))?;
        let script = Script::decode(&bytes).map_err(|e| e.to_string())?;
        if script.digest().to_string() != self.digest {
            return Err("the digest does not match the script".into());
        }
        if script.analyst.to_string() != self.analyst
            || script.deployment.to_string() != self.deployment
            || script.name != self.name
        {
            return Err("the analyst, deployment or name shown is not the script's".into());
        }
        let outputs: Vec<Json> = self.steps.iter().map(|s| s.dummy_output.clone()).collect();
        if views(&script, &outputs)? != self.steps {
            return Err("the steps shown are not the script's steps".into());
        }
        Ok(script)
    }

    /// A readable summary for approvers: steps, tables, dummy outputs.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "script {:?} by analyst {}\ndigest {}\n",
            self.name, self.analyst, self.digest
        );
        for step in &self.steps {
            text.push_str(&format!(
                "\nstep {}{}: reads {}\n  plan: {}\n  on dummy data: {}\n",
                step.step,
                if step.allow_errors {
                    " (allow errors)"
                } else {
                    ""
                },
                step.inputs.join(", "),
                step.plan,
                step.dummy_output
            ));
        }
        text
    }
}

impl ApprovedFile {
    /// Reads an approved-script file: the recording checks as in
    /// [`Recording::load`], the approvals shown are the ones carried, and
    /// the approved script is the recorded one.
    pub fn load(path: &Path) -> Result<(ApprovedFile, ApprovedScript, Vec<u8>), ClientError> {
        let text = fs::read_to_string(path).map_err(|e| script_error(path, e.to_string()))?;
        let file: ApprovedFile =
            serde_json::from_str(&text).map_err(|e| script_error(path, e.to_string()))?;
        if file.format != APPROVED_FORMAT {
            return Err(script_error(
                path,
                format!("format {:?}, expected {APPROVED_FORMAT:?}", file.format),
            ));
        }
        let script = file.recording.check().map_err(|e| script_error(path, e))?;
        let bytes = hex::decode(&file.approved).map_err(|e| script_error(path, e.to_string()))?;
        let approved =
            ApprovedScript::decode(&bytes).map_err(|e| script_error(path, e.to_string()))?;
        // The nodes verify every approval again; verifying here names the
        // file when one was edited, instead of a refusal after signing a
        // request.
        for signed in &approved.approvals {
            signed
                .verify()
                .map_err(|e| script_error(path, format!("an approval does not verify: {e}")))?;
        }
        if approved.script != script {
            return Err(script_error(
                path,
                "the approved script is not the recorded one",
            ));
        }
        if approval_views(&approved) != file.approvals {
            return Err(script_error(
                path,
                "the approvals shown are not the ones carried",
            ));
        }
        Ok((file, approved, bytes))
    }
}

/// What a pipeline needs to know of an approved-script file: its digest,
/// and whether some step stores a table or reveals aggregates. Checks the
/// file as [`ApprovedFile::load`] does.
pub fn pipeline_script_info(path: &Path) -> Result<triad_pipeline::ScriptInfo, String> {
    let (_, approved, _) = ApprovedFile::load(path).map_err(|e| e.to_string())?;
    triad_node::jobs::script_info(&approved)
}

fn approval_views(approved: &ApprovedScript) -> Vec<ApprovalView> {
    approved
        .approvals
        .iter()
        .map(|a| ApprovalView {
            approver: a.approval.approver.to_string(),
            expires_at: a.approval.expires_at,
            handles: a.approval.handles.clone(),
        })
        .collect()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ClientError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| script_error(path, e.to_string()))?;
    text.push('\n');
    fs::write(path, text).map_err(|e| script_error(path, e.to_string()))
}

/// Signs the script in `input` (a `.recording`, or a `.approved` that
/// other approvers signed already) with `key`, valid until `expires_at`
/// (unix seconds), and writes the `.approved` file to `output`.
pub fn approve(
    input: &Path,
    output: &Path,
    key: &UserKey,
    expires_at: u64,
) -> Result<ApprovedFile, ClientError> {
    let text = fs::read_to_string(input).map_err(|e| script_error(input, e.to_string()))?;
    let probe: Json =
        serde_json::from_str(&text).map_err(|e| script_error(input, e.to_string()))?;
    let (recording, mut approved) = if probe.get("format") == Some(&Json::from(APPROVED_FORMAT)) {
        let (file, approved, _) = ApprovedFile::load(input)?;
        (file.recording, approved)
    } else {
        let (recording, script) = Recording::load(input)?;
        (
            recording,
            ApprovedScript {
                script,
                approvals: Vec::new(),
            },
        )
    };
    let script = &approved.script;
    let handles = production_handles(script).map_err(|e| script_error(input, e))?;
    let signed = Approval {
        version: SCRIPT_VERSION,
        script: script.digest(),
        analyst: script.analyst,
        handles,
        deployment: script.deployment,
        expires_at,
        approver: key.public(),
    }
    .sign(key)
    .map_err(|e| script_error(input, e.to_string()))?;
    approved
        .approvals
        .retain(|a| a.approval.approver != key.public());
    approved.approvals.push(signed);
    let file = ApprovedFile {
        format: APPROVED_FORMAT.into(),
        recording,
        approvals: approval_views(&approved),
        approved: hex::encode(approved.encode()),
    };
    write_json(output, &file)?;
    Ok(file)
}

impl Client {
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The mode requests are signed for: design while recording, authorized
    /// while running an approved script, otherwise as set with
    /// [`Client::set_mode`] (authorized by default).
    pub fn mode(&self) -> Mode {
        let session = self.session();
        match &session.state {
            State::Recording(_) => Mode::Design,
            State::Running(_) => Mode::Authorized,
            State::Idle => session.mode.unwrap_or(Mode::Authorized),
        }
    }

    /// Sets the mode of requests outside scripts: [`Mode::Design`] sees only
    /// dummy tables and runs any query on them.
    pub fn set_mode(&self, mode: Mode) {
        self.session().mode = Some(mode);
    }

    /// Starts recording a script named `name`: from now on queries run in
    /// design mode on dummy tables and are recorded, each reading the
    /// production tables the dummies stand for.
    pub fn record(&self, name: &str) -> Result<(), ClientError> {
        let mut session = self.session();
        if !matches!(session.state, State::Idle) {
            return Err(ClientError::Usage(
                "a script is already being recorded or run".into(),
            ));
        }
        session.state = State::Recording(Recorder {
            name: name.to_owned(),
            steps: Vec::new(),
            stored: Vec::new(),
            allow_errors: false,
        });
        Ok(())
    }

    /// Lets recordings name the dummy tables that the script in `path` (a
    /// `.recording` or `.approved` file) stored by what stored them, as a
    /// pipeline's later action reads an earlier one's table: on production
    /// data that table has another handle, made by the same step of the
    /// same approved script. Recordings ended by this client are known
    /// already.
    pub fn reads_outputs_of(&self, path: &Path) -> Result<(), ClientError> {
        let text = fs::read_to_string(path).map_err(|e| script_error(path, e.to_string()))?;
        let probe: Json =
            serde_json::from_str(&text).map_err(|e| script_error(path, e.to_string()))?;
        let recording = if probe.get("format") == Some(&Json::from(APPROVED_FORMAT)) {
            ApprovedFile::load(path)?.0.recording
        } else {
            Recording::load(path)?.0
        };
        let digest: Digest = recording
            .digest
            .parse()
            .map_err(|e| script_error(path, format!("digest: {e}")))?;
        let mut session = self.session();
        for step in &recording.steps {
            if let Some(stored) = step.dummy_output.get("stored").and_then(Json::as_str) {
                let handle: Handle = stored
                    .parse()
                    .map_err(|e| script_error(path, format!("step {}: stored: {e}", step.step)))?;
                session
                    .outputs
                    .insert(handle, output_reference(&digest, step.step));
            }
        }
        Ok(())
    }

    /// Runs `f` with its queries recorded as `allow_errors`: a threshold not
    /// met there will not stop the approved script.
    pub fn allow_errors<T>(&self, f: impl FnOnce() -> T) -> T {
        let set = |on: bool| {
            if let State::Recording(recorder) = &mut self.session().state {
                recorder.allow_errors = on;
            }
        };
        set(true);
        let result = f();
        set(false);
        result
    }

    /// Ends the recording and writes it to `path` (a `.recording` file for
    /// approvers).
    pub fn end(&self, path: &Path) -> Result<Recording, ClientError> {
        let recorder = {
            let mut session = self.session();
            match std::mem::take(&mut session.state) {
                State::Recording(recorder) => recorder,
                other => {
                    session.state = other;
                    return Err(ClientError::Usage("no script is being recorded".into()));
                }
            }
        };
        let script = Script {
            version: SCRIPT_VERSION,
            deployment: self.deployment(),
            analyst: self.public_key(),
            name: recorder.name.clone(),
            steps: recorder
                .steps
                .iter()
                .map(|s| ScriptStep {
                    plan: s.plan.encode(),
                    allow_errors: s.allow_errors,
                })
                .collect(),
        };
        let outputs: Vec<Json> = recorder.steps.iter().map(|s| s.output.clone()).collect();
        let digest = script.digest();
        {
            let mut session = self.session();
            for (step, stored) in recorder.stored.iter().enumerate() {
                if let Some(handle) = stored {
                    session
                        .outputs
                        .insert(*handle, output_reference(&digest, step as u32));
                }
            }
        }
        let recording = Recording {
            format: RECORDING_FORMAT.into(),
            name: script.name.clone(),
            deployment: script.deployment.to_string(),
            analyst: script.analyst.to_string(),
            digest: script.digest().to_string(),
            script: hex::encode(script.encode()),
            steps: views(&script, &outputs).map_err(|e| script_error(path, e))?,
        };
        write_json(path, &recording)?;
        Ok(recording)
    }

    /// Loads an approved script: from now on each query is sent as the
    /// script's next step, in authorized mode. The nodes refuse anything
    /// that is not exactly that step (`NoMatchingAuthorization`).
    pub fn load(&self, path: &Path) -> Result<(), ClientError> {
        let (_, approved, bytes) = ApprovedFile::load(path)?;
        if approved.script.analyst != self.public_key() {
            return Err(script_error(
                path,
                "the script was recorded by another analyst; run it with that analyst's key",
            ));
        }
        self.load_approved(&approved, bytes)
    }

    /// Runs `approved` (canonical bytes `bytes`) as [`Client::load`] would,
    /// without any of the client's checks, as a modified client could:
    /// for tests that the nodes refuse what the client would have.
    #[doc(hidden)]
    pub fn load_approved(
        &self,
        approved: &ApprovedScript,
        bytes: Vec<u8>,
    ) -> Result<(), ClientError> {
        let mut session = self.session();
        if !matches!(session.state, State::Idle) {
            return Err(ClientError::Usage(
                "a script is already being recorded or run".into(),
            ));
        }
        session.state = State::Running(Runner {
            digest: approved.script.digest(),
            bytes,
            next_step: 0,
        });
        Ok(())
    }

    /// Ends the running script on the nodes (so it can be run again from
    /// its first step) and here.
    pub fn close_script(&self) -> Result<(), ClientError> {
        let digest = match &self.session().state {
            State::Running(runner) => runner.digest,
            _ => return Err(ClientError::Usage("no approved script is running".into())),
        };
        let closed = self.send_close(digest);
        self.session().state = State::Idle;
        closed
    }

    /// Attaches a readable rendering of the last recorded step's result
    /// (the DataFrame API calls it after decoding).
    pub(crate) fn note_output(&self, rendered: impl FnOnce() -> String) {
        if let State::Recording(recorder) = &mut self.session().state
            && let Some(step) = recorder.steps.last_mut()
            && let Json::Object(map) = &mut step.output
        {
            map.insert("value".into(), Json::String(rendered()));
        }
    }
}

/// [`Client::query`]: recorded, sent as a script step, or sent as it is.
pub(crate) fn query(client: &Client, query: &Query) -> Result<QueryReply, ClientError> {
    let mut session = client.session();
    let mode = session.mode.unwrap_or(Mode::Authorized);
    // recording_plan reads them while the session is locked.
    let outputs = session.outputs.clone();
    match &mut session.state {
        State::Idle => {
            drop(session);
            client.send_query(query, mode, None, None)
        }
        State::Recording(recorder) => {
            let recorded = recording_plan(client, recorder, &outputs, query)?;
            let reply = client.send_query(query, Mode::Design, None, None);
            let (output, stored) = match &reply {
                Ok(QueryReply::Answer { passed, words, .. }) => (
                    serde_json::json!({
                        "passed": passed,
                        "words": words.iter().map(|w| (*w as i64).to_string()).collect::<Vec<_>>(),
                    }),
                    None,
                ),
                Ok(QueryReply::Stored { handle, rows, .. }) => (
                    serde_json::json!({ "stored_rows": rows, "stored": handle.to_string() }),
                    Some(*handle),
                ),
                Err(ClientError::ThresholdNotMet { .. }) => {
                    (serde_json::json!({ "error": "threshold not met" }), None)
                }
                Err(ClientError::NotUnique { .. }) => (
                    serde_json::json!({ "error": "merge keys not unique" }),
                    None,
                ),
                // Nothing ran: nothing to record.
                Err(_) => return reply,
            };
            recorder.steps.push(RecordedStep {
                plan: recorded,
                allow_errors: recorder.allow_errors,
                output,
            });
            recorder.stored.push(stored);
            reply
        }
        State::Running(runner) => {
            let approval = ApprovalStep {
                approval: runner.digest,
                step: runner.next_step,
            };
            let reply = client.send_query(
                query,
                Mode::Authorized,
                Some(approval),
                Some(runner.bytes.clone()),
            );
            // The nodes move on after an answer, and after a refusal the
            // data caused (stopping the script there unless the step was
            // recorded inside allow_errors); other failures ran nothing.
            if matches!(
                &reply,
                Ok(_) | Err(ClientError::ThresholdNotMet { .. } | ClientError::NotUnique { .. })
            ) {
                runner.next_step += 1;
            }
            reply
        }
    }
}

/// The plan as the script records it: each dummy table replaced by the
/// production table it stands for, each table an earlier step stored by
/// that step's reference.
fn recording_plan(
    client: &Client,
    recorder: &Recorder,
    outputs: &BTreeMap<Handle, String>,
    query: &Query,
) -> Result<Query, ClientError> {
    let mut recorded = query.clone();
    for frame in &mut recorded.frames {
        let Frame::Table { handle } = frame else {
            continue;
        };
        if let Some(step) = recorder
            .stored
            .iter()
            .position(|s| s.as_ref().is_some_and(|h| h.to_string() == *handle))
        {
            *handle = step_reference(step as u32);
            continue;
        }
        let parsed: Handle = handle
            .parse()
            .map_err(|e| ClientError::Usage(format!("table {handle:?}: {e}")))?;
        if let Some(reference) = outputs.get(&parsed) {
            *handle = reference.clone();
            continue;
        }
        let summary = client.get_table_in(&parsed, Mode::Design)?;
        match summary.policy.dummy_for {
            Some(production) => *handle = production.to_string(),
            None => {
                return Err(ClientError::Usage(format!(
                    "table {handle} stands for no production table, so a script reading it \
                     cannot run on real data: upload it with dummy_for (triad upload --dummy-for HANDLE), \
                     or record the script that stores it first (Client::reads_outputs_of)"
                )));
            }
        }
    }
    Ok(recorded)
}

/// Writes `approved` (the script of `recording` with its approvals, made
/// by [`approve`] or signed elsewhere, as the portal does) as the
/// `.approved` file at `output`, in the format [`ApprovedFile::load`]
/// reads.
pub fn write_approved(
    output: &Path,
    recording: Recording,
    approved: &ApprovedScript,
) -> Result<ApprovedFile, ClientError> {
    let file = ApprovedFile {
        format: APPROVED_FORMAT.into(),
        recording,
        approvals: approval_views(approved),
        approved: hex::encode(approved.encode()),
    };
    write_json(output, &file)?;
    Ok(file)
}
