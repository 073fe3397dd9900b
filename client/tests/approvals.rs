//! Design to production against three real node processes: dummy tables,
//! a recorded script, approvals, the approved script run unchanged on the
//! production tables (checked against polars), and every deviation refused
//! by the nodes with `NoMatchingAuthorization` before anything runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use triad_auth::{Approval, ApprovedScript, DeploymentId, Mode, SCRIPT_VERSION};
use triad_client::prelude::*;
use triad_client::schema::Schema;
use triad_client::script::{self, ApprovedFile};
use triad_client::table::read_table;
use triad_client::{ConnectionFile, UploadOptions, seed};
use triad_node::audit;
use triad_node::config::{Config, Role};

mod common;

use common::Fixture;

const PEOPLE: [(&str, Role); 7] = [
    ("hospital", Role::Owner),
    ("pharmacy", Role::Owner),
    ("clinic", Role::Owner),
    ("analyst", Role::Analyst),
    ("intruder", Role::Analyst),
    ("approver", Role::Approver),
    ("approver2", Role::Approver),
];

/// The seed-shaped tables these tests start from.
trait Seeded {
    fn hospital_table(&self, rows: usize, seed: u64) -> (Client, Handle);
    fn generated_dummy(&self, client: &Client, production: &Handle, rows: usize) -> Handle;
}

impl Seeded for Fixture {
    /// Writes seed-shaped tables of `rows` rows and uploads party 1's as
    /// the hospital's production table.
    fn hospital_table(&self, rows: usize, seed: u64) -> (Client, Handle) {
        let data = self.root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let tables = seed::write_demo_tables(&data, rows, seed).unwrap();
        let hospital = self.connect("hospital");
        let handle = self.upload(
            &hospital,
            &tables[0].0,
            &tables[0].1,
            &UploadOptions::default(),
        );
        (hospital, handle)
    }

    /// A dummy of `rows` generated rows standing for `production`.
    fn generated_dummy(&self, client: &Client, production: &Handle, rows: usize) -> Handle {
        let schema = client.get_table(production).unwrap().schema;
        let options = UploadOptions {
            dummy_for: Some(*production),
            approvers: Vec::new(),
        };
        client
            .upload_with(&seed::dummy_table(&schema, rows, 1).unwrap(), &options)
            .unwrap()
            .handle
    }
}

/// The seed analysis with the parts a deviation changes.
#[derive(Debug, Clone, Copy)]
struct Variant {
    months: [i64; 3],
    threshold: u64,
    column: &'static str,
    greater: bool,
}

const APPROVED: Variant = Variant {
    months: [1, 5, 9],
    threshold: 3,
    column: "condition_y",
    greater: false,
};

fn analysis(
    client: &Client,
    left: &Handle,
    right: &Handle,
    variant: Variant,
) -> Result<Vec<Option<i64>>, ClientError> {
    let merged = client
        .frame(left)?
        .merge(&client.frame(right)?, How::Inner, &seed::SEED_KEYS)
        .store()?;
    let merged = client.frame(&merged)?;
    let mut out = Vec::new();
    for month in variant.months {
        let condition = if variant.greater {
            col("condition_y").gt(lit(0))
        } else {
            col("condition_y").eq(lit(1))
        };
        let selected = merged
            .filter((condition & col("month").eq(lit(month))).with_threshold(variant.threshold));
        match selected.sum(variant.column) {
            Ok(value) => out.push(value.as_i64()),
            Err(ClientError::ThresholdNotMet { .. }) => out.push(None),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `variant` as the approved script `approved` and expects the nodes
/// to refuse it with a message containing `expect`.
fn refused(client: &Client, approved: &Path, tables: [&Handle; 2], variant: Variant, expect: &str) {
    client.load(approved).unwrap();
    refused_loaded(client, tables, variant, expect);
}

fn refused_loaded(client: &Client, tables: [&Handle; 2], variant: Variant, expect: &str) {
    no_match(analysis(client, tables[0], tables[1], variant), expect);
    client.close_script().unwrap();
}

/// Expects `NoMatchingAuthorization` with a message containing `expect`.
fn no_match<T: std::fmt::Debug>(result: Result<T, ClientError>, expect: &str) {
    match result {
        Err(ClientError::NoMatchingAuthorization { message, .. }) => {
            assert!(message.contains(expect), "{message:?} lacks {expect:?}");
        }
        other => panic!("expected NoMatchingAuthorization ({expect}), got {other:?}"),
    }
}

/// Writes `approved` (re-signed by `signers`) as an approved-script file.
fn rewrite_approved(path: &Path, template: &ApprovedFile, approved: &ApprovedScript) -> PathBuf {
    let mut file = template.clone();
    file.approved = hex_encode(&approved.encode());
    let out = path.with_extension("changed.approved");
    std::fs::write(&out, serde_json::to_string(&file).unwrap()).unwrap();
    out
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn recorded_scripts_run_unchanged_and_only_unchanged() {
    let f = Fixture::start(&PEOPLE, |_| {});
    let data = f.root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let tables = seed::write_demo_tables(&data, 400, 11).unwrap();

    // Production tables; the pharmacy's needs approver2's signature too.
    let hospital = f.connect("hospital");
    let pharmacy = f.connect("pharmacy");
    let p1 = f.upload(
        &hospital,
        &tables[0].0,
        &tables[0].1,
        &UploadOptions::default(),
    );
    let approver2 = f.key("approver2").public().to_string();
    let p2 = f.upload(
        &pharmacy,
        &tables[1].0,
        &tables[1].1,
        &UploadOptions {
            dummy_for: None,
            approvers: vec![approver2],
        },
    );
    // A third table with party 1's schema, for the wrong-handle deviation.
    let clinic = f.connect("clinic");
    let p3 = f.upload(
        &clinic,
        &tables[0].0,
        &tables[0].1,
        &UploadOptions::default(),
    );

    // Design mode: dummies; one with another schema is refused, naming it.
    let analyst = f.connect("analyst");
    let dummy_dir = f.root.join("dummy");
    std::fs::create_dir_all(&dummy_dir).unwrap();
    let dummy = seed::write_demo_tables(&dummy_dir, 200, 12).unwrap();
    let dummy_for = |h: Handle| UploadOptions {
        dummy_for: Some(h),
        approvers: Vec::new(),
    };
    let d1 = f.upload(&analyst, &dummy[0].0, &dummy[0].1, &dummy_for(p1));
    let d2 = f.upload(&analyst, &dummy[1].0, &dummy[1].1, &dummy_for(p2));
    let wrong = read_table(&dummy[1].0, Some(&Schema::load(&dummy[1].1).unwrap())).unwrap();
    match analyst.upload_with(&wrong, &dummy_for(p1)) {
        Err(ClientError::Refused { error, .. }) => {
            assert!(error.message.contains("condition"), "{}", error.message)
        }
        other => panic!("{other:?}"),
    }
    // A generated dummy from the public schema has the schema exactly.
    f.generated_dummy(&analyst, &p1, 50);

    // The namespaces do not see each other.
    analyst.set_mode(Mode::Design);
    let design: Vec<Handle> = analyst.tables().unwrap().iter().map(|t| t.handle).collect();
    assert!(design.contains(&d1) && !design.contains(&p1));
    assert!(analyst.frame(&p1).is_err());
    analyst.set_mode(Mode::Authorized);
    let production: Vec<Handle> = analyst.tables().unwrap().iter().map(|t| t.handle).collect();
    assert!(production.contains(&p1) && !production.contains(&d1));

    // Without a script, an analyst gets nothing from production tables.
    no_match(analyst.frame(&p1).unwrap().count(), "no approved script");

    // Record on the dummies; months may fail their gates there.
    let recording = f.root.join("seed.recording");
    analyst.record("seed").unwrap();
    let on_dummies = analyst
        .allow_errors(|| analysis(&analyst, &d1, &d2, APPROVED))
        .unwrap();
    let shown = analyst.end(&recording).unwrap();
    assert_eq!(shown.steps.len(), 4);
    assert_eq!(shown.steps[0].inputs, vec![p1.to_string(), p2.to_string()]);
    assert_eq!(shown.steps[1].inputs, vec!["step:0".to_string()]);
    for (step, value) in shown.steps[1..].iter().zip(&on_dummies) {
        match value {
            Some(v) => assert_eq!(step.dummy_output["value"], v.to_string()),
            None => assert_eq!(step.dummy_output["error"], "threshold not met"),
        }
    }

    // One approval is not enough: the pharmacy's table needs approver2.
    let approved = f.root.join("seed.approved");
    script::approve(&recording, &approved, &f.key("approver"), now() + 3600).unwrap();
    refused(
        &analyst,
        &approved,
        [&p1, &p2],
        APPROVED,
        "needs the approval",
    );
    script::approve(&approved, &approved, &f.key("approver2"), now() + 3600).unwrap();

    // The approved script, unchanged, on production: equals polars.
    analyst.load(&approved).unwrap();
    let results = analyst
        .allow_errors(|| analysis(&analyst, &p1, &p2, APPROVED))
        .unwrap();
    analyst.close_script().unwrap();
    let clear = seed::seed_analysis_clear(&tables[0].0, &tables[1].0, &seed::SEED_MONTHS).unwrap();
    let clear: Vec<Option<i64>> = clear.into_iter().map(|(_, v)| v).collect();
    assert_eq!(results, clear);
    // The merge the script stored belongs to the analyst, who still cannot
    // query it outside the script.
    let owner = hex_encode(f.key("analyst").public().as_bytes());
    let stored: Vec<Handle> = analyst
        .tables()
        .unwrap()
        .iter()
        .filter(|t| t.owner == owner)
        .map(|t| t.handle)
        .collect();
    assert!(!stored.is_empty());
    for handle in &stored {
        no_match(analyst.frame(handle).unwrap().count(), "no approved script");
    }
    // It can run again after closing.
    analyst.load(&approved).unwrap();
    assert_eq!(analysis(&analyst, &p1, &p2, APPROVED).unwrap(), clear);

    // One step more than recorded: the run ended with the last step.
    no_match(analyst.frame(&p1).unwrap().count(), "extra");
    analyst.close_script().unwrap();

    // Each deviation, refused at the step where it starts.
    let t = [&p1, &p2];
    let mut other_month = APPROVED;
    other_month.months[1] = 6;
    refused(&analyst, &approved, t, other_month, "recorded 5, sent 6");
    let mut other_threshold = APPROVED;
    other_threshold.threshold = 2;
    refused(
        &analyst,
        &approved,
        t,
        other_threshold,
        "recorded 3, sent 2",
    );
    let mut other_column = APPROVED;
    other_column.column = "condition_x";
    refused(&analyst, &approved, t, other_column, "condition_x");
    let mut other_operator = APPROVED;
    other_operator.greater = true;
    refused(&analyst, &approved, t, other_operator, "step 1");
    refused(&analyst, &approved, [&p3, &p2], APPROVED, "step 0");
    // Reordered: the months in another order.
    let mut reordered = APPROVED;
    reordered.months = [5, 1, 9];
    refused(&analyst, &approved, t, reordered, "step 1");
    // A step skipped: straight to the months, without the merge.
    analyst.load(&approved).unwrap();
    no_match(
        analyst
            .frame(&p1)
            .unwrap()
            .filter(col("condition_x").eq(lit(1)))
            .sum("condition_x"),
        "step 0",
    );
    analyst.close_script().unwrap();

    // Another analyst presenting the approval (a modified client that
    // skips the client's own check).
    let (template, approved_script, bytes) = ApprovedFile::load(&approved).unwrap();
    let intruder = f.connect("intruder");
    intruder
        .load_approved(&approved_script, bytes.clone())
        .unwrap();
    refused_loaded(&intruder, t, APPROVED, "recorded by");

    // A tampered approval: a later expiry without a new signature.
    let mut tampered = approved_script.clone();
    tampered.approvals[0].approval.expires_at += 1;
    analyst.load_approved(&tampered, tampered.encode()).unwrap();
    refused_loaded(&analyst, t, APPROVED, "signature");

    // An expired approval, properly signed.
    let resign = |script: &ApprovedScript, expires_at: u64, deployment: DeploymentId| {
        let mut out = script.clone();
        out.script.deployment = deployment;
        out.approvals = ["approver", "approver2"]
            .iter()
            .map(|name| {
                Approval {
                    version: SCRIPT_VERSION,
                    script: out.script.digest(),
                    analyst: out.script.analyst,
                    handles: script.approvals[0].approval.handles.clone(),
                    deployment,
                    expires_at,
                    approver: f.key(name).public(),
                }
                .sign(&f.key(name))
                .unwrap()
            })
            .collect();
        out
    };
    let deployment = approved_script.script.deployment;
    let expired = resign(&approved_script, now() - 60, deployment);
    analyst.load_approved(&expired, expired.encode()).unwrap();
    refused_loaded(&analyst, t, APPROVED, "expired");

    // Recorded and approved for another deployment.
    let elsewhere = resign(
        &approved_script,
        now() + 3600,
        DeploymentId::from_bytes([7; 32]),
    );
    let path = rewrite_approved(&approved, &template, &elsewhere);
    assert!(
        analyst.load(&path).is_err(),
        "the file no longer matches its recording"
    );
    analyst
        .load_approved(&elsewhere, elsewhere.encode())
        .unwrap();
    refused_loaded(&analyst, t, APPROVED, "deployment");

    // A failed threshold outside allow_errors stops the script.
    let strict = f.root.join("strict.recording");
    analyst.record("strict").unwrap();
    let huge = |client: &Client, table: &Handle| {
        client
            .frame(table)
            .unwrap()
            .filter(col("condition_x").eq(lit(1)).with_threshold(1_000_000))
            .sum("condition_x")
    };
    assert!(huge(&analyst, &d1).unwrap_err().is_threshold_not_met());
    analyst.frame(&d1).unwrap().count().unwrap();
    analyst.end(&strict).unwrap();
    let strict_ok = f.root.join("strict.approved");
    script::approve(&strict, &strict_ok, &f.key("approver"), now() + 3600).unwrap();
    analyst.load(&strict_ok).unwrap();
    assert!(huge(&analyst, &p1).unwrap_err().is_threshold_not_met());
    no_match(analyst.frame(&p1).unwrap().count(), "stopped");
    analyst.close_script().unwrap();
    // The same recorded inside allow_errors goes on.
    let lenient = f.root.join("lenient.recording");
    analyst.record("lenient").unwrap();
    analyst.allow_errors(|| assert!(huge(&analyst, &d1).is_err()));
    analyst.frame(&d1).unwrap().count().unwrap();
    analyst.end(&lenient).unwrap();
    let lenient_ok = f.root.join("lenient.approved");
    script::approve(&lenient, &lenient_ok, &f.key("approver"), now() + 3600).unwrap();
    analyst.load(&lenient_ok).unwrap();
    assert!(huge(&analyst, &p1).unwrap_err().is_threshold_not_met());
    assert_eq!(
        analyst.frame(&p1).unwrap().count().unwrap().as_i64(),
        Some(400)
    );
    analyst.close_script().unwrap();

    // Owners still query their own tables without scripts.
    assert_eq!(
        hospital.frame(&p1).unwrap().count().unwrap().as_i64(),
        Some(400)
    );

    // Every request, refusals included, is in all three audit logs, and
    // the logs agree with the heads the nodes signed for each other.
    let mut cluster = f.cluster;
    cluster.stop();
    let configs: Vec<Config> = (0..3)
        .map(|i| Config::load_partial(cluster.config(i)).unwrap())
        .collect();
    let dirs: Vec<(u8, PathBuf)> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u8, audit::audit_dir(&c.data_dir)))
        .collect();
    let operators = configs[0].operator_public_keys().unwrap();
    let deployment = configs[0].deployment;
    let report = audit::cross_verify(deployment, &dirs, &operators).unwrap();
    assert!(
        report.is_clean(),
        "{:?}",
        report.problems().collect::<Vec<_>>()
    );
    let entries: Vec<u64> = report
        .nodes
        .iter()
        .map(|n| n.chain.as_ref().unwrap().entries)
        .collect();
    assert!(
        entries[0] > 50 && entries.iter().all(|e| *e == entries[0]),
        "{entries:?}"
    );
    let log = std::fs::read_to_string(dirs[1].1.join(audit::LOG_FILE)).unwrap();
    assert!(log.contains("NoMatchingAuthorization"));
    // Node 1's operator drops its last entries: its peers' heads show it.
    let kept: Vec<&str> = log.lines().take(entries[1] as usize - 3).collect();
    std::fs::write(dirs[1].1.join(audit::LOG_FILE), kept.join("\n") + "\n").unwrap();
    let report = audit::cross_verify(deployment, &dirs, &operators).unwrap();
    let problems: Vec<_> = report.problems().collect();
    assert!(problems.iter().any(|p| p.node == 1), "{problems:?}");
}

/// Someone who copies a user's signed request and sends it to the nodes
/// first gets the nodes' answers, sealed to the user's result key: nothing
/// they can open. The user's own copy is then a replay.
#[test]
fn a_stolen_signed_request_yields_nothing_usable() {
    use triad_auth::{
        Nonce, REQUEST_VERSION, Request, ResultContext, ResultSecret, Sealed, X25519Public,
    };
    use triad_net::{LinkConfig, NodeLink};
    use triad_node::api::{self, Body, CallHeader, ErrorKind, Reply};

    let f = Fixture::start(&PEOPLE, |_| {});
    let (hospital, handle) = f.hospital_table(50, 5);
    let frame = hospital.frame(&handle).unwrap();
    let (query, _) = frame
        .plan(triad_plan::Output::Aggregate {
            frame: frame.id(),
            aggregation: agg::count(),
            threshold: None,
        })
        .unwrap();
    let body = Body::Query { plan: query };
    let owner = f.key("hospital");
    let secret = ResultSecret::generate().unwrap();
    let request = Request {
        version: REQUEST_VERSION,
        deployment: hospital.deployment(),
        mode: Mode::Authorized,
        body: body.digest(),
        approval: None,
        nonce: Nonce::generate().unwrap(),
        issued_at: now(),
        result_key: secret.public(),
        signer: owner.public(),
    }
    .sign(&owner)
    .unwrap();

    // The thief sends the copied bytes to all three nodes.
    let connection = ConnectionFile::load(&f.cluster.connection_path()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let send_all = |bytes: Vec<u8>| {
        runtime.block_on(async {
            let calls = connection.nodes.clone().into_iter().map(|node| {
                let bytes = bytes.clone();
                let body = body.clone();
                async move {
                    let link = NodeLink::connect(
                        node.address,
                        triad_net::load_certificate(&node.certificate).unwrap(),
                        LinkConfig::default(),
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap();
                    let mut call = link.call().await.unwrap();
                    let header = CallHeader {
                        api_version: api::API_VERSION,
                        request: bytes,
                        body,
                        payload: None,
                        approved: None,
                        job: None,
                    };
                    call.write_message(&api::encode(&header)).await.unwrap();
                    call.finish().unwrap();
                    let reply = call.read_message(1 << 20).await.unwrap().unwrap();
                    api::decode::<Reply>(&reply).unwrap()
                }
            });
            let mut replies = Vec::new();
            for handle in calls.map(tokio::spawn).collect::<Vec<_>>() {
                replies.push(handle.await.unwrap());
            }
            replies
        })
    };
    let replies = send_all(request.to_bytes());
    let thief = ResultSecret::generate().unwrap();
    for (node, reply) in replies.iter().enumerate() {
        let Reply::Answer {
            ephemeral_public,
            ciphertext,
            ..
        } = reply
        else {
            panic!("node {node}: {reply:?}");
        };
        let context = ResultContext {
            request: request.digest(),
            node: node as u32,
            output: 0,
        }
        .to_bytes();
        let sealed = Sealed {
            ephemeral_public: X25519Public::from_bytes(*ephemeral_public),
            ciphertext: ciphertext.clone(),
        };
        assert!(triad_auth::open(&thief, &context, &sealed).is_err());
        // Only the key the request names opens it.
        assert!(triad_auth::open(&secret, &context, &sealed).is_ok());
    }
    // The owner's own copy arrives second: a replay.
    for reply in send_all(request.to_bytes()) {
        assert!(
            matches!(&reply, Reply::Refused(e) if e.kind == ErrorKind::Replayed),
            "{reply:?}"
        );
    }
}

/// Revocations reach the nodes through a new roles document signed by all
/// three operators; a node serving another document than its peers makes
/// them refuse to serve.
#[test]
fn revocations_and_differing_roles_documents() {
    use triad_node::api::ErrorKind;
    use triad_node::cli::{
        RolesConfigArgs, RolesRevokeApprovalArgs, RolesRevokeKeyArgs, roles_install,
        roles_revoke_approval, roles_revoke_key, roles_sign,
    };

    let mut f = Fixture::start(&PEOPLE, |_| {});
    let (hospital, p1) = f.hospital_table(60, 9);
    let analyst = f.connect("analyst");
    let d1 = f.generated_dummy(&analyst, &p1, 30);
    let recording = f.root.join("count.recording");
    analyst.record("count").unwrap();
    analyst.frame(&d1).unwrap().count().unwrap();
    let recorded = analyst.end(&recording).unwrap();
    let approved = f.root.join("count.approved");
    script::approve(&recording, &approved, &f.key("approver"), now() + 3600).unwrap();
    analyst.load(&approved).unwrap();
    assert_eq!(
        analyst.frame(&p1).unwrap().count().unwrap().as_i64(),
        Some(60)
    );
    hospital.close();
    analyst.close();

    // The installed document, edited: the approval and the intruder's key
    // revoked, signed by the three operators, installed on all three.
    let installed = {
        let config = Config::load(f.cluster.config(0)).unwrap();
        config.roles_path.clone()
    };
    let next = f.root.join("roles-next.toml");
    std::fs::copy(&installed, &next).unwrap();
    roles_revoke_approval(&RolesRevokeApprovalArgs {
        roles: next.clone(),
        digest: recorded.digest.clone(),
    })
    .unwrap();
    let intruder = f.key("intruder").public().to_string();
    roles_revoke_key(&RolesRevokeKeyArgs {
        roles: next.clone(),
        public_key: intruder,
    })
    .unwrap();
    let configs: Vec<PathBuf> = (0..3).map(|i| f.cluster.config(i).to_owned()).collect();
    let args = |i: usize| RolesConfigArgs {
        config: configs[i].clone(),
        roles: next.clone(),
    };
    for i in 0..3 {
        roles_sign(&args(i)).unwrap();
    }
    // Installed on node 2 only: its peers refuse to serve with it.
    roles_install(&args(2)).unwrap();
    f.cluster.stop();
    f.cluster.start_node(0).unwrap();
    f.cluster.start_node(1).unwrap();
    f.cluster.start_node(2).unwrap();
    // Once the mesh forms, nodes 0 and 1 see node 2's other document.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(f.cluster.log_path(0)).unwrap();
        if log.contains("roles document") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node 0's log: {log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let hospital = f.connect("hospital");
    match hospital.tables() {
        Err(ClientError::Refused { error, .. }) => {
            assert_eq!(error.kind, ErrorKind::PeerUnavailable, "{error:?}")
        }
        other => panic!("{other:?}"),
    }
    hospital.close();

    // Installed everywhere: served again, with the revocations in force.
    f.cluster.stop();
    roles_install(&args(0)).unwrap();
    roles_install(&args(1)).unwrap();
    f.cluster.start(Duration::from_secs(60)).unwrap();
    let analyst = f.connect("analyst");
    analyst.load(&approved).unwrap();
    no_match(analyst.frame(&p1).unwrap().count(), "revoked");
    analyst.close_script().unwrap();
    let intruder = f.connect("intruder");
    match intruder.tables() {
        Err(ClientError::Refused { error, .. }) => {
            assert_eq!(error.kind, ErrorKind::Unauthorized, "{error:?}")
        }
        other => panic!("{other:?}"),
    }
}

/// One node that accepts every query cannot make a value reach anyone: the
/// two honest nodes refuse, and no node runs the protocol.
#[test]
fn a_node_that_accepts_anything_reveals_nothing() {
    let f = Fixture::start(&PEOPLE, |cluster| {
        let path = cluster.config(1);
        let mut file = triad_node::config::ConfigFile::read(path).unwrap();
        file.faults.accept_unauthorized = true;
        Config::save(&file, path).unwrap();
    });
    let (_hospital, p1) = f.hospital_table(80, 4);
    // Neither an analyst without a script, nor one running a script the
    // approver never signed, gets an answer.
    let analyst = f.connect("analyst");
    match analyst.frame(&p1).unwrap().sum("condition_x") {
        Err(ClientError::NoMatchingAuthorization { message, .. }) => {
            assert!(!message.starts_with("node 1"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let d1 = f.generated_dummy(&analyst, &p1, 20);
    let recording = f.root.join("unsigned.recording");
    analyst.record("unsigned").unwrap();
    let _ = analyst.frame(&d1).unwrap().sum("condition_x");
    analyst.end(&recording).unwrap();
    let (_, script) = script::Recording::load(&recording).unwrap();
    let unsigned = ApprovedScript {
        script,
        approvals: Vec::new(),
    };
    analyst.load_approved(&unsigned, unsigned.encode()).unwrap();
    refused_loaded(&analyst, [&p1, &p1], APPROVED, "step 0");
    // The faulty node accepted both production queries, and ran only the
    // design-mode one: the protocol never started for the others.
    let log = std::fs::read_to_string(f.cluster.log_path(1)).unwrap();
    assert!(log.contains("accepting a query without checking"), "{log}");
    assert_eq!(log.matches("query ran").count(), 1, "{log}");
}
