//! Job request pages, rendered from the nodes' job records
//! ([`JobView`]), and where those records come from ([`JobSource`]).
//!
//! The pages follow OpenSAFELY's job request pages: who asked for what,
//! when it ran, what each action did and left, and at which privacy level.
//! A job record holds no revealed value (the nodes keep only states,
//! times, handles and digests of sealed ciphertexts), and these pages show
//! no more: a `highly_sensitive` output shows its table's handle, a
//! `moderately_sensitive` one only that it was sealed to the requester.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use triad_node::jobs::{ActionView, JobStatus, JobStore, JobView, Level, OutputView};

use crate::error::PortalError;
use crate::html::{escape, hms, utc};

/// Where job records come from. Blocking: the server calls it off its
/// async threads.
pub trait JobSource: Send + Sync + std::fmt::Debug {
    /// Every job request, newest first.
    fn jobs(&self) -> Result<Vec<JobView>, PortalError>;
    /// The job request `id`.
    fn job(&self, id: &str) -> Result<JobView, PortalError>;
}

/// Job records read from a directory of JSON files in the nodes' own
/// format (a node's `jobs` directory, or fixtures): for demonstrations and
/// for tests without a cluster.
#[derive(Debug)]
pub struct DirJobSource {
    dir: PathBuf,
}

impl DirJobSource {
    /// Records in `dir`.
    pub fn new(dir: &Path) -> DirJobSource {
        DirJobSource {
            dir: dir.to_owned(),
        }
    }

    fn store(&self) -> Result<JobStore, PortalError> {
        JobStore::open(&self.dir).map_err(|e| PortalError::Jobs(e.to_string()))
    }
}

impl JobSource for DirJobSource {
    fn jobs(&self) -> Result<Vec<JobView>, PortalError> {
        self.store()?
            .list()
            .map_err(|e| PortalError::Jobs(e.to_string()))
    }

    fn job(&self, id: &str) -> Result<JobView, PortalError> {
        self.store()?.get(id).map_err(|e| match e {
            triad_node::jobs::JobError::Unknown(id) => {
                PortalError::NotFound(format!("no job request {id}"))
            }
            other => PortalError::Jobs(other.to_string()),
        })
    }
}

/// No source configured: every page says so.
#[derive(Debug)]
pub struct NoJobSource;

impl NoJobSource {
    fn error() -> PortalError {
        PortalError::Jobs(
            "this portal is not configured to read job records (set `connection` or `jobs_dir`)"
                .into(),
        )
    }
}

impl JobSource for NoJobSource {
    fn jobs(&self) -> Result<Vec<JobView>, PortalError> {
        Err(NoJobSource::error())
    }

    fn job(&self, _id: &str) -> Result<JobView, PortalError> {
        Err(NoJobSource::error())
    }
}

fn status_badge(status: JobStatus) -> String {
    format!(
        "<span class=\"status {0}\">{0}</span>",
        escape(status.as_str())
    )
}

fn optional_time(secs: Option<u64>) -> String {
    secs.map(utc).unwrap_or_else(|| "-".into())
}

/// The job list's body.
pub fn render_list(jobs: &[JobView], now: u64) -> String {
    let mut body = String::from("<h1>Job requests</h1>\n");
    if jobs.is_empty() {
        body.push_str("<p class=\"notice\">No job requests yet.</p>");
        return body;
    }
    body.push_str(
        "<table class=\"list\" id=\"jobs\">\n<thead><tr><th>ID</th><th>Workspace</th>\
         <th>Requested by</th><th>Status</th><th>Created</th><th>Runtime</th></tr></thead>\n<tbody>\n",
    );
    for job in jobs {
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/jobs/{id}\"><code>{id}</code></a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&job.workspace),
            escape(&job.requester_name),
            status_badge(job.status),
            utc(job.created_at),
            job.runtime(now).map(hms).unwrap_or_else(|| "-".into()),
            id = escape(&job.id),
        );
    }
    body.push_str("</tbody>\n</table>");
    body
}

fn render_output(output: &OutputView) -> String {
    let what = match output.level {
        Level::HighlySensitive => match &output.handle {
            Some(handle) => format!(
                "secret table on the three nodes, handle <code>{}</code>",
                escape(&handle.to_string())
            ),
            None => "secret table, not stored yet".into(),
        },
        Level::ModeratelySensitive => match output.sealed.len() {
            0 => "not released yet".into(),
            n => format!(
                "sealed to the requester ({n} encrypted result{}); only the requester's \
                 client can open it{}",
                if n == 1 { "" } else { "s" },
                match &output.rule {
                    Some(rule) => format!("; release policy: {}", escape(rule)),
                    None => String::new(),
                }
            ),
        },
    };
    format!(
        "<tr><td>{}</td><td><span class=\"level\">{}</span></td><td>{what}</td></tr>",
        escape(&output.name),
        escape(output.level.as_str()),
    )
}

fn render_action(action: &ActionView) -> String {
    let mut card = format!(
        "<div class=\"card action\" id=\"action-{name_attr}\">\n<h3>{name} {badge}</h3>\n\
         <dl class=\"fields\">\n",
        name_attr = escape(&action.name),
        name = escape(&action.name),
        badge = status_badge(action.status),
    );
    let mut field = |label: &str, value: String| {
        let _ = writeln!(card, "<dt>{label}</dt><dd>{value}</dd>");
    };
    if let Some(reason) = action.reason {
        field(
            "Reason",
            format!("<code>{}</code>", escape(reason.as_str())),
        );
    }
    if let Some(message) = &action.message {
        field("Message", escape(message));
    }
    field(
        "Steps",
        format!(
            "<span class=\"progress\">{} of {}</span> run",
            action.steps_done, action.steps
        ),
    );
    if !action.needs.is_empty() {
        let needs: Vec<String> = action.needs.iter().map(|n| escape(n)).collect();
        field("Needs", needs.join(", "));
    }
    if !action.inputs.is_empty() {
        let inputs: Vec<String> = action
            .inputs
            .iter()
            .map(|(name, table)| format!("{} = <code>{}</code>", escape(name), escape(table)))
            .collect();
        field("Inputs", inputs.join("<br>"));
    }
    field(
        "Approved script",
        format!("<code>{}</code>", escape(&action.script)),
    );
    field("Started", optional_time(action.started_at));
    field("Finished", optional_time(action.finished_at));
    card.push_str("</dl>\n");
    if action.outputs.is_empty() {
        card.push_str("<p class=\"muted\">No outputs.</p>\n");
    } else {
        card.push_str(
            "<table class=\"list outputs\"><thead><tr><th>Output</th><th>Privacy level</th>\
             <th>What it is</th></tr></thead><tbody>\n",
        );
        for output in &action.outputs {
            card.push_str(&render_output(output));
            card.push('\n');
        }
        card.push_str("</tbody></table>\n");
    }
    card.push_str("</div>\n");
    card
}

/// A job request page's body, as of `now` (for the runtime of a job still
/// running).
pub fn render_job(job: &JobView, now: u64) -> String {
    let mut body = format!(
        "<h1>Job request: <code id=\"job-id\">{id}</code></h1>\n\
         <dl class=\"fields\">\n<dt>Workspace</dt><dd id=\"workspace\">{workspace}</dd>\n\
         <dt>ID</dt><dd><code>{id}</code></dd>\n</dl>\n\
         <p>This page shows the technical details of what happened when the user \
         <strong>{requester}</strong> requested one or more actions to be run on production \
         tables held, secret-shared, by the deployment's three nodes. Each action runs an \
         approved script; no node ever sees a value.</p>\n\
         <p>By cross-referencing the list of actions with the pipeline below, you can see the \
         privacy level each output was written to. The levels are:</p>\n<ul>\n\
         <li><code>highly_sensitive</code><ul><li>Secret tables that stay on the three \
         nodes as shares.</li><li>Nobody can view them; researchers can only request approved \
         scripts that compute on them.</li></ul></li>\n\
         <li><code>moderately_sensitive</code><ul><li>Aggregates that passed their thresholds \
         and the release policy, encrypted to the requester.</li><li>Only the requester's \
         client can open them; neither the nodes nor this portal hold the values.</li></ul>\
         </li>\n</ul>\n",
        id = escape(&job.id),
        workspace = escape(&job.workspace),
        requester = escape(&job.requester_name),
    );
    body.push_str("<h2>Actions</h2>\n");
    if job.actions.is_empty() {
        body.push_str("<p class=\"muted\">No actions.</p>\n");
    }
    for action in &job.actions {
        body.push_str(&render_action(action));
    }
    let _ = write!(
        body,
        "<h2>Pipeline</h2>\n<details id=\"pipeline\"><summary>Show triad.yaml</summary>\n\
         <pre><code>{}</code></pre>\n</details>\n",
        escape(&job.pipeline)
    );
    let _ = write!(
        body,
        "<h2>Timeline</h2>\n<dl class=\"fields\" id=\"timeline\">\n\
         <dt>Created</dt><dd id=\"created\">{}</dd>\n\
         <dt>Started</dt><dd id=\"started\">{}</dd>\n\
         <dt>Finished</dt><dd id=\"finished\">{}</dd>\n\
         <dt>Runtime</dt><dd id=\"runtime\">{}</dd>\n</dl>\n\
         <p class=\"muted\">Times are UTC, as the nodes recorded them.</p>\n",
        utc(job.created_at),
        optional_time(job.started_at),
        optional_time(job.finished_at),
        job.runtime(now).map(hms).unwrap_or_else(|| "-".into()),
    );
    let requested: Vec<String> = job
        .requested
        .iter()
        .map(|a| format!("<li><code>{}</code></li>", escape(a)))
        .collect();
    let reason = job
        .reason
        .map(|r| format!(" (<code>{}</code>)", escape(r.as_str())))
        .unwrap_or_default();
    let _ = write!(
        body,
        "<h2>Job request</h2>\n<dl class=\"fields\" id=\"request\">\n\
         <dt>Status</dt><dd id=\"status\">{status}{reason}</dd>\n\
         <dt>Requested by</dt><dd id=\"requester\">{name} <span class=\"muted\">(key \
         <code>{key}</code>)</span></dd>\n\
         <dt>Force run dependencies</dt><dd id=\"force\">{force}</dd>\n\
         <dt>Requested actions</dt><dd><ul id=\"requested\">{requested}</ul></dd>\n\
         <dt>Pipeline digest</dt><dd><code>{digest}</code></dd>\n</dl>\n",
        status = status_badge(job.status),
        name = escape(&job.requester_name),
        key = escape(&job.requester),
        force = if job.force_run_dependencies {
            "Yes"
        } else {
            "No"
        },
        requested = requested.join(""),
        digest = escape(&job.pipeline_digest),
    );
    body
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use triad_node::jobs::FailReason;

    use super::*;

    /// A two-action job: a stored merge, then sums that failed their
    /// threshold, with hostile text in every free field.
    pub(crate) fn fixture() -> JobView {
        let handle = "ab".repeat(32).parse().unwrap();
        JobView {
            id: "0123456789abcdef".into(),
            workspace: "mechanical-valve <b>".into(),
            requester: "cd".repeat(32),
            requester_name: "Louis <script>".into(),
            pipeline: "version: 1\nactions:\n  merge: {script: <x>}\n".into(),
            pipeline_digest: "ef".repeat(32),
            requested: vec!["sums".into()],
            force_run_dependencies: false,
            status: JobStatus::Failed,
            reason: Some(FailReason::ThresholdNotMet),
            created_at: 1_700_000_000,
            started_at: Some(1_700_000_010),
            finished_at: Some(1_700_000_033),
            actions: vec![
                ActionView {
                    name: "merge".into(),
                    needs: vec![],
                    script: "11".repeat(32),
                    digest: "22".repeat(32),
                    status: JobStatus::Succeeded,
                    reason: None,
                    message: None,
                    steps: 1,
                    steps_done: 1,
                    started_at: Some(1_700_000_010),
                    finished_at: Some(1_700_000_020),
                    outputs: vec![OutputView {
                        name: "merged".into(),
                        level: Level::HighlySensitive,
                        handle: Some(handle),
                        sealed: vec![],
                        rule: None,
                    }],
                    stored: BTreeMap::from([(0, handle)]),
                    inputs: BTreeMap::from([("party1".to_string(), "aa".repeat(32))]),
                },
                ActionView {
                    name: "sums".into(),
                    needs: vec!["merge".into()],
                    script: "33".repeat(32),
                    digest: "44".repeat(32),
                    status: JobStatus::Failed,
                    reason: Some(FailReason::ThresholdNotMet),
                    message: Some("step 2: threshold not met <i>".into()),
                    steps: 4,
                    steps_done: 2,
                    started_at: Some(1_700_000_020),
                    finished_at: Some(1_700_000_033),
                    outputs: vec![OutputView {
                        name: "sums".into(),
                        level: Level::ModeratelySensitive,
                        handle: None,
                        sealed: vec!["55".repeat(32), "66".repeat(32)],
                        rule: Some(
                            "counts <= 7 redacted; counts rounded to the nearest 5; threshold >= 3"
                                .into(),
                        ),
                    }],
                    stored: BTreeMap::new(),
                    inputs: BTreeMap::from([("merged".to_string(), "merge.merged".into())]),
                },
            ],
        }
    }

    #[test]
    fn a_job_page_shows_every_field_escaped() {
        let job = fixture();
        let html = render_job(&job, 1_800_000_000);
        for expected in [
            "0123456789abcdef",
            "mechanical-valve &lt;b&gt;",
            "Louis &lt;script&gt;",
            "2023-11-14 22:13:20 UTC",
            "2023-11-14 22:13:53 UTC",
            "<dd id=\"runtime\">00:00:23</dd>",
            "<dd id=\"force\">No</dd>",
            "<li><code>sums</code></li>",
            "threshold_not_met",
            "step 2: threshold not met &lt;i&gt;",
            "2 of 4",
            &"ab".repeat(32),
            "sealed to the requester (2 encrypted results)",
            "release policy: counts &lt;= 7 redacted",
            "highly_sensitive",
            "moderately_sensitive",
            "Show triad.yaml",
            "merge: {script: &lt;x&gt;}",
        ] {
            assert!(html.contains(expected), "{expected:?} missing from\n{html}");
        }
        for raw in ["<b>", "<script>", "<i>", "<x>"] {
            assert!(!html.contains(raw), "{raw:?} unescaped");
        }
        // The digests of sealed ciphertexts are not shown: they are not
        // for people, and nothing of a value is.
        assert!(!html.contains(&"55".repeat(32)));
    }

    #[test]
    fn a_running_job_counts_its_runtime_to_now_and_the_list_links_each_job() {
        let mut job = fixture();
        job.status = JobStatus::Running;
        job.finished_at = None;
        let html = render_job(&job, 1_700_003_610);
        assert!(html.contains("<dd id=\"runtime\">01:00:00</dd>"), "{html}");
        assert!(html.contains("<dd id=\"finished\">-</dd>"), "{html}");
        let list = render_list(&[job], 1_700_003_610);
        assert!(list.contains("href=\"/jobs/0123456789abcdef\""), "{list}");
        assert!(list.contains("running"), "{list}");
        assert!(render_list(&[], 0).contains("No job requests"));
    }

    #[test]
    fn the_directory_source_reads_the_nodes_format() {
        let dir = tempfile::tempdir().unwrap();
        let job = fixture();
        std::fs::write(
            dir.path().join(format!("{}.json", job.id)),
            serde_json::to_vec(&job).unwrap(),
        )
        .unwrap();
        let source = DirJobSource::new(dir.path());
        assert_eq!(source.jobs().unwrap(), vec![job.clone()]);
        assert_eq!(source.job(&job.id).unwrap(), job);
        assert!(matches!(
            source.job("ffffffffffffffff"),
            Err(PortalError::NotFound(_))
        ));
        assert!(NoJobSource.jobs().is_err());
    }
}
