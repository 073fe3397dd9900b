//! The portal in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), the portal serving on loopback in this
//! process, and for approvals a real three-node cluster (in this process
//! too) on which the recorded script is made and the approved one run.
//!
//! These tests need Debian's `chromium` and `chromium-driver` packages
//! (`.ci/run` installs them); without them they fail and say so.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::{ClientBuilder, Locator};
use triad_auth::{DeploymentId, Role, RoleUser, RolesDocument, SignedRoles, UserKey};
use triad_client::cluster::LocalCluster;
use triad_client::prelude::*;
use triad_client::schema::Schema;
use triad_client::script::ApprovedFile;
use triad_client::table::read_table;
use triad_client::{ConnectionFile, UploadOptions, seed};
use triad_portal::{Config, Portal, RunningPortal};

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(30);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `name` on the PATH, or in /usr/bin.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

const INSTALL: &str = "the portal's browser tests drive headless Chromium through chromedriver; \
     install them with `apt-get install chromium chromium-driver` (.ci/run does)";

/// A chromedriver process on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(log: &Path) -> Driver {
        let program = find_program(&["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver was not found: {INSTALL}"));
        let port = free_port();
        let log = std::fs::File::create(log).unwrap();
        // In a process group of its own, which the browsers it starts
        // join, so that dropping the driver ends them too, even when a
        // test failed before closing its session.
        let child = Command::new(&program)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} did not start ({e}): {INSTALL}", program.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium with a fresh profile, and the chromedriver that
/// drives it.
struct Browser {
    client: fantoccini::Client,
    base: String,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(portal: &RunningPortal, logs: &Path) -> Browser {
        let chromium = find_program(&["chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("chromium was not found: {INSTALL}"));
        let driver = Driver::start(logs);
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                // Without the background-networking flags Chromium keeps
                // trying to reach services this machine cannot.
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        Browser {
            client,
            base: portal.url(),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let source = self.client.source().await.unwrap_or_default();
                panic!("{css:?} did not appear ({e}); the page is:\n{source}");
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    /// Waits until the element `css` contains `expected`.
    async fn wait_text(&self, css: &str, expected: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
                && text.contains(expected)
            {
                return text;
            }
            if Instant::now() > deadline {
                let source = self.client.source().await.unwrap_or_default();
                panic!("{css:?} never showed {expected:?}; the page is:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs in by choosing `key_file` on the sign-in page.
    async fn sign_in(&self, key_file: &Path) {
        self.goto("/login").await;
        self.wait_for("#key-file")
            .await
            .send_keys(&key_file.display().to_string())
            .await
            .unwrap();
        self.wait_for("#sign-in").await.click().await.unwrap();
    }

    /// Saves a screenshot as `NAME.png` in the directory
    /// `TRIAD_PORTAL_SCREENSHOTS` names, when it is set: for looking at
    /// the pages as a person sees them.
    async fn snapshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("TRIAD_PORTAL_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes a portal configuration into `dir` and loads it, as the binary
/// would.
fn portal_config(
    dir: &Path,
    deployment: &DeploymentId,
    operators: [String; 3],
    roles: &Path,
    sources: &str,
) -> Config {
    let recordings = dir.join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndeployment = \"{deployment}\"\nroles = \"{}\"\n\
         operator_public_keys = [\"{}\", \"{}\", \"{}\"]\nrecordings = \"recordings\"\n{sources}\n",
        roles.display(),
        operators[0],
        operators[1],
        operators[2],
    );
    let path = dir.join("portal.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn start(config: Config) -> RunningPortal {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    triad_portal::spawn(Portal::new(config).unwrap(), listen).unwrap()
}

/// A deployment without nodes: operator keys, a signed roles document,
/// and user key files in `dir`.
fn local_deployment(
    dir: &Path,
    users: &[(&str, Role)],
    revoked: &[&str],
) -> (DeploymentId, [String; 3]) {
    let deployment = DeploymentId::from_bytes([42; 32]);
    let mut document = RolesDocument::new(deployment, 1);
    for (name, role) in users {
        let key = UserKey::generate().unwrap();
        key.save(&dir.join(format!("{name}.key"))).unwrap();
        document.users.push(RoleUser {
            name: name.to_string(),
            public_key: key.public(),
            roles: vec![*role],
        });
        if revoked.contains(name) {
            document.revoked_keys.push(key.public());
        }
    }
    let operators = [0, 1, 2].map(|_| UserKey::generate().unwrap());
    let mut signed = SignedRoles::unsigned(document);
    for (node, key) in operators.iter().enumerate() {
        signed.sign(node as u8, key);
    }
    signed.save(&dir.join("roles.toml")).unwrap();
    (deployment, operators.map(|k| k.public().to_string()))
}

#[test]
fn unknown_and_revoked_keys_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (deployment, operators) = local_deployment(
        root,
        &[("ann", Role::Approver), ("old", Role::Approver)],
        &["old"],
    );
    UserKey::generate()
        .unwrap()
        .save(&root.join("stranger.key"))
        .unwrap();
    let portal = start(portal_config(
        root,
        &deployment,
        operators,
        &root.join("roles.toml"),
        "",
    ));
    runtime().block_on(async {
        let browser = Browser::open(&portal, &root.join("chromedriver.log")).await;

        // Pages need a session: the visitor is sent to sign in.
        browser.goto("/recordings").await;
        browser.wait_for("#login-form").await;

        browser.sign_in(&root.join("stranger.key")).await;
        let message = browser
            .wait_text("#message.error", "not a user of this deployment")
            .await;
        assert!(message.contains("sign-in refused"), "{message}");

        browser.sign_in(&root.join("old.key")).await;
        browser.wait_text("#message.error", "revoked").await;
        browser.snapshot("revoked").await;

        // Not a key file at all: refused in the browser, nothing sent.
        browser.sign_in(&root.join("roles.toml")).await;
        browser
            .wait_text("#message.error", "not a triad key file")
            .await;

        // Still signed out.
        browser.goto("/recordings").await;
        browser.wait_for("#login-form").await;

        // A known key signs in; the session cookie is out of scripts'
        // reach.
        browser.sign_in(&root.join("ann.key")).await;
        assert_eq!(browser.text("#viewer").await, "ann");
        let cookies = browser
            .client
            .execute("return document.cookie", vec![])
            .await
            .unwrap();
        assert_eq!(cookies, serde_json::json!(""));
        browser.close().await;
    });
}

/// A job record like the nodes keep, with text that must be escaped.
fn job_fixture() -> triad_node::jobs::JobView {
    use std::collections::BTreeMap;
    use triad_node::jobs::{ActionView, FailReason, JobStatus, JobView, Level, OutputView};
    let handle: Handle = "ab".repeat(32).parse().unwrap();
    let action = |name: &str, needs: Vec<String>, status, outputs| ActionView {
        name: name.into(),
        needs,
        script: "11".repeat(32),
        digest: "22".repeat(32),
        status,
        reason: None,
        message: None,
        steps: 2,
        steps_done: 2,
        started_at: Some(1_700_000_010),
        finished_at: Some(1_700_000_033),
        outputs,
        stored: BTreeMap::new(),
        inputs: BTreeMap::new(),
    };
    let mut sums = action(
        "monthly_sums",
        vec!["merge_tables".into()],
        JobStatus::Failed,
        vec![OutputView {
            name: "sums".into(),
            level: Level::ModeratelySensitive,
            handle: None,
            sealed: vec!["55".repeat(32)],
            rule: None,
        }],
    );
    sums.reason = Some(FailReason::ThresholdNotMet);
    sums.message = Some("step 1: threshold not met".into());
    sums.steps_done = 1;
    JobView {
        id: "0123456789abcdef".into(),
        workspace: "mechanical-valve-anticoag".into(),
        requester: "cd".repeat(32),
        requester_name: "Louis <Fisher>".into(),
        pipeline: "version: 1\nactions:\n  merge_tables:\n    script: merge.approved\n".into(),
        pipeline_digest: "ef".repeat(32),
        requested: vec!["monthly_sums".into()],
        force_run_dependencies: false,
        status: JobStatus::Failed,
        reason: Some(FailReason::ThresholdNotMet),
        created_at: 1_700_000_000,
        started_at: Some(1_700_000_010),
        finished_at: Some(1_700_000_033),
        actions: vec![
            action(
                "merge_tables",
                Vec::new(),
                JobStatus::Succeeded,
                vec![OutputView {
                    name: "merged".into(),
                    level: Level::HighlySensitive,
                    handle: Some(handle),
                    sealed: Vec::new(),
                    rule: None,
                }],
            ),
            sums,
        ],
    }
}

#[test]
fn a_job_request_page_shows_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (deployment, operators) = local_deployment(root, &[("louis", Role::Analyst)], &[]);
    let jobs = root.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let job = job_fixture();
    std::fs::write(
        jobs.join(format!("{}.json", job.id)),
        serde_json::to_vec(&job).unwrap(),
    )
    .unwrap();
    let portal = start(portal_config(
        root,
        &deployment,
        operators,
        &root.join("roles.toml"),
        "jobs_dir = \"jobs\"",
    ));
    runtime().block_on(async {
        let browser = Browser::open(&portal, &root.join("chromedriver.log")).await;
        browser.sign_in(&root.join("louis.key")).await;
        browser.wait_for("#viewer").await;
        browser.goto("/jobs").await;
        browser
            .wait_for("#jobs a[href='/jobs/0123456789abcdef']")
            .await
            .click()
            .await
            .unwrap();
        assert_eq!(browser.text("#job-id").await, "0123456789abcdef");
        assert_eq!(
            browser.text("#workspace").await,
            "mechanical-valve-anticoag"
        );
        assert!(browser.text("#status").await.contains("failed"));
        assert!(browser.text("#status").await.contains("threshold_not_met"));
        assert!(browser.text("#requester").await.contains("Louis <Fisher>"));
        assert_eq!(browser.text("#force").await, "No");
        assert_eq!(browser.text("#requested").await, "monthly_sums");
        assert_eq!(browser.text("#created").await, "2023-11-14 22:13:20 UTC");
        assert_eq!(browser.text("#finished").await, "2023-11-14 22:13:53 UTC");
        assert_eq!(browser.text("#runtime").await, "00:00:23");
        let merge = browser.text("#action-merge_tables").await;
        assert!(merge.contains("succeeded"), "{merge}");
        assert!(merge.contains("highly_sensitive"), "{merge}");
        assert!(merge.contains(&"ab".repeat(32)), "{merge}");
        let sums = browser.text("#action-monthly_sums").await;
        assert!(sums.contains("moderately_sensitive"), "{sums}");
        assert!(sums.contains("sealed to the requester"), "{sums}");
        assert!(sums.contains("1 of 2"), "{sums}");
        assert!(sums.contains("step 1: threshold not met"), "{sums}");
        // The pipeline is folded away until asked for.
        let pipeline = browser.wait_for("#pipeline pre").await;
        assert!(!pipeline.is_displayed().await.unwrap());
        browser
            .wait_for("#pipeline summary")
            .await
            .click()
            .await
            .unwrap();
        assert!(
            browser
                .text("#pipeline pre")
                .await
                .contains("script: merge.approved")
        );
        browser.snapshot("job").await;

        browser.goto("/jobs/ffffffffffffffff").await;
        browser.wait_text("#error", "no job request").await;
        browser.close().await;
    });
}

/// Three nodes serving in this process, with the cluster's directories.
struct Cluster {
    root: PathBuf,
    cluster: LocalCluster,
    _nodes: Vec<triad_node::server::Node>,
}

impl Cluster {
    fn start(root: &Path, users: &[(&str, Role)]) -> Cluster {
        let mut admitted = Vec::new();
        for (name, role) in users {
            let key = UserKey::generate().unwrap();
            key.save(&root.join(format!("{name}.key"))).unwrap();
            admitted.push((name.to_string(), key.public().to_string(), vec![*role]));
        }
        // The program is never run: the nodes serve in this process.
        let mut cluster = LocalCluster::create(
            &root.join("cluster"),
            Path::new("unused"),
            &admitted,
            &root.join(format!("{}.key", users[0].0)),
        )
        .unwrap();
        let nodes = (0..3)
            .map(|i| {
                let config = triad_node::config::Config::load(cluster.config(i)).unwrap();
                triad_node::server::Node::start(config).unwrap()
            })
            .collect();
        cluster.wait_ready(Duration::from_secs(60)).unwrap();
        Cluster {
            root: root.to_owned(),
            cluster,
            _nodes: nodes,
        }
    }

    fn connect(&self, name: &str) -> Client {
        let mut file = ConnectionFile::load(&self.cluster.connection_path()).unwrap();
        file.key = self.root.join(format!("{name}.key"));
        Client::connect(&file).unwrap()
    }

    fn deployment(&self) -> DeploymentId {
        ConnectionFile::load(&self.cluster.connection_path())
            .unwrap()
            .deployment
            .parse()
            .unwrap()
    }

    fn operators(&self) -> [String; 3] {
        [0, 1, 2].map(|i| {
            std::fs::read_to_string(self.root.join(format!("cluster/node{i}/operator.pub")))
                .unwrap()
                .trim()
                .to_owned()
        })
    }
}

/// The script both recordings and the production run share: a count and
/// a sum behind threshold gates.
fn study(client: &Client, table: &Handle, month: i64) -> Result<(Value, Value), ClientError> {
    let frame = client.frame(table)?;
    let count = frame
        .filter(col("condition_x").eq(lit(1)).with_threshold(3))
        .count()?;
    let sum = frame
        .filter(col("month").gt(lit(month)).with_threshold(3))
        .sum("condition_x")?;
    Ok((count, sum))
}

#[test]
fn an_approver_reads_the_steps_and_approves_and_another_recording_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cluster = Cluster::start(
        root,
        &[
            ("hospital", Role::Owner),
            ("analyst", Role::Analyst),
            ("approver", Role::Approver),
            // The portal's own key: it reads job records, which any user
            // may; owner is the role that lets it do least here.
            ("portal", Role::Owner),
        ],
    );

    // A production table, a dummy standing for it, and two recordings.
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let tables = seed::write_demo_tables(&data, 200, 3).unwrap();
    let hospital = cluster.connect("hospital");
    let production = hospital
        .upload_with(
            &read_table(&tables[0].0, Some(&Schema::load(&tables[0].1).unwrap())).unwrap(),
            &UploadOptions::default(),
        )
        .unwrap()
        .handle;
    let analyst = cluster.connect("analyst");
    let schema = analyst.get_table(&production).unwrap().schema;
    let dummy = analyst
        .upload_with(
            &seed::dummy_table(&schema, 200, 7).unwrap(),
            &UploadOptions {
                dummy_for: Some(production),
                approvers: Vec::new(),
            },
        )
        .unwrap()
        .handle;
    let config = portal_config(
        root,
        &cluster.deployment(),
        cluster.operators(),
        &root.join("cluster/roles.toml"),
        &format!(
            "connection = \"{}\"\nkey = \"portal.key\"",
            cluster.cluster.connection_path().display()
        ),
    );
    let recordings = config.recordings.clone();
    // One recording placed in the portal's directory, one submitted
    // through the upload page.
    analyst.record("portal-study").unwrap();
    study(&analyst, &dummy, 6).unwrap();
    analyst
        .end(&recordings.join("portal-study.recording"))
        .unwrap();
    let elsewhere = root.join("other study.recording");
    analyst.record("other study").unwrap();
    study(&analyst, &dummy, 2).unwrap();
    analyst.end(&elsewhere).unwrap();

    let portal = start(config);
    let approver_key = UserKey::load(&root.join("approver.key")).unwrap().public();
    runtime().block_on(async {
        let browser = Browser::open(&portal, &root.join("chromedriver-approver.log")).await;
        browser.sign_in(&root.join("approver.key")).await;
        assert_eq!(browser.text("#viewer").await, "approver");

        // The pending recording, its steps as the nodes will check them.
        browser.goto("/recordings").await;
        browser
            .wait_for("#pending a[href='/recordings/portal-study']")
            .await
            .click()
            .await
            .unwrap();
        assert_eq!(browser.text("#recording-name").await, "portal-study");
        assert!(browser.text("#status").await.contains("pending"));
        assert!(browser.text("#analyst").await.contains("analyst"));
        assert_eq!(
            browser.text("#handles").await,
            production.to_string(),
            "the production table, not the dummy"
        );
        for step in ["#step-0", "#step-1"] {
            let shown = browser.text(step).await;
            assert!(shown.contains(&production.to_string()), "{shown}");
            assert!(shown.contains("condition_x"), "{shown}");
            assert!(shown.contains("On dummy data"), "{shown}");
            assert!(shown.contains("passed"), "{shown}");
        }
        assert!(browser.text("#step-1 .plan").await.contains("month"));
        browser.snapshot("recording").await;

        // Approve for 10 days with the key file chosen again.
        let days = browser.wait_for("#days").await;
        days.clear().await.unwrap();
        days.send_keys("10").await.unwrap();
        browser
            .wait_for("#approve-key-file")
            .await
            .send_keys(&root.join("approver.key").display().to_string())
            .await
            .unwrap();
        browser.wait_for("#approve").await.click().await.unwrap();
        browser.wait_text("#status", "approved").await;
        browser.snapshot("approved").await;
        assert!(browser.text("#approvals").await.contains("approver"));
        browser.close().await;
    });

    // On disk: the .approved file `triad approve` would write, with the
    // approver's signature.
    let approved_path = recordings.join("portal-study.approved");
    let (file, approved, _) = ApprovedFile::load(&approved_path).unwrap();
    assert_eq!(file.approvals.len(), 1);
    let approval = &approved.approvals[0].approval;
    assert_eq!(approval.approver, approver_key);
    let expected_expiry = now() + 10 * 86_400;
    assert!(approval.expires_at.abs_diff(expected_expiry) < 120);
    approved
        .check(&cluster.deployment(), &[production.to_string()], now())
        .unwrap();

    // The nodes accept it: the analyst runs the script unchanged on the
    // production table.
    analyst.load(&approved_path).unwrap();
    let (count, _) = study(&analyst, &production, 6).unwrap();
    assert!(count.as_i64().unwrap() > 0, "{count:?}");
    analyst.close_script().unwrap();

    // The same script as a one-action pipeline, run as a job request:
    // its page comes from the nodes' records.
    let pipeline = recordings.join("triad.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "version: 1\nactions:\n  study:\n    script: portal-study.approved\n    inputs:\n      table: {production}\n    outputs:\n      moderately_sensitive:\n        counts: aggregates\n"
        ),
    )
    .unwrap();
    let submission =
        triad_client::jobs::submission(&pipeline, "portal-study", &["study".into()], false)
            .unwrap();
    let job = analyst.submit_job(&submission).unwrap();
    let (job, released) =
        triad_client::jobs::run_job(&analyst, &job, &submission, &root.join("released")).unwrap();
    assert_eq!(
        job.status,
        triad_node::jobs::JobStatus::Succeeded,
        "{job:#?}"
    );
    assert_eq!(released.len(), 2);

    runtime().block_on(async {
        // The analyst submits the other recording on the upload page.
        let browser = Browser::open(&portal, &root.join("chromedriver-analyst.log")).await;
        browser.sign_in(&root.join("analyst.key")).await;
        assert_eq!(browser.text("#viewer").await, "analyst");
        browser.goto("/upload").await;
        browser
            .wait_for("#recording-file")
            .await
            .send_keys(&elsewhere.display().to_string())
            .await
            .unwrap();
        browser.wait_for("#submit").await.click().await.unwrap();
        browser.wait_text("#recording-name", "other study").await;
        // Analysts cannot decide.
        assert!(
            browser
                .client
                .find(Locator::Id("approve-form"))
                .await
                .is_err()
        );
        browser.close().await;

        // The approver rejects it, saying why.
        let browser = Browser::open(&portal, &root.join("chromedriver-reject.log")).await;
        browser.sign_in(&root.join("approver.key")).await;
        browser.wait_for("#viewer").await;
        browser.goto("/recordings/other-study").await;
        browser
            .wait_for("#reason")
            .await
            .send_keys("month > 2 leaves too few rows in <small> sites")
            .await
            .unwrap();
        browser.wait_for("#reject").await.click().await.unwrap();
        browser.wait_text("#status", "rejected").await;
        browser.snapshot("rejected").await;
        assert_eq!(
            browser.text("#reason").await,
            "month > 2 leaves too few rows in <small> sites"
        );
        browser.goto("/recordings").await;
        browser
            .wait_for("#rejected a[href='/recordings/other-study']")
            .await;
        browser.wait_for("#pending-none").await;

        // Job records come from the nodes, under the portal's own key.
        browser.goto("/jobs").await;
        browser.wait_text("h1", "Job requests").await;
        assert!(browser.client.find(Locator::Id("error")).await.is_err());
        browser
            .wait_for(&format!("#jobs a[href='/jobs/{}']", job.id))
            .await
            .click()
            .await
            .unwrap();
        assert_eq!(browser.text("#job-id").await, job.id);
        assert_eq!(browser.text("#workspace").await, "portal-study");
        assert!(browser.text("#status").await.contains("succeeded"));
        assert!(browser.text("#requester").await.contains("analyst"));
        assert_eq!(browser.text("#requested").await, "study");
        let action = browser.text("#action-study").await;
        assert!(action.contains("succeeded"), "{action}");
        assert!(action.contains("moderately_sensitive"), "{action}");
        assert!(action.contains("sealed to the requester"), "{action}");
        assert!(
            action.contains("release policy: counts <= 7 redacted"),
            "{action}"
        );
        browser.snapshot("real-job").await;
        browser.close().await;
    });

    let rejection: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(recordings.join("other-study.rejected")).unwrap(),
    )
    .unwrap();
    assert_eq!(rejection["rejected_by"], approver_key.to_string());
    assert_eq!(rejection["rejected_by_name"], "approver");
    let log = std::fs::read_to_string(recordings.join("decisions.log")).unwrap();
    let decisions: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(decisions.len(), 2, "{log}");
    assert_eq!(decisions[0]["decision"], "approved");
    assert_eq!(decisions[0]["recording"], "portal-study");
    assert_eq!(decisions[1]["decision"], "rejected");
    assert_eq!(decisions[1]["by"], approver_key.to_string());
}
