//! `triad-bench micro --transport quic` end to end: three party processes
//! over QUIC on loopback, one JSON line per operation, results checked
//! against plaintext inside the parties.

use std::process::Command;

#[test]
fn micro_over_quic_prints_one_line_per_op() {
    let output = Command::new(env!("CARGO_BIN_EXE_triad-bench"))
        .args([
            "micro",
            "--transport",
            "quic",
            "--op",
            "mul,lt",
            "--n",
            "1000",
        ])
        .output()
        .expect("run triad-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "triad-bench failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, op) in lines.iter().zip(["mul", "lt"]) {
        assert_eq!(line["op"], op);
        assert_eq!(line["n"], 1000);
        assert_eq!(line["transport"], "quic");
        assert_eq!(line["threads"], 1);
        assert!(line["seconds"].as_f64().expect("seconds") > 0.0);
        assert!(line["rounds"].as_u64().expect("rounds") >= 1);
    }
    assert_eq!(lines[0]["bytes_per_party"], 8000);
}
