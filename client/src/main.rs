//! `triad`: the command line of data owners and analysts, and the local
//! demo cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use triad_auth::UserKey;
use triad_client::cluster::LocalCluster;
use triad_client::schema::Schema;
use triad_client::table::read_table;
use triad_client::{Client, ConnectionFile};
use triad_node::cli::NodeCommand;
use triad_node::config::Role;
use triad_node::store::Handle;

#[derive(Debug, Parser)]
#[command(name = "triad", version, about = "Secret-shared tables on three nodes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Conn {
    /// The connection file (node addresses, pinned certificates, key).
    #[arg(long, env = "TRIAD_CONN", default_value = "triad.conn")]
    conn: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a user key pair (ed25519) in a new file; prints the public key
    /// for the operators to admit.
    Keygen {
        /// The key file to create (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Secret-share a CSV or Parquet file onto the three nodes; prints the
    /// handle.
    Upload {
        /// The table.
        file: PathBuf,
        /// Declared types and ranges (TOML); without it they are inferred
        /// and widened, and the widened ranges become public.
        #[arg(long)]
        schema: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Public metadata of every table: handle, owner, rows, schema.
    Tables {
        #[command(flatten)]
        conn: Conn,
    },
    /// Public metadata of one table.
    Table {
        /// The handle.
        handle: Handle,
        #[command(flatten)]
        conn: Conn,
    },
    /// The sum of a column of one of your tables.
    Sum {
        /// The handle.
        handle: Handle,
        /// The column.
        column: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The number of rows, or of non-null values of a column.
    Count {
        /// The handle.
        handle: Handle,
        /// The column (optional).
        column: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete one of your tables from all three nodes.
    Delete {
        /// The handle.
        handle: Handle,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start a local three-node cluster on loopback, upload two generated
    /// tables shaped like the seed notebook's, run queries, stop.
    Demo {
        /// Rows per generated table.
        #[arg(long, default_value_t = 2000)]
        rows: usize,
        /// Keep the cluster's files here instead of a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a local three-node cluster until interrupted; writes the
    /// connection file for the key given.
    Cluster {
        /// Where the nodes keep their files.
        #[arg(long)]
        dir: PathBuf,
        /// The user's key file (made if absent); admitted as owner.
        #[arg(long)]
        key: PathBuf,
    },
    /// Node commands (as `triad-node`), used by the local cluster.
    #[command(subcommand, hide = true)]
    Node(NodeCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Node(command) = cli.command {
        init_logs("info");
        triad_node::cli::run_command(command)?;
        return Ok(());
    }
    init_logs("warn");
    match cli.command {
        Command::Keygen { out } => {
            let key = UserKey::generate()?;
            key.save(&out)?;
            println!("{}", key.public());
            eprintln!("key written to {} (keep it private)", out.display());
        }
        Command::Upload { file, schema, conn } => {
            let schema = schema.map(|p| Schema::load(&p)).transpose()?;
            let table = read_table(&file, schema.as_ref())?;
            for warning in &table.warnings {
                eprintln!("warning: {warning}");
            }
            let client = connect(&conn.conn)?;
            eprintln!(
                "uploading {} rows x {} share columns",
                table.rows,
                table.columns.len()
            );
            let uploaded = with_progress(&client, &table, || client.upload(&table))?;
            println!("{}", uploaded.handle);
            client.close();
        }
        Command::Tables { conn } => {
            let client = connect(&conn.conn)?;
            for table in client.tables()? {
                print_table(&table);
            }
            client.close();
        }
        Command::Table { handle, conn } => {
            let client = connect(&conn.conn)?;
            print_table(&client.get_table(&handle)?);
            client.close();
        }
        Command::Sum {
            handle,
            column,
            conn,
        } => {
            let client = connect(&conn.conn)?;
            let table = client.get_table(&handle)?;
            let spec = table
                .schema
                .iter()
                .find(|c| c.name == column)
                .with_context(|| format!("table {handle} has no column {column:?}"))?;
            let sum = client.sum(&handle, &column)?;
            println!("{}", format_sum(&spec.type_tag, sum));
            client.close();
        }
        Command::Count {
            handle,
            column,
            conn,
        } => {
            let client = connect(&conn.conn)?;
            println!("{}", client.count(&handle, column.as_deref())?);
            client.close();
        }
        Command::Delete { handle, conn } => {
            let client = connect(&conn.conn)?;
            client.delete(&handle)?;
            println!("deleted {handle}");
            client.close();
        }
        Command::Demo { rows, dir } => demo(rows, dir)?,
        Command::Cluster { dir, key } => {
            let mut cluster = make_cluster(&dir, &key)?;
            cluster.start(Duration::from_secs(60))?;
            println!(
                "cluster running; connection file {}",
                cluster.connection_path().display()
            );
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Command::Node(_) => unreachable!("handled above"),
    }
    Ok(())
}

/// Runs `upload` with a progress bar of share bytes sent, for tables big
/// enough to take a while.
fn with_progress<T>(
    client: &Client,
    table: &triad_client::table::EncodedTable,
    upload: impl FnOnce() -> T,
) -> T {
    // Nodes 1 and 2 each get one explicit vector per share column.
    let total = 2 * 8 * table.rows * table.columns.len() as u64;
    if total < 32 << 20 {
        return upload();
    }
    let counter = client.bytes_sent();
    let start = counter.load(std::sync::atomic::Ordering::Relaxed);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drawer = {
        let bar = bar.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = counter.load(std::sync::atomic::Ordering::Relaxed) - start;
                bar.set_position(sent.min(total));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let result = upload();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = drawer.join();
    bar.finish_and_clear();
    result
}

fn init_logs(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRIAD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn connect(path: &Path) -> anyhow::Result<Client> {
    let file = ConnectionFile::load(path)?;
    Ok(Client::connect(&file)?)
}

fn format_sum(type_tag: &str, sum: i64) -> String {
    match triad_client::schema::ColumnType::from_tag(type_tag) {
        Ok(ty) => ty.format_value(i128::from(sum)),
        Err(_) => sum.to_string(),
    }
}

fn print_table(table: &triad_node::api::TableSummary) {
    println!(
        "{}  rows {}  owner {}",
        table.handle,
        table.rows,
        &table.owner[..16]
    );
    for c in &table.schema {
        println!(
            "    {:<16} {:<12} [{}, {}]{}",
            c.name,
            c.type_tag,
            c.min,
            c.max,
            if c.nullable { " nullable" } else { "" }
        );
    }
}

/// Makes a local cluster under `dir` for the key file at `key_path`
/// (created if absent), admitted as owner and analyst.
fn make_cluster(dir: &Path, key_path: &Path) -> anyhow::Result<LocalCluster> {
    let key = if key_path.exists() {
        UserKey::load(key_path)?
    } else {
        let k = UserKey::generate()?;
        k.save(key_path)?;
        k
    };
    std::fs::create_dir_all(dir)?;
    let key_file = std::fs::canonicalize(key_path)?;
    let program = std::env::current_exe().context("locating the triad executable")?;
    let users = vec![(
        "owner".to_string(),
        key.public().to_string(),
        vec![Role::Owner, Role::Analyst],
    )];
    Ok(LocalCluster::create(dir, &program, &users, &key_file)?)
}

/// Deterministic generator for the demo's dummy data (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DEMO_SCHEMA_KEYS: &str = r#"
[[column]]
name = "year"
type = "int"
min = 2019
max = 2024

[[column]]
name = "month"
type = "int"
min = 1
max = 12

[[column]]
name = "day"
type = "int"
min = 1
max = 31

[[column]]
name = "article_nr"
type = "int"
min = 0
max = 9999

[[column]]
name = "batch_nr"
type = "int"
min = 0
max = 999

[[column]]
name = "smokes"
type = "bool"
"#;

/// Writes the two seed-shaped tables: party1 with `condition_x`, party2
/// with `condition_y`; half of party2's keys also occur in party1.
fn write_demo_tables(dir: &Path, rows: usize) -> anyhow::Result<[(PathBuf, PathBuf); 2]> {
    let mut rng = Mix(0x7269_6164);
    let key = |rng: &mut Mix| {
        (
            2019 + rng.below(6),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(10_000),
            rng.below(1000),
            rng.below(2),
        )
    };
    let keys: Vec<_> = (0..rows).map(|_| key(&mut rng)).collect();
    let mut out = Vec::new();
    for (party, condition) in [(1, "condition_x"), (2, "condition_y")] {
        let csv = dir.join(format!("party{party}.csv"));
        let schema = dir.join(format!("party{party}.toml"));
        let mut text = format!("year,month,day,article_nr,batch_nr,smokes,{condition}\n");
        for (i, k) in keys.iter().enumerate() {
            // party2 shares every other key with party1 and has its own
            // for the rest.
            let k = if party == 2 && i % 2 == 1 {
                key(&mut rng)
            } else {
                *k
            };
            let c = u64::from(rng.below(100) < 30);
            text.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                k.0,
                k.1,
                k.2,
                k.3,
                k.4,
                if k.5 == 1 { "true" } else { "false" },
                c
            ));
        }
        std::fs::write(&csv, text)?;
        std::fs::write(
            &schema,
            format!(
                "{DEMO_SCHEMA_KEYS}\n[[column]]\nname = \"{condition}\"\ntype = \"int\"\nmin = 0\nmax = 1\n"
            ),
        )?;
        out.push((csv, schema));
    }
    let [a, b]: [(PathBuf, PathBuf); 2] = out.try_into().map_err(|_| anyhow::anyhow!("two"))?;
    Ok([a, b])
}

fn demo(rows: usize, dir: Option<PathBuf>) -> anyhow::Result<()> {
    if rows == 0 {
        bail!("--rows must be at least 1");
    }
    let temp;
    let root = match dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                bail!("{} is not empty", d.display());
            }
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            temp = TempRoot::new()?;
            temp.0.clone()
        }
    };
    let key_path = root.join("owner.key");
    let key = UserKey::generate()?;
    key.save(&key_path)?;
    println!(
        "starting three nodes on 127.0.0.1 (files in {})",
        root.display()
    );
    let program = std::env::current_exe().context("locating the triad executable")?;
    let users = vec![(
        "owner".to_string(),
        key.public().to_string(),
        vec![Role::Owner, Role::Analyst],
    )];
    let mut cluster = LocalCluster::create(&root.join("cluster"), &program, &users, &key_path)?;
    cluster.start(Duration::from_secs(60))?;
    let client = Client::connect_file(&cluster.connection_path())?;
    let tables = write_demo_tables(&root, rows)?;
    let mut handles = Vec::new();
    for (csv, schema) in &tables {
        let schema = Schema::load(schema)?;
        let table = read_table(csv, Some(&schema))?;
        let uploaded = client.upload(&table)?;
        println!(
            "uploaded {} ({} rows) -> handle {}",
            csv.file_name().unwrap_or_default().to_string_lossy(),
            uploaded.rows,
            uploaded.handle
        );
        handles.push(uploaded.handle);
    }
    println!("\ntables on the nodes (public metadata):");
    for table in client.tables()? {
        print_table(&table);
    }
    println!("\nqueries (results reconstructed only here):");
    for (handle, column) in [(handles[0], "condition_x"), (handles[1], "condition_y")] {
        let sum = client.sum(&handle, column)?;
        let count = client.count(&handle, None)?;
        println!("  sum({column}) = {sum} of {count} rows");
    }
    println!(
        "\nThe seed's merge and thresholded per-month sums need the DataFrame operations, which are not built yet."
    );
    client.close();
    cluster.stop();
    Ok(())
}

/// A temporary directory removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new() -> anyhow::Result<TempRoot> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("triad-demo-{name}"));
        std::fs::create_dir_all(&path)?;
        Ok(TempRoot(path))
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
