//! The seed notebook's production run (`seeds/000_*.txt`) against a real
//! deployment: the two parties' tables by handle, merged, and the
//! thresholded per-month sums of `condition_y` for January, May and
//! September.
//!
//! ```text
//! cargo run -p triad-client --example seed_analysis -- \
//!     triad.conn PARTY1_HANDLE PARTY2_HANDLE [chart.svg]
//! ```
//!
//! A thin wrapper over [`triad_client::seed::seed_analysis`], which
//! `triad demo` runs too.

use std::path::PathBuf;

use triad_client::seed;
use triad_client::{Client, Handle};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (conn, party1, party2, chart) = match &args[..] {
        [conn, h1, h2] => (conn, h1, h2, None),
        [conn, h1, h2, chart] => (conn, h1, h2, Some(PathBuf::from(chart))),
        _ => anyhow::bail!(
            "usage: seed_analysis CONNECTION_FILE PARTY1_HANDLE PARTY2_HANDLE [CHART.svg]"
        ),
    };
    let party1: Handle = party1
        .parse()
        .map_err(|e| anyhow::anyhow!("party1 handle: {e}"))?;
    let party2: Handle = party2
        .parse()
        .map_err(|e| anyhow::anyhow!("party2 handle: {e}"))?;
    let client = Client::connect_file(conn.as_ref())?;
    let results = seed::seed_analysis(&client, &party1, &party2, &seed::SEED_MONTHS)?;
    print!("{}", seed::format_results(&results));
    if let Some(chart) = chart {
        seed::write_chart(&chart, &results)?;
        println!("bar chart written to {}", chart.display());
    }
    client.close();
    Ok(())
}
