//! Job requests from the requester's side: submit a pipeline's actions to
//! the nodes ([`Client::submit_job`]), drive the actions the nodes planned
//! to run, step by step, as approved-script steps ([`run_job`]), and read
//! or cancel job records ([`Client::jobs`], [`Client::cancel_job`]).
//!
//! The nodes decide what runs and in which order, and refuse any step out
//! of it; this module sends what they planned. Revealed aggregates (the
//! `moderately_sensitive` outputs) open only here, with the request's
//! result key, and are written as CSV under the output directory; the
//! nodes keep only a digest of the ciphertext.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::{CsvWriter, DataFrame, SerWriter};
use triad_auth::{
    ApprovalStep, ApprovedScript, Mode, parse_output_reference, parse_step_reference,
};
use triad_node::api::{Body, Reply};
use triad_node::jobs::{ActionView, JobStatus, JobStep, JobSubmission, JobView};
use triad_node::store::Handle;
use triad_plan::{CheckedOutput, Frame, Query};

use crate::answer::{decode_aggregation, decode_group_by, groups_to_dataframe};
use crate::error::ClientError;
use crate::remote::{Client, QueryReply};
use crate::script::ApprovedFile;

impl Client {
    /// Submits a job request; the three nodes validate it, plan it and
    /// must record the same job.
    pub fn submit_job(&self, submission: &JobSubmission) -> Result<JobView, ClientError> {
        self.job_call(Body::SubmitJob(submission.clone()), "submitting a job")
    }

    /// Cancels the requester's job `id`.
    pub fn cancel_job(&self, id: &str) -> Result<JobView, ClientError> {
        self.job_call(Body::CancelJob { job: id.to_owned() }, "cancelling a job")
    }

    /// Stops this user's query that is running now, on all three nodes;
    /// the query's caller gets a refusal of kind `Cancelled` and nothing is
    /// stored or revealed. Returns whether a node was running one (false
    /// when it had already finished).
    pub fn cancel_query(&self) -> Result<bool, ClientError> {
        let replies = self.body_call(&Body::CancelQuery)?;
        let mut any = false;
        for (node, reply) in replies.into_iter().enumerate() {
            match reply {
                Reply::Cancelled(running) => any |= running,
                _ => return Err(misbehaving(node, "cancelling a query")),
            }
        }
        Ok(any)
    }

    /// The record of job `id`, as all three nodes hold it.
    pub fn job(&self, id: &str) -> Result<JobView, ClientError> {
        self.job_call(Body::Job { job: id.to_owned() }, "reading a job")
    }

    /// Every job's record, newest first, as node 0 holds it, after checking
    /// that the other two agree on every job's state.
    pub fn jobs(&self) -> Result<Vec<JobView>, ClientError> {
        let replies = self.body_call(&Body::Jobs)?;
        let mut lists = Vec::new();
        for (node, reply) in replies.into_iter().enumerate() {
            match reply {
                Reply::Jobs(jobs) => lists.push(jobs),
                _ => return Err(misbehaving(node, "listing jobs")),
            }
        }
        for (node, list) in lists.iter().enumerate().skip(1) {
            let same = list.len() == lists[0].len()
                && list.iter().zip(&lists[0]).all(|(a, b)| same_state(a, b));
            if !same {
                return Err(ClientError::Disagreement(format!(
                    "node {node} holds other job states than node 0"
                )));
            }
        }
        Ok(lists.swap_remove(0))
    }

    pub(crate) fn body_call(&self, body: &Body) -> Result<[Reply; 3], ClientError> {
        let (request, _) = self.sign_as(body, Mode::Authorized, None)?;
        let replies = self.call_all_with(
            &request,
            body,
            [None, None, None],
            Default::default(),
            None,
            None,
        )?;
        for (node, reply) in replies.iter().enumerate() {
            if let Reply::Refused(error) = reply {
                return Err(ClientError::Refused {
                    node,
                    error: error.clone(),
                });
            }
        }
        Ok(replies)
    }

    fn job_call(&self, body: Body, what: &str) -> Result<JobView, ClientError> {
        let replies = self.body_call(&body)?;
        let mut views = Vec::new();
        for (node, reply) in replies.into_iter().enumerate() {
            match reply {
                Reply::Job(view) => views.push(*view),
                _ => return Err(misbehaving(node, what)),
            }
        }
        for (node, view) in views.iter().enumerate().skip(1) {
            if !same_state(view, &views[0]) {
                return Err(ClientError::Disagreement(format!(
                    "node {node} holds another state of job {} than node 0",
                    views[0].id
                )));
            }
        }
        Ok(views.swap_remove(0))
    }
}

fn misbehaving(node: usize, what: &str) -> ClientError {
    ClientError::Misbehaving {
        node,
        problem: format!("answered {what} with something else"),
    }
}

/// Equal but for the times each node read off its own clock.
fn same_state(a: &JobView, b: &JobView) -> bool {
    a.id == b.id
        && a.status == b.status
        && a.reason == b.reason
        && a.pipeline_digest == b.pipeline_digest
        && a.actions.len() == b.actions.len()
        && a.actions.iter().zip(&b.actions).all(|(x, y)| {
            x.name == y.name
                && x.status == y.status
                && x.reason == y.reason
                && x.steps_done == y.steps_done
                && x.stored == y.stored
                && x.digest == y.digest
        })
}

/// A job to submit, read from a pipeline file and the approved scripts it
/// names (paths relative to the file).
pub fn submission(
    pipeline: &Path,
    workspace: &str,
    actions: &[String],
    force_run_dependencies: bool,
) -> Result<JobSubmission, ClientError> {
    let file = |problem: String| ClientError::Script {
        path: pipeline.display().to_string(),
        problem,
    };
    let text = fs::read_to_string(pipeline).map_err(|e| file(e.to_string()))?;
    let base = pipeline.parent().unwrap_or(Path::new("."));
    let parsed =
        triad_pipeline::load(pipeline, &crate::script::pipeline_script_info).map_err(|errors| {
            file(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
    let mut scripts = BTreeMap::new();
    for action in &parsed.actions {
        let path = action.script.value.clone();
        if scripts.contains_key(&path) {
            continue;
        }
        let (_, approved, _) = ApprovedFile::load(&base.join(&path))?;
        scripts.insert(path, approved.encode());
    }
    Ok(JobSubmission {
        workspace: workspace.to_owned(),
        pipeline: text,
        scripts: scripts.into_iter().collect(),
        actions: actions.to_vec(),
        force_run_dependencies,
    })
}

/// What [`run_job`] wrote for one revealing step.
#[derive(Debug, Clone)]
pub struct Released {
    /// The action.
    pub action: String,
    /// The step of its script.
    pub step: u32,
    /// The CSV file.
    pub path: PathBuf,
    /// The release policy the nodes applied.
    pub rule: Option<String>,
}

/// Runs the actions of `job` that the nodes planned to run, in their
/// order, and returns the job's final record with the files the revealed
/// aggregates went to (under `out_dir/ACTION/`). Stops at the first
/// action that fails: the nodes fail its dependents.
pub fn run_job(
    client: &Client,
    job: &JobView,
    submission: &JobSubmission,
    out_dir: &Path,
) -> Result<(JobView, Vec<Released>), ClientError> {
    let scripts: BTreeMap<String, ApprovedScript> = submission
        .scripts
        .iter()
        .map(|(path, bytes)| {
            ApprovedScript::decode(bytes)
                .map(|a| (a.script.digest().to_string(), a))
                .map_err(|e| ClientError::Script {
                    path: path.clone(),
                    problem: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut stored: BTreeMap<String, BTreeMap<u32, Handle>> = job
        .actions
        .iter()
        .map(|a| (a.name.clone(), a.stored.clone()))
        .collect();
    let mut released = Vec::new();
    for action in &job.actions {
        if action.status != JobStatus::Pending {
            continue;
        }
        let approved = scripts.get(&action.script).ok_or_else(|| {
            ClientError::Usage(format!(
                "the job names script {}, which was not sent",
                action.script
            ))
        })?;
        let ok = run_action(
            client,
            job,
            action,
            approved,
            &mut stored,
            out_dir,
            &mut released,
        )?;
        if !ok {
            break;
        }
    }
    Ok((client.job(&job.id)?, released))
}

/// Runs one action's steps; false when the nodes failed it.
fn run_action(
    client: &Client,
    job: &JobView,
    action: &ActionView,
    approved: &ApprovedScript,
    stored: &mut BTreeMap<String, BTreeMap<u32, Handle>>,
    out_dir: &Path,
    released: &mut Vec<Released>,
) -> Result<bool, ClientError> {
    let digest = approved.script.digest();
    // A run of this script left over from an interactive session or an
    // earlier job would make the nodes expect another step than the first.
    client.send_close(digest)?;
    let bytes = approved.encode();
    let step_of = JobStep {
        job: job.id.clone(),
        action: action.name.clone(),
    };
    for (index, step) in approved.script.steps.iter().enumerate() {
        let index = index as u32;
        let mut plan = Query::decode(&step.plan).map_err(|e| ClientError::Script {
            path: action.name.clone(),
            problem: format!("step {index}: {e}"),
        })?;
        bind_tables(&mut plan, job, action, stored)?;
        let reply = client.send_step(
            &plan,
            Mode::Authorized,
            Some(ApprovalStep {
                approval: digest,
                step: index,
            }),
            Some(bytes.clone()),
            Some(step_of.clone()),
        );
        match reply {
            Ok(QueryReply::Stored { handle, .. }) => {
                stored
                    .entry(action.name.clone())
                    .or_default()
                    .insert(index, handle);
            }
            Ok(QueryReply::Answer {
                passed,
                words,
                rule,
                ..
            }) => {
                let path = out_dir.join(&action.name).join(format!("step{index}.csv"));
                write_answer(client, &plan, &passed, &words, rule.is_some(), &path)?;
                released.push(Released {
                    action: action.name.clone(),
                    step: index,
                    path,
                    rule,
                });
            }
            // The script goes on; the file says what the gate said, so
            // that released files stay one per revealing step.
            Err(ClientError::ThresholdNotMet { .. } | ClientError::NotUnique { .. })
                if step.allow_errors =>
            {
                let path = out_dir.join(&action.name).join(format!("step{index}.csv"));
                let io = |e: std::io::Error| {
                    ClientError::Usage(format!("writing {}: {e}", path.display()))
                };
                fs::create_dir_all(path.parent().unwrap_or(out_dir)).map_err(io)?;
                fs::write(&path, "value\nthreshold not met\n").map_err(io)?;
                released.push(Released {
                    action: action.name.clone(),
                    step: index,
                    path,
                    rule: None,
                });
            }
            Err(
                ClientError::ThresholdNotMet { .. }
                | ClientError::NotUnique { .. }
                | ClientError::NoMatchingAuthorization { .. },
            ) => return Ok(false),
            Err(other) => return Err(other),
        }
    }
    Ok(true)
}

/// Names in `plan` the tables this run made: earlier steps' by their
/// handles, other actions' (`output:SCRIPT:STEP`) by what the needed
/// action running that script stored.
fn bind_tables(
    plan: &mut Query,
    job: &JobView,
    action: &ActionView,
    stored: &BTreeMap<String, BTreeMap<u32, Handle>>,
) -> Result<(), ClientError> {
    for frame in &mut plan.frames {
        let Frame::Table { handle } = frame else {
            continue;
        };
        let bound = if let Some(step) = parse_step_reference(handle) {
            stored.get(&action.name).and_then(|s| s.get(&step)).copied()
        } else if let Some((script, step)) = parse_output_reference(handle) {
            let script = script.to_string();
            action
                .needs
                .iter()
                .filter_map(|need| job.actions.iter().find(|a| a.name == *need))
                .find(|a| a.script == script)
                .and_then(|a| stored.get(&a.name))
                .and_then(|s| s.get(&step))
                .copied()
        } else {
            continue;
        };
        let Some(bound) = bound else {
            return Err(ClientError::Usage(format!(
                "action {:?} reads {handle}, which nothing in this job stored",
                action.name
            )));
        };
        *handle = bound.to_string();
    }
    Ok(())
}

/// Writes a revealed answer as CSV. A released answer (`released`) ends
/// with a redaction bit per passing group: a redacted group's values read
/// "redacted" (the nodes sent 0 for them).
fn write_answer(
    client: &Client,
    plan: &Query,
    passed: &[bool],
    words: &[u64],
    released: bool,
    path: &Path,
) -> Result<(), ClientError> {
    let checked = client.check(plan)?;
    let (words, redacted) = if released {
        triad_exec::release::released_layout(words, passed)
            .map_err(|e| ClientError::Disagreement(e.to_string()))?
    } else {
        (words, vec![false; passed.iter().filter(|p| **p).count()])
    };
    let mut frame = match checked.output {
        CheckedOutput::Aggregate {
            aggregation,
            column,
            ..
        } => {
            let value = match (passed, &redacted[..]) {
                ([true], [true]) => "redacted".to_owned(),
                ([true], _) => {
                    decode_aggregation(&aggregation, column.as_ref(), words)?.to_string()
                }
                _ => "threshold not met".to_owned(),
            };
            let name = crate::answer::aggregation_name(&aggregation);
            DataFrame::new(
                1,
                vec![
                    polars::prelude::Column::new("aggregate".into(), [name]),
                    polars::prelude::Column::new("value".into(), [value]),
                ],
            )
            .map_err(|e| ClientError::Usage(format!("writing {}: {e}", path.display())))?
        }
        CheckedOutput::GroupBy {
            keys,
            aggregations,
            form,
            ..
        } => {
            let groups = decode_group_by(&keys, &aggregations, &form, passed, words)?;
            let mut frame = groups_to_dataframe(&keys, &aggregations, &groups)?;
            if released && redacted.len() == frame.height() {
                frame
                    .with_column(polars::prelude::Column::new("redacted".into(), redacted))
                    .map_err(|e| ClientError::Usage(format!("writing {}: {e}", path.display())))?;
            }
            frame
        }
        CheckedOutput::Store { .. } => {
            return Err(ClientError::Disagreement(
                "the nodes answered a step that stores".into(),
            ));
        }
    };
    let io = |e: String| ClientError::Usage(format!("writing {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io(e.to_string()))?;
    }
    let mut file = fs::File::create(path).map_err(|e| io(e.to_string()))?;
    CsvWriter::new(&mut file)
        .finish(&mut frame)
        .map_err(|e| io(e.to_string()))
}
