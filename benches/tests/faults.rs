//! Faults between three real node processes, each on a host of its own
//! (a network namespace, where `ip netns` works; loopback otherwise) with
//! every link through the relay: a node killed in the middle of a merge, a
//! link cut and restored, a slow node, a node restarted while idle, and a
//! full disk during an upload. After each, the next queries give the
//! results the same analysis gives in the clear.

use std::path::Path;
use std::time::{Duration, Instant};

use triad_auth::UserKey;
use triad_bench::e2e::{SeedTable, generate, in_the_clear, merge_query, month_query, write_upload};
use triad_bench::net::{Network, links_of, node_link, simulated};
use triad_client::cluster::LocalCluster;
use triad_client::error::ClientError;
use triad_client::remote::{Client, QueryReply};
use triad_client::table::read_table;
use triad_netsim::Shape;
use triad_node::config::Role;

/// A node notices a silent peer within this (see the cluster's tuning).
const IDLE_MS: u64 = 2_000;

struct Setup {
    network: Network,
    cluster: LocalCluster,
    client: Client,
    _dir: tempfile::TempDir,
}

fn start(shape: Shape) -> Setup {
    start_with(shape, |_| true).expect("set up")
}

/// [`start`], with `before` run on the cluster's directory before the
/// nodes start; `None` if `before` says the test cannot run here.
fn start_with(shape: Shape, before: impl FnOnce(&Path) -> bool) -> Option<Setup> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (network, fallback) = simulated(shape).expect("network");
    if let Some(reason) = fallback {
        eprintln!("note: {reason}; the nodes share loopback behind the relay");
    }
    let key_path = dir.path().join("analyst.key");
    let key = UserKey::generate().expect("key");
    key.save(&key_path).expect("save key");
    let users = vec![(
        "analyst".to_string(),
        key.public().to_string(),
        vec![Role::Owner, Role::Analyst],
    )];
    let mut cluster = LocalCluster::create_placed(
        &dir.path().join("cluster"),
        Path::new(env!("CARGO_BIN_EXE_triad-bench")),
        &users,
        &key_path,
        &network.placement,
    )
    .expect("cluster");
    cluster
        .tune(|file| {
            file.limits.idle_timeout_ms = IDLE_MS;
            file.limits.peer_timeout_ms = 4 * IDLE_MS;
        })
        .expect("tune");
    if !before(&dir.path().join("cluster")) {
        return None;
    }
    cluster.start(Duration::from_secs(60)).expect("cluster up");
    let client = Client::connect_file(&cluster.connection_path()).expect("connect");
    Some(Setup {
        network,
        cluster,
        client,
        _dir: dir,
    })
}

fn merge(client: &Client, h1: &str, h2: &str) -> Result<String, ClientError> {
    match client.query(&merge_query(h1, h2))? {
        QueryReply::Stored { handle, .. } => Ok(handle.to_string()),
        other => panic!("the merge answered {other:?}"),
    }
}

impl Setup {
    fn upload(&self, name: &str, table: &SeedTable) -> String {
        let (csv, schema) = write_upload(self._dir.path(), name, table).expect("csv");
        let encoded = read_table(&csv, Some(&schema)).expect("read");
        self.client
            .upload(&encoded)
            .expect("upload")
            .handle
            .to_string()
    }

    /// The three monthly sums over `merged`, `None` where the gate failed.
    fn months(&self, merged: &str) -> Vec<(i64, Option<i64>)> {
        triad_bench::e2e::MONTHS
            .iter()
            .map(|m| match self.client.query(&month_query(merged, *m, 3)) {
                Ok(QueryReply::Answer { words, .. }) => (*m, words.first().map(|w| *w as i64)),
                Err(ClientError::ThresholdNotMet { .. }) => (*m, None),
                other => panic!("month {m}: {other:?}"),
            })
            .collect()
    }

    /// A fresh client once the cluster serves again; returns how long that
    /// took.
    fn reconnect(&mut self) -> Duration {
        let start = Instant::now();
        self.cluster
            .wait_ready(Duration::from_secs(60))
            .expect("cluster serves again");
        self.client = Client::connect_file(&self.cluster.connection_path()).expect("connect");
        start.elapsed()
    }

    /// The last lines of every node's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..3 {
            let text = std::fs::read_to_string(self.cluster.log_path(i)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- node {i}\n"));
            for line in &lines[lines.len().saturating_sub(12)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Merges and sums, checked against the analysis in the clear.
    fn analysis_is_right(&self, h1: &str, h2: &str, p1: &SeedTable, p2: &SeedTable) {
        let merged = merge(&self.client, h1, h2).expect("merge");
        assert_eq!(self.months(&merged), in_the_clear(p1, p2, 3));
    }

    /// Runs the merge, does `fault` once it is under way, and returns the
    /// merge's error and how long after the fault it came.
    fn fault_during_merge(
        &mut self,
        h1: &str,
        h2: &str,
        fault: impl FnOnce(&mut LocalCluster, &Network),
    ) -> (ClientError, Duration) {
        let (client, cluster, network) = (&self.client, &mut self.cluster, &self.network);
        std::thread::scope(|scope| {
            let running = scope.spawn(|| merge(client, h1, h2));
            // Over the WAN shape the merge's rounds take several seconds.
            std::thread::sleep(Duration::from_millis(1500));
            assert!(!running.is_finished(), "the merge ended before the fault");
            fault(cluster, network);
            let at = Instant::now();
            let error = running
                .join()
                .expect("merge thread")
                .expect_err("the merge succeeded through the fault");
            (error, at.elapsed())
        })
    }
}

/// The longest a client may wait for an error after a fault: the peers'
/// silence detection and the peer timeout, with room for a loaded machine.
const ERROR_WITHIN: Duration = Duration::from_secs(30);

fn tables() -> (SeedTable, SeedTable) {
    generate(2_000, 7)
}

#[test]
fn a_node_killed_in_the_middle_of_a_merge() {
    let (p1, p2) = tables();
    let mut setup = start(Shape::wan());
    let (h1, h2) = (setup.upload("p1", &p1), setup.upload("p2", &p2));
    let (error, after) = setup.fault_during_merge(&h1, &h2, |cluster, _| cluster.kill_node(2));
    eprintln!("error {after:?} after the kill: {error}");
    assert!(after < ERROR_WITHIN, "the error took {after:?}: {error}");
    // Nodes 0 and 1 abandoned the query: they refuse cleanly while node 2
    // is down, and serve again once it is back.
    setup.cluster.start_node(2).expect("restart");
    let back = setup.reconnect();
    eprintln!("serving again {back:?} after the restart");
    setup.analysis_is_right(&h1, &h2, &p1, &p2);
}

#[test]
fn a_link_cut_in_the_middle_of_a_merge_and_restored() {
    let (p1, p2) = tables();
    let mut setup = start(Shape::wan());
    let (h1, h2) = (setup.upload("p1", &p1), setup.upload("p2", &p2));
    let cut = node_link(2, 1);
    let (error, after) = setup.fault_during_merge(&h1, &h2, |_, network| {
        network.relay.set_cut(cut, true).expect("cut");
    });
    eprintln!("error {after:?} after the cut: {error}");
    assert!(after < ERROR_WITHIN, "the error took {after:?}: {error}");
    setup.network.relay.set_cut(cut, false).expect("restore");
    let back = setup.reconnect();
    eprintln!("serving again {back:?} after the restore");
    setup.analysis_is_right(&h1, &h2, &p1, &p2);
}

#[test]
fn a_slow_node_only_slows_queries() {
    let (_, p2) = tables();
    let setup = start(Shape::none());
    let h2 = setup.upload("p2", &p2);
    // The filtered sums straight on party 2's table: few rounds, so 200 ms
    // on every one of them stays within a test's time.
    let want: Vec<(i64, Option<i64>)> = triad_bench::e2e::MONTHS
        .iter()
        .map(|m| {
            let n = p2.rows.iter().filter(|r| r[1] == *m && r[6] == 1).count() as i64;
            (*m, (n >= 3).then_some(n))
        })
        .collect();
    let timed = |setup: &Setup| {
        let start = Instant::now();
        let got = setup.months(&h2);
        (got, start.elapsed())
    };
    let (fast, fast_time) = timed(&setup);
    assert_eq!(fast, want);
    for link in links_of(2) {
        setup
            .network
            .relay
            .set_shape(link, Shape::none().with_delay(Duration::from_millis(200)))
            .expect("slow");
    }
    let (slow, slow_time) = timed(&setup);
    eprintln!("three filtered sums: {fast_time:?}, with node 2 slow {slow_time:?}");
    assert_eq!(slow, want, "a slow node changed the results");
    assert!(
        slow_time > fast_time + Duration::from_millis(400),
        "200 ms links did not slow the queries ({fast_time:?} -> {slow_time:?})"
    );
}

#[test]
fn a_node_restarted_while_idle_rejoins_on_its_own() {
    let (p1, p2) = tables();
    let mut setup = start(Shape::lan());
    let (h1, h2) = (setup.upload("p1", &p1), setup.upload("p2", &p2));
    setup.cluster.kill_node(1);
    std::thread::sleep(Duration::from_millis(IDLE_MS * 2));
    // No operator action beyond starting the process again.
    setup.cluster.start_node(1).expect("restart");
    let back = setup.reconnect();
    eprintln!("serving again {back:?} after the restart");
    assert!(
        back < Duration::from_secs(30),
        "rejoined only after {back:?}"
    );
    setup.analysis_is_right(&h1, &h2, &p1, &p2);
}

/// A small filesystem mounted over a node's data directory, unmounted on
/// drop (after the cluster stopped).
struct SmallDisk {
    mount: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts `bytes` of tmpfs over `data`, keeping what `data` held;
    /// `None` where this process cannot mount.
    fn over(data: &Path, bytes: u64) -> Option<SmallDisk> {
        // The node makes its data directory on first start, unless it is
        // there already.
        let saved = data.with_extension("saved");
        std::fs::create_dir_all(data).expect("data directory");
        std::fs::rename(data, &saved).expect("move the data directory aside");
        std::fs::create_dir(data).expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(data)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(data);
            std::fs::rename(&saved, data).expect("restore the data directory");
            return None;
        }
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(saved.join("."))
            .arg(data)
            .status()
            .expect("cp");
        assert!(copied.success(), "copying the data directory failed");
        Some(SmallDisk {
            mount: data.to_owned(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
    }
}

#[test]
fn a_full_disk_during_an_upload_refuses_it_and_loses_nothing() {
    let mut disk = None;
    let Some(mut setup) = start_with(Shape::none(), |root| {
        disk = SmallDisk::over(&root.join("node2/data"), 2 << 20);
        disk.is_some()
    }) else {
        eprintln!("SKIPPED: cannot mount a small filesystem here (needs root)");
        return;
    };
    let (small, _) = generate(100, 3);
    let kept = setup.upload("small", &small);
    let want: i64 = small.rows.iter().map(|r| r[6]).sum();
    // Node 2 holds an explicit component of every column: 8 bytes per row
    // per column, far over 2 MiB.
    let (big, _) = generate(100_000, 4);
    let (csv, schema) = write_upload(setup._dir.path(), "big", &big).expect("csv");
    let encoded = read_table(&csv, Some(&schema)).expect("read");
    let error = setup
        .client
        .upload(&encoded)
        .expect_err("an upload larger than node 2's disk succeeded");
    eprintln!("the upload was refused: {error}");
    let tables = setup.client.tables().expect("tables");
    assert_eq!(
        tables.len(),
        1,
        "a handle exists for the refused upload: {tables:?}"
    );
    let kept_handle: triad_node::store::Handle = kept.parse().expect("handle");
    assert_eq!(
        setup.client.sum(&kept_handle, "condition_x").expect("sum"),
        want
    );
    // And after a restart of the node whose disk filled.
    setup.cluster.kill_node(2);
    setup.cluster.start_node(2).expect("restart");
    setup.reconnect();
    assert_eq!(
        setup.client.sum(&kept_handle, "condition_x").expect("sum"),
        want
    );
    setup.client.close();
    setup.cluster.stop();
    drop(disk);
}

#[test]
fn the_requester_cancels_a_running_merge() {
    let (p1, p2) = tables();
    let mut setup = start(Shape::wan());
    let (h1, h2) = (setup.upload("p1", &p1), setup.upload("p2", &p2));
    // Another terminal of the same user.
    let other = Client::connect_file(&setup.cluster.connection_path()).expect("connect");
    assert!(
        !other.cancel_query().expect("cancel"),
        "nothing was running"
    );
    let (error, after) = setup.fault_during_merge(&h1, &h2, |_, _| {
        assert!(
            other.cancel_query().expect("cancel"),
            "the merge was not running"
        );
    });
    eprintln!("error {after:?} after the cancellation: {error}");
    match &error {
        ClientError::Refused { error, .. } => {
            assert_eq!(error.kind, triad_node::api::ErrorKind::Cancelled, "{error}")
        }
        other => panic!("the merge failed otherwise: {other}\n{}", setup.logs()),
    }
    assert!(after < Duration::from_secs(10), "cancelling took {after:?}");
    // Each node logged the abandoned merge (a node that saw the others
    // leave before its own cancellation arrived logs it as a lost peer).
    let logs: Vec<String> = (0..3)
        .map(|i| {
            let path = setup
                .cluster
                .root()
                .join(format!("node{i}/data/audit/log.jsonl"));
            std::fs::read_to_string(path).expect("audit log")
        })
        .collect();
    for (i, log) in logs.iter().enumerate() {
        assert!(
            log.contains("refused: Cancelled") || log.contains("refused: PeerUnavailable"),
            "node {i} logged no abandoned merge"
        );
    }
    assert!(logs.iter().any(|log| log.contains("refused: Cancelled")));
    other.close();
    // Nothing was stored, and the nodes serve the next query.
    setup.reconnect();
    assert_eq!(setup.client.tables().expect("tables").len(), 2);
    setup.analysis_is_right(&h1, &h2, &p1, &p2);
}

/// Every file under `dir`, by path relative to it.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                out.insert(path.strip_prefix(dir).expect("under").to_owned(), bytes);
            }
        }
    }
    out
}

#[test]
fn a_node_that_lost_its_disk_is_rebuilt_from_the_other_two() {
    let (p1, p2) = tables();
    let mut setup = start(Shape::lan());
    let (h1, h2) = (setup.upload("p1", &p1), setup.upload("p2", &p2));
    // A table a query stored, as well as two uploads.
    let merged = merge(&setup.client, &h1, &h2).expect("merge");
    let months = setup.months(&merged);

    let root = setup.cluster.root().to_owned();
    let lost = root.join("node2");
    // Kept by the test only, to compare with what the rebuild writes.
    let lost_tables = snapshot(&lost.join("data/tables"));
    let manifests = lost_tables
        .keys()
        .filter(|p| p.ends_with("manifest.json"))
        .count();
    assert_eq!(manifests, 3, "{:?}", lost_tables.keys());
    let old_certificate = std::fs::read(lost.join("node.crt")).expect("certificate");
    // The disk is lost; the operator's steps, as the guide gives them,
    // with the other two running all along.
    setup.cluster.replace_disk(2).expect("a new disk");
    assert!(lost.join("data/recover.json").exists());
    let started = Instant::now();
    setup.cluster.start_node(2).expect("start the new node");
    setup.reconnect();
    eprintln!(
        "rebuilt and serving {:?} after the start",
        started.elapsed()
    );

    assert_ne!(
        std::fs::read(lost.join("node.crt")).expect("certificate"),
        old_certificate,
        "a new key"
    );
    assert!(!lost.join("data/recover.json").exists(), "{}", setup.logs());
    // Every file of every table is the one the lost disk held.
    assert_eq!(snapshot(&lost.join("data/tables")), lost_tables);
    assert_eq!(setup.months(&merged), months);
    setup.analysis_is_right(&h1, &h2, &p1, &p2);

    // The three logged it; the rebuilt node's log continues from the head
    // the others recorded of the lost one.
    let log = std::fs::read_to_string(lost.join("data/audit/log.jsonl")).expect("log");
    let first = log.lines().next().expect("an entry");
    assert!(first.contains("\"kind\":\"recover\""), "{first}");
    assert!(!first.contains("\"seq\":0,"), "{first}");
    for survivor in 0..2 {
        let log =
            std::fs::read_to_string(root.join(format!("node{survivor}/data/audit/log.jsonl")))
                .expect("log");
        assert!(log.contains("\"kind\":\"recover\""), "node {survivor}");
    }
}

#[test]
fn two_nodes_waiting_to_be_rebuilt_are_refused_until_one_is_restored() {
    let (p1, p2) = tables();
    let mut setup = start(Shape::lan());
    let (h1, h2) = (setup.upload("p1", &p1), setup.upload("p2", &p2));
    let root = setup.cluster.root().to_owned();
    for node in [1, 2] {
        setup.cluster.kill_node(node);
        triad_node::cli::recover(setup.cluster.config(node)).expect("mark");
    }
    for node in [1, 2] {
        setup.cluster.start_node(node).expect("start");
    }
    // Each lacks what only the other held: the three refuse to serve and
    // say why, for as long as both wait.
    let said = |node: usize| {
        std::fs::read_to_string(setup.cluster.log_path(node))
            .unwrap_or_default()
            .contains("nodes 1 and 2 wait to be rebuilt")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(0..3).all(said) {
        assert!(
            Instant::now() < deadline,
            "no node said why:\n{}",
            setup.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused = setup.cluster.wait_ready(Duration::from_secs(3));
    assert!(
        refused.is_err(),
        "the cluster served with two nodes waiting"
    );
    // Node 0's operator sees which two wait.
    let config = triad_node::config::Config::load(setup.cluster.config(0)).expect("config");
    for peer in triad_node::cli::check_peers(&config).expect("check") {
        let status = peer.theirs.as_ref().expect("the peer answers");
        assert!(status.waiting_to_be_rebuilt && !status.mesh_up, "{peer}");
        assert!(peer.to_string().contains("waiting to be rebuilt"), "{peer}");
    }
    // Node 1's disk comes back from its own backup (here: it never went),
    // so only node 2 waits; it holds its tables already and asks for none.
    setup.cluster.kill_node(1);
    std::fs::remove_file(root.join("node1/data/recover.json")).expect("unmark");
    setup.cluster.start_node(1).expect("start");
    setup.reconnect();
    assert!(!root.join("node2/data/recover.json").exists());
    setup.analysis_is_right(&h1, &h2, &p1, &p2);
}

#[test]
fn node_zero_which_leads_the_others_is_rebuilt_too() {
    let (p1, p2) = tables();
    let mut setup = start(Shape::lan());
    let (h1, h2) = (setup.upload("p1", &p1), setup.upload("p2", &p2));
    let lost = setup.cluster.root().join("node0");
    let lost_tables = snapshot(&lost.join("data/tables"));
    setup.cluster.replace_disk(0).expect("a new disk");
    setup.cluster.start_node(0).expect("start the new node");
    setup.reconnect();
    assert!(!lost.join("data/recover.json").exists(), "{}", setup.logs());
    assert_eq!(snapshot(&lost.join("data/tables")), lost_tables);
    setup.analysis_is_right(&h1, &h2, &p1, &p2);
}
