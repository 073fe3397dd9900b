//! The `triad` command line as a user runs it: the demo, and keygen,
//! upload, tables, sum, count and delete against a local cluster.

use std::path::Path;
use std::time::Duration;

use triad_auth::UserKey;
use triad_client::cluster::LocalCluster;
use triad_node::config::Role;

const PROGRAM: &str = env!("CARGO_BIN_EXE_triad");

mod common;

use common::triad;

#[test]
fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let (ok, out, err) = triad(
        &["demo", "--rows", "200", "--dir", demo.to_str().unwrap()],
        None,
    );
    assert!(ok, "demo failed: {err}");
    assert!(out.contains("hospital: party1.csv (200 rows)"), "{out}");
    assert!(out.contains("pharmacy: party2.csv (200 rows)"), "{out}");
    assert!(out.contains("dummy "), "{out}");
    assert!(demo.join("seed-analysis.recording").exists());
    assert!(demo.join("seed-analysis.approved").exists());
    // The seed analysis, run as the approved script: a Month / Sum table
    // for January, May and September, checked against polars in the
    // clear, and the chart; then a changed script refused.
    assert!(out.contains("Month        Sum of Asthma"), "{out}");
    for month in ["Jan ", "May ", "September "] {
        assert!(out.contains(month), "{out}");
    }
    assert!(
        out.contains("polars in the clear on the generated CSVs agrees: yes"),
        "{out}"
    );
    assert!(
        out.contains("NoMatchingAuthorization") && out.contains("recorded 5, sent 6"),
        "{out}"
    );
    // The same analysis as a two-action pipeline run as a job request,
    // twice: the second time the unchanged merge is skipped.
    assert!(out.contains("8. the same analysis as a pipeline"), "{out}");
    let jobs: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("job ") && l.contains("workspace demo"))
        .collect();
    assert_eq!(jobs.len(), 2, "{out}");
    assert!(jobs.iter().all(|j| j.contains("succeeded")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("merge_tables") && l.contains("skipped")),
        "{out}"
    );
    assert_eq!(out.matches("(polars ").count(), 6, "{out}");
    assert!(!out.contains("DIFFERS"), "{out}");
    // With 200 rows every month may stay under its gate; the policy shows
    // wherever something was released.
    assert!(
        out.contains("release policy: counts <= 7 redacted")
            || !out.contains("(polars redacted")
                && out.matches("(polars threshold not met").count() == 6,
        "{out}"
    );
    assert!(demo.join("project/triad.yaml").exists());
    // The approved script in a pipeline: checked, then a broken copy
    // reports each error with its line.
    let handles: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split("-> handle ").nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(handles.len(), 2, "{out}");
    let pipeline = format!(
        "version: 1\nactions:\n  seed:\n    script: seed-analysis.approved\n    inputs:\n      party1: {}\n      party2: {}\n    outputs:\n      highly_sensitive:\n        merged: table\n      moderately_sensitive:\n        sums: aggregates\n",
        handles[0], handles[1]
    );
    std::fs::write(demo.join("triad.yaml"), &pipeline).unwrap();
    let yaml = demo.join("triad.yaml");
    let (ok, checked, err) = triad(&["pipeline", "check", yaml.to_str().unwrap()], None);
    assert!(
        ok && checked.contains("valid") && checked.contains("  seed"),
        "{checked}{err}"
    );
    let broken = pipeline
        .replace("    script:", "    needs: [nothing]\n    script:")
        .replace("merged: table", "merged: aggregates");
    std::fs::write(&yaml, broken).unwrap();
    let (ok, _, err) = triad(&["pipeline", "check", yaml.to_str().unwrap()], None);
    assert!(!ok, "{err}");
    assert!(err.contains(":4:") && err.contains("nothing"), "{err}");
    assert!(err.contains(":11:"), "{err}");
    let chart = demo.join("seed-analysis.svg");
    assert!(out.contains(&chart.display().to_string()), "{out}");
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("September"),
        "{svg}"
    );
}

#[test]
fn a_data_owner_session() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key_path = root.join("alice.key");
    let (ok, public, err) = triad(&["keygen", "--out", key_path.to_str().unwrap()], None);
    assert!(ok, "{err}");
    let public = public.trim().to_owned();
    assert_eq!(
        UserKey::load(&key_path).unwrap().public().to_string(),
        public
    );
    // Keys are never overwritten.
    let (ok, _, err) = triad(&["keygen", "--out", key_path.to_str().unwrap()], None);
    assert!(!ok && err.contains("alice.key"), "{err}");

    let users = vec![("alice".into(), public, vec![Role::Owner])];
    let mut cluster =
        LocalCluster::create(&root.join("cluster"), Path::new(PROGRAM), &users, &key_path).unwrap();
    cluster.start(Duration::from_secs(60)).unwrap();
    let conn = cluster.connection_path();

    let csv = root.join("people.csv");
    std::fs::write(
        &csv,
        "age,income,smokes\n34,1250.50,true\n51,-20.25,\n29,0.75,false\n",
    )
    .unwrap();
    let schema = root.join("people.toml");
    std::fs::write(
        &schema,
        "[[column]]\nname = \"age\"\ntype = \"int\"\nmin = 0\nmax = 130\n\n\
         [[column]]\nname = \"income\"\ntype = \"fixed\"\nscale = 2\nmin = \"-100000\"\nmax = \"100000\"\n\n\
         [[column]]\nname = \"smokes\"\ntype = \"bool\"\nnullable = true\n",
    )
    .unwrap();
    let (ok, handle, err) = triad(
        &[
            "upload",
            csv.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
        ],
        Some(&conn),
    );
    assert!(ok, "{err}");
    let handle = handle.trim().to_owned();
    assert_eq!(handle.len(), 64);

    let (ok, out, err) = triad(&["tables"], Some(&conn));
    assert!(ok, "{err}");
    assert!(out.contains(&handle) && out.contains("fixed(2)"), "{out}");
    let (ok, out, err) = triad(&["sum", &handle, "age"], Some(&conn));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "114");
    let (ok, out, err) = triad(&["sum", &handle, "income"], Some(&conn));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1231.00");
    let (ok, out, err) = triad(&["count", &handle, "smokes"], Some(&conn));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2");

    // A bad cell is refused before anything is sent, naming file, line and
    // column, and not the value.
    std::fs::write(&csv, "age,income,smokes\n34,1.00,true\n431,2.00,false\n").unwrap();
    let (ok, _, err) = triad(
        &[
            "upload",
            csv.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
        ],
        Some(&conn),
    );
    assert!(!ok);
    assert!(
        err.contains("people.csv") && err.contains("line 3") && err.contains("age"),
        "{err}"
    );
    assert!(!err.contains("431"), "{err}");

    let (ok, _, err) = triad(&["delete", &handle], Some(&conn));
    assert!(ok, "{err}");
    let (ok, _, err) = triad(&["sum", &handle, "age"], Some(&conn));
    assert!(!ok && err.contains(&handle), "{err}");
}
