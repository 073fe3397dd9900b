//! Job requests against three real node processes: a two-action pipeline
//! whose second action reads the first's secret table, run as a job and
//! checked against polars; unchanged dependencies skipped, changed or
//! forced ones re-run; a failed action failing its dependents; steps out
//! of the job's order refused; cancellation; records surviving a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use triad_auth::UserKey;
use triad_client::jobs::{run_job, submission};
use triad_client::prelude::*;
use triad_client::script;
use triad_client::{ConnectionFile, UploadOptions, seed};
use triad_node::api::ErrorKind;
use triad_node::config::Role;
use triad_node::jobs::{FailReason, JobStatus, JobView, Level};

const PEOPLE: [(&str, Role); 4] = [
    ("hospital", Role::Owner),
    ("pharmacy", Role::Owner),
    ("analyst", Role::Analyst),
    ("approver", Role::Approver),
];

mod common;

use common::{Fixture, triad};

/// Approves recordings as the deployment's approver.
trait Approve {
    fn approve(&self, recording: &Path) -> PathBuf;
}

impl Approve for Fixture {
    fn approve(&self, recording: &Path) -> PathBuf {
        let approved = recording.with_extension("approved");
        let approver = UserKey::load(&self.root.join("approver.key")).unwrap();
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        script::approve(recording, &approved, &approver, expires).unwrap();
        approved
    }
}

fn dummy_for(production: Handle) -> UploadOptions {
    UploadOptions {
        dummy_for: Some(production),
        approvers: Vec::new(),
    }
}

/// The seed's per-month sums over a merged table.
fn monthly_sums(client: &Client, merged: &Handle, threshold: u64) -> Vec<Option<i64>> {
    let merged = client.frame(merged).unwrap();
    seed::SEED_MONTHS
        .iter()
        .map(|&month| {
            let selected = merged.filter(
                (col("condition_y").eq(lit(1)) & col("month").eq(lit(month as i64)))
                    .with_threshold(threshold),
            );
            match selected.sum("condition_y") {
                Ok(value) => value.as_i64(),
                Err(ClientError::ThresholdNotMet { .. }) => None,
                Err(e) => panic!("{e}"),
            }
        })
        .collect()
}

fn statuses(job: &JobView) -> Vec<(&str, JobStatus, Option<FailReason>)> {
    job.actions
        .iter()
        .map(|a| (a.name.as_str(), a.status, a.reason))
        .collect()
}

/// The released CSV of one revealing step: the value column.
fn released_value(path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().nth(1).unwrap();
    let value = line.rsplit(',').next().unwrap().trim_matches('"');
    value.parse().ok()
}

const PIPELINE: &str = "\
version: 1
actions:
  merge_tables:
    script: merge.approved
    inputs:
      party1: P1
      party2: P2
    outputs:
      highly_sensitive:
        merged: table
  monthly_sums:
    script: sums.approved
    needs: [merge_tables]
    inputs:
      merged: merge_tables.merged
    outputs:
      moderately_sensitive:
        sums: aggregates
  strict_sums:
    script: strict.approved
    needs: [merge_tables]
    inputs:
      merged: merge_tables.merged
    outputs:
      moderately_sensitive:
        sums: aggregates
  after_strict:
    script: sums.approved
    needs: [merge_tables, strict_sums]
    inputs:
      merged: merge_tables.merged
    outputs:
      moderately_sensitive:
        sums: aggregates
";

#[test]
fn pipelines_run_as_job_requests() {
    let f = Fixture::start(&PEOPLE, |_| {});
    let data = f.root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let tables = seed::write_demo_tables(&data, 1000, 21).unwrap();
    let p1 = f.upload(
        &f.connect("hospital"),
        &tables[0].0,
        &tables[0].1,
        &UploadOptions::default(),
    );
    let p2 = f.upload(
        &f.connect("pharmacy"),
        &tables[1].0,
        &tables[1].1,
        &UploadOptions::default(),
    );

    // Design: the merge, then sums over the merge's table, recorded as two
    // scripts; the second names the first's table by script and step.
    let analyst = f.connect("analyst");
    let dummy_dir = f.root.join("dummy");
    std::fs::create_dir_all(&dummy_dir).unwrap();
    let dummy = seed::write_demo_tables(&dummy_dir, 150, 22).unwrap();
    let d1 = f.upload(&analyst, &dummy[0].0, &dummy[0].1, &dummy_for(p1));
    let d2 = f.upload(&analyst, &dummy[1].0, &dummy[1].1, &dummy_for(p2));
    let project = f.root.join("project");
    std::fs::create_dir_all(&project).unwrap();
    analyst.record("merge").unwrap();
    let merged_dummy = analyst
        .frame(&d1)
        .unwrap()
        .merge(&analyst.frame(&d2).unwrap(), How::Inner, &seed::SEED_KEYS)
        .store()
        .unwrap();
    let merge = analyst.end(&project.join("merge.recording")).unwrap();
    for (name, threshold) in [("sums", 3), ("strict", 1_000_000)] {
        analyst.record(name).unwrap();
        analyst.allow_errors(|| monthly_sums(&analyst, &merged_dummy, 3));
        if threshold > 3 {
            // Outside allow_errors: on production this stops the script.
            let _ = monthly_sums(&analyst, &merged_dummy, threshold);
        }
        let recording = analyst
            .end(&project.join(format!("{name}.recording")))
            .unwrap();
        assert_eq!(
            recording.steps[0].inputs,
            vec![format!("output:{}:0", merge.digest)],
            "{name}"
        );
    }
    for name in ["merge", "sums", "strict"] {
        f.approve(&project.join(format!("{name}.recording")));
    }
    let pipeline = project.join("triad.yaml");
    std::fs::write(
        &pipeline,
        PIPELINE
            .replace("P1", &p1.to_string())
            .replace("P2", &p2.to_string()),
    )
    .unwrap();
    let out = f.root.join("released");
    let clear = seed::seed_analysis_clear(&tables[0].0, &tables[1].0, &seed::SEED_MONTHS).unwrap();
    // Released through the deployment's default policy: a sum beside a
    // count of at most 7 is redacted (these sums count their rows).
    let exact = clear;
    let clear: Vec<Option<i64>> = exact.iter().map(|(_, v)| v.filter(|v| *v > 7)).collect();
    assert!(clear.iter().any(Option::is_some), "{exact:?}");

    // First job: both actions run; the sums equal polars'.
    let request = submission(&pipeline, "seed", &["monthly_sums".into()], false).unwrap();
    let job = analyst.submit_job(&request).unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.requester_name, "analyst");
    assert_eq!(
        statuses(&job),
        vec![
            ("merge_tables", JobStatus::Pending, None),
            ("monthly_sums", JobStatus::Pending, None)
        ]
    );
    let (done, released) = run_job(&analyst, &job, &request, &out).unwrap();
    assert_eq!(done.status, JobStatus::Succeeded, "{done:#?}");
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    let merge_table = done.actions[0].outputs[0].handle.expect("merged table");
    assert_eq!(done.actions[0].outputs[0].level, Level::HighlySensitive);
    assert_eq!(done.actions[1].outputs[0].level, Level::ModeratelySensitive);
    let answered: Vec<_> = released.iter().filter(|r| r.rule.is_some()).collect();
    assert_eq!(done.actions[1].outputs[0].sealed.len(), answered.len());
    let values: Vec<Option<i64>> = released.iter().map(|r| released_value(&r.path)).collect();
    assert_eq!(values, clear);
    assert!(
        !answered.is_empty()
            && answered
                .iter()
                .all(|r| r.rule.as_deref().is_some_and(|rule| rule.contains("<= 7"))),
        "{released:?}"
    );

    // Again: the merge is unchanged and skipped (its table reused), the
    // requested sums run.
    let again = analyst.submit_job(&request).unwrap();
    assert_eq!(
        statuses(&again),
        vec![
            ("merge_tables", JobStatus::Skipped, None),
            ("monthly_sums", JobStatus::Pending, None)
        ]
    );
    assert_eq!(again.actions[0].outputs[0].handle, Some(merge_table));
    let (again, released) = run_job(&analyst, &again, &request, &out).unwrap();
    assert_eq!(again.status, JobStatus::Succeeded);
    let values: Vec<Option<i64>> = released.iter().map(|r| released_value(&r.path)).collect();
    assert_eq!(values, clear);

    // Forced: the merge runs again, to a new table.
    let forced = submission(&pipeline, "seed", &["monthly_sums".into()], true).unwrap();
    let job = analyst.submit_job(&forced).unwrap();
    assert_eq!(job.actions[0].status, JobStatus::Pending);
    let (job, _) = run_job(&analyst, &job, &forced, &out).unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_ne!(job.actions[0].outputs[0].handle, Some(merge_table));
    // Another workspace shares nothing.
    let elsewhere = submission(&pipeline, "other", &["monthly_sums".into()], false).unwrap();
    let job = analyst.submit_job(&elsewhere).unwrap();
    assert_eq!(job.actions[0].status, JobStatus::Pending);
    analyst.cancel_job(&job.id).unwrap();

    // A failing action fails what needs it, and the job.
    let strict = submission(&pipeline, "seed", &["after_strict".into()], false).unwrap();
    let job = analyst.submit_job(&strict).unwrap();
    let (job, _) = run_job(&analyst, &job, &strict, &out).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.reason, Some(FailReason::ThresholdNotMet));
    assert_eq!(
        statuses(&job),
        vec![
            ("merge_tables", JobStatus::Skipped, None),
            (
                "strict_sums",
                JobStatus::Failed,
                Some(FailReason::ThresholdNotMet)
            ),
            (
                "after_strict",
                JobStatus::Failed,
                Some(FailReason::DependencyFailed)
            ),
        ]
    );

    // Steps out of the job's order are refused, and change nothing.
    let job = analyst.submit_job(&forced).unwrap();
    // A client that treats the forced merge as skipped.
    let mut skipping = job.clone();
    skipping.actions[0].status = JobStatus::Skipped;
    skipping.actions[0].stored.insert(0, merge_table);
    match run_job(&analyst, &skipping, &forced, &out) {
        Err(ClientError::Refused { error, .. }) => {
            assert_eq!(error.kind, ErrorKind::Job);
            assert!(
                error
                    .message
                    .contains("the next action is \"merge_tables\""),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
    let unchanged = analyst.job(&job.id).unwrap();
    assert_eq!(unchanged.status, JobStatus::Pending);
    // Another user cannot cancel it; its requester can, once.
    match f.connect("hospital").cancel_job(&job.id) {
        Err(ClientError::Refused { error, .. }) => {
            assert_eq!(error.kind, ErrorKind::Job);
            assert!(
                error.message.contains("only its requester"),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
    let cancelled = analyst.cancel_job(&job.id).unwrap();
    assert_eq!(cancelled.status, JobStatus::Failed);
    assert_eq!(cancelled.reason, Some(FailReason::Cancelled));
    assert!(
        cancelled
            .actions
            .iter()
            .all(|a| a.reason == Some(FailReason::Cancelled))
    );
    match run_job(&analyst, &job, &forced, &out) {
        Err(ClientError::Refused { error, .. }) => {
            assert!(
                error.message.contains("failed (cancelled)"),
                "{}",
                error.message
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(analyst.cancel_job(&job.id).is_err());

    // An invalid pipeline is refused by the nodes with its line.
    let mut broken = request.clone();
    broken.scripts.retain(|(path, _)| path != "sums.approved");
    match analyst.submit_job(&broken) {
        Err(ClientError::Refused { error, .. }) => {
            assert_eq!(error.kind, ErrorKind::Job);
            assert!(
                error.message.contains("triad.yaml:12")
                    && error.message.contains("not in the job request"),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }

    // The CLI, as the requester runs it: the merge is unchanged, so
    // skipped; the sums run and are written under --out.
    let mut conn = ConnectionFile::load(&f.cluster.connection_path()).unwrap();
    conn.key = f.root.join("analyst.key");
    let conn_path = f.root.join("analyst.conn");
    conn.save(&conn_path).unwrap();
    let cli_out = f.root.join("cli-released");
    let conn = Some(conn_path.as_path());
    let (pipeline_arg, out_arg) = (
        pipeline.display().to_string(),
        cli_out.display().to_string(),
    );
    let (ok, stdout, stderr) = triad(
        &[
            "run",
            "monthly_sums",
            "--workspace",
            "seed",
            "--pipeline",
            &pipeline_arg,
            "--out",
            &out_arg,
        ],
        conn,
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("merge_tables") && l.contains("skipped")),
        "{stdout}"
    );
    assert_eq!(stdout.matches("released: ").count(), 3, "{stdout}");
    assert!(cli_out.join("monthly_sums/step0.csv").exists(), "{stdout}");
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("job ")?.strip_suffix(" submitted"))
        .unwrap()
        .to_owned();
    let (ok, shown, _) = triad(&["jobs", &id], conn);
    assert!(
        ok && shown.contains(&id) && shown.contains("succeeded"),
        "{shown}"
    );
    let (ok, _, refused) = triad(&["cancel", &id], conn);
    assert!(!ok && refused.contains("succeeded already"), "{refused}");

    // Every record survives a node's restart, the same on all three.
    let listed = analyst.jobs().unwrap();
    assert_eq!(listed.len(), 7);
    analyst.close();
    let mut f = f;
    f.cluster.kill_node(1);
    f.cluster.start_node(1).unwrap();
    f.cluster.wait_ready(Duration::from_secs(60)).unwrap();
    let analyst = f.connect("analyst");
    let after = analyst.jobs().unwrap();
    assert_eq!(after, listed);
}
