//! The configuration file: the documented example parses, and each kind of
//! mistake is refused naming the key.

use std::path::Path;

use triad_node::config::{Config, ConfigFile};

fn parse(text: &str) -> Result<Config, String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
    Config::from_file(Path::new("/etc/triad/triad-node.toml"), file, true)
        .map_err(|e| e.to_string())
}

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/example-node.toml"
    ))
    .unwrap()
}

#[test]
fn the_documented_example_is_valid() {
    let config = parse(&example()).unwrap();
    assert_eq!(config.party.index(), 0);
    assert_eq!(config.peers.len(), 2);
    assert_eq!(config.data_dir, Path::new("/etc/triad/data"));
    assert_eq!(
        config.peers[1].certificate,
        Path::new("/etc/triad/peer2.crt")
    );
    assert_eq!(config.users.len(), 1);
    assert_eq!(config.file.threads.compute, 2);
    assert_eq!(config.file.limits.min_threshold, 3);
    // Absent, it defaults to 3 too.
    let without = example().replacen("min_threshold = 3\n", "", 1);
    assert_ne!(without, example());
    assert_eq!(parse(&without).unwrap().file.limits.min_threshold, 3);
}

#[test]
fn mistakes_are_named() {
    let cases = [
        ("node = 0", "node = 3", "node"),
        ("deployment = \"3b", "deployment = \"zz", "deployment"),
        (
            "node = 2\naddress = \"10.0.0.3:7000\"",
            "node = 1\naddress = \"10.0.0.3:7000\"",
            "listed twice",
        ),
        (
            "node = 2\naddress = \"10.0.0.3:7000\"",
            "node = 0\naddress = \"10.0.0.3:7000\"",
            "peer.node",
        ),
        (
            "public_key = \"d75a",
            "public_key = \"xx5a",
            "user.public_key",
        ),
        ("compute = 2", "compute = 0", "threads"),
        (
            "rows_max = 4294967296",
            "rows_max = 1\nsurprise = 1",
            "surprise",
        ),
        ("idle_timeout_ms = 10000", "idle_timeout_ms = 5", "limits"),
    ];
    for (from, to, expect) in cases {
        let text = example().replacen(from, to, 1);
        assert_ne!(text, example(), "case {to:?} did not apply");
        let error = parse(&text).expect_err(to);
        assert!(error.contains(expect), "{to:?}: {error}");
    }
    // A node with only one peer cannot run.
    let one_peer = example().replacen("[[peer]]\nnode = 2", "[[unused]]\nnode = 2", 1);
    let cut = one_peer.split("[[unused]]").next().unwrap().to_owned()
        + &example()[example().find("[[user]]").unwrap()..];
    let error = parse(&cut).unwrap_err();
    assert!(error.contains("1 of the 2 other nodes"), "{error}");
}
