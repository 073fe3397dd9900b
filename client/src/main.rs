//! `triad`: the command line of data owners and analysts, and the local
//! demo cluster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use triad_auth::Mode;
use triad_auth::UserKey;
use triad_client::cluster::LocalCluster;
use triad_client::schema::Schema;
use triad_client::table::read_table;
use triad_client::{Client, ConnectionFile, UploadOptions, jobs, script, seed};
use triad_node::cli::NodeCommand;
use triad_node::config::Role;
use triad_node::jobs::{JobStatus, JobView};
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
        /// Upload a dummy table (design mode) standing for this production
        /// table; it must have the production table's schema and ranges.
        #[arg(long)]
        dummy_for: Option<Handle>,
        /// An approver (public key, hex) who must sign every script reading
        /// this table; repeat for several. Default: any one approver.
        #[arg(long = "approver")]
        approvers: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Generate random rows for a production table's public schema and
    /// upload them as its dummy table (design mode); prints the handle.
    Dummy {
        /// The production table.
        #[arg(long = "for")]
        production: Handle,
        /// Rows to generate.
        #[arg(long, default_value_t = 1000)]
        rows: usize,
        /// Seed of the generated data (default: random).
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Review a recorded script (steps, tables, outputs on dummy data) and
    /// sign it as an approver; writes the `.approved` file. Given an
    /// `.approved` file, adds this approver's signature.
    Approve {
        /// The `.recording` (or `.approved`) file.
        file: PathBuf,
        /// The approver's key file.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the `.approved` file (default: next to the input).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Days until the approval expires.
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// Sign without asking (for scripts; the steps are still printed).
        #[arg(long)]
        yes: bool,
    },
    /// Pipelines of approved scripts (`triad.yaml`).
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Run pipeline actions as a job request: the nodes plan it (skipping
    /// unchanged dependencies) and record every state; revealed aggregates
    /// are written as CSV under --out. Prints the job's record.
    Run {
        /// The actions to run; what they need runs first (or is skipped).
        #[arg(required = true)]
        actions: Vec<String>,
        /// The pipeline file.
        #[arg(long, default_value = "triad.yaml")]
        pipeline: PathBuf,
        /// The workspace: jobs of one workspace reuse unchanged outputs.
        #[arg(long)]
        workspace: String,
        /// Re-run every needed action even when unchanged.
        #[arg(long)]
        force_run_dependencies: bool,
        /// Where revealed aggregates go (one directory per action).
        #[arg(long, default_value = "released")]
        out: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
    /// Job requests: every one, or one by id.
    Jobs {
        /// A job id (16 hex): show that job in full.
        id: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop your query that is running now (from another terminal): the
    /// nodes abandon it, store and reveal nothing.
    CancelQuery {
        #[command(flatten)]
        conn: Conn,
    },
    /// Cancel one of your running job requests.
    Cancel {
        /// The job id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Public metadata of every table: handle, owner, rows, schema.
    Tables {
        /// List the design namespace (dummy tables) instead of production.
        #[arg(long)]
        design: bool,
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
    /// tables shaped like the seed notebook's, run the seed analysis (merge,
    /// thresholded per-month sums), check it against polars in the clear,
    /// draw it, stop.
    Demo {
        /// Rows per generated table.
        #[arg(long, default_value_t = 2000)]
        rows: usize,
        /// Keep the cluster's files here instead of a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where to write the bar chart (SVG). Default: seed-analysis.svg in
        /// --dir, or triad-seed-analysis.svg in the system's temporary
        /// directory when the demo's files are temporary.
        #[arg(long)]
        chart: Option<PathBuf>,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 0x7269_6164)]
        seed: u64,
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

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Validate a pipeline file: every error at once, with its line; the
    /// scripts must be approved. Prints the actions in dependency order.
    Check {
        /// The pipeline file.
        #[arg(default_value = "triad.yaml")]
        file: PathBuf,
    },
}

fn print_job(job: &JobView, full: bool) {
    let status = match job.reason {
        Some(reason) => format!("{} ({})", job.status.as_str(), reason.as_str()),
        None => job.status.as_str().to_owned(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let runtime = job
        .runtime(now)
        .map(|s| format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60))
        .unwrap_or_else(|| "-".into());
    println!(
        "job {}  {status}  workspace {}  by {}  actions {}  runtime {runtime}",
        job.id,
        job.workspace,
        job.requester_name,
        job.requested.join(",")
    );
    if !full {
        return;
    }
    for action in &job.actions {
        let status = match action.reason {
            Some(reason) => format!("{} ({})", action.status.as_str(), reason.as_str()),
            None => action.status.as_str().to_owned(),
        };
        println!(
            "  {:<24} {status:<28} steps {}/{}",
            action.name, action.steps_done, action.steps
        );
        if let Some(message) = &action.message {
            println!("    {message}");
        }
        for output in &action.outputs {
            let held = match (&output.handle, output.sealed.len()) {
                (Some(handle), _) => format!("table {handle}"),
                (None, 0) => "-".into(),
                (None, n) => format!("{n} answers sealed to the requester"),
            };
            println!("    {} [{}]: {held}", output.name, output.level.as_str());
        }
    }
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
        Command::Upload {
            file,
            schema,
            dummy_for,
            approvers,
            conn,
        } => {
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
            let options = UploadOptions {
                dummy_for,
                approvers,
            };
            let uploaded = with_progress(&client, &table, || client.upload_with(&table, &options))?;
            println!("{}", uploaded.handle);
            client.close();
        }
        Command::Dummy {
            production,
            rows,
            seed,
            conn,
        } => {
            let client = connect(&conn.conn)?;
            let summary = client.get_table(&production)?;
            let seed = match seed {
                Some(seed) => seed,
                None => {
                    let mut bytes = [0u8; 8];
                    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random: {e}"))?;
                    u64::from_le_bytes(bytes)
                }
            };
            let table = seed::dummy_table(&summary.schema, rows, seed)?;
            let options = UploadOptions {
                dummy_for: Some(production),
                approvers: Vec::new(),
            };
            let uploaded = client.upload_with(&table, &options)?;
            eprintln!("dummy table of {rows} rows for {production} (design mode)");
            println!("{}", uploaded.handle);
            client.close();
        }
        Command::Approve {
            file,
            key,
            out,
            days,
            yes,
        } => {
            let key = UserKey::load(&key)?;
            let recording = match script::Recording::load(&file) {
                Ok((recording, _)) => recording,
                Err(_) => script::ApprovedFile::load(&file)?.0.recording,
            };
            println!("{}", recording.describe());
            if !yes && !confirm("sign this script?")? {
                bail!("not signed");
            }
            let out = out.unwrap_or_else(|| file.with_extension("approved"));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let approved = script::approve(&file, &out, &key, now + days * 86_400)?;
            println!(
                "approved by {} signer(s); written to {}",
                approved.approvals.len(),
                out.display()
            );
        }
        Command::Pipeline(PipelineCommand::Check { file }) => {
            match triad_pipeline::load(&file, &script::pipeline_script_info) {
                Ok(pipeline) => {
                    let names: Vec<&str> =
                        pipeline.actions.iter().map(|a| a.name.as_str()).collect();
                    let order = pipeline.order(&names).map_err(|e| anyhow::anyhow!("{e}"))?;
                    println!("{}: valid, digest {}", file.display(), pipeline.digest());
                    for action in order {
                        println!("  {}", action.name);
                    }
                }
                Err(errors) => {
                    for error in &errors {
                        eprintln!("{error}");
                    }
                    bail!("{}: {} errors", file.display(), errors.len());
                }
            }
        }
        Command::Run {
            actions,
            pipeline,
            workspace,
            force_run_dependencies,
            out,
            conn,
        } => {
            let submission =
                jobs::submission(&pipeline, &workspace, &actions, force_run_dependencies)?;
            let client = connect(&conn.conn)?;
            let job = client.submit_job(&submission)?;
            println!("job {} submitted", job.id);
            let (job, released) = jobs::run_job(&client, &job, &submission, &out)?;
            print_job(&job, true);
            for file in &released {
                println!(
                    "released: {} (action {}, step {}; {})",
                    file.path.display(),
                    file.action,
                    file.step,
                    file.rule.as_deref().unwrap_or("no release policy")
                );
            }
            client.close();
            if job.status != JobStatus::Succeeded {
                bail!("job {} {}", job.id, job.status.as_str());
            }
        }
        Command::Jobs { id, conn } => {
            let client = connect(&conn.conn)?;
            match id {
                Some(id) => print_job(&client.job(&id)?, true),
                None => {
                    for job in client.jobs()? {
                        print_job(&job, false);
                    }
                }
            }
            client.close();
        }
        Command::CancelQuery { conn } => {
            let client = connect(&conn.conn)?;
            if client.cancel_query()? {
                println!("cancelled your running query");
            } else {
                println!("no query of yours was running");
            }
            client.close();
        }
        Command::Cancel { id, conn } => {
            let client = connect(&conn.conn)?;
            let job = client.cancel_job(&id)?;
            print_job(&job, true);
            client.close();
        }
        Command::Tables { design, conn } => {
            let client = connect(&conn.conn)?;
            if design {
                client.set_mode(Mode::Design);
            }
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
        Command::Demo {
            rows,
            dir,
            chart,
            seed,
        } => demo(rows, dir, chart, seed)?,
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

fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
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

fn demo(
    rows: usize,
    dir: Option<PathBuf>,
    chart: Option<PathBuf>,
    seed: u64,
) -> anyhow::Result<()> {
    if rows == 0 {
        bail!("--rows must be at least 1");
    }
    let temp;
    let (root, kept) = match dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                bail!("{} is not empty", d.display());
            }
            std::fs::create_dir_all(&d)?;
            (d, true)
        }
        None => {
            temp = TempRoot::new()?;
            (temp.0.clone(), false)
        }
    };
    let chart = chart.unwrap_or_else(|| {
        if kept {
            root.join("seed-analysis.svg")
        } else {
            std::env::temp_dir().join("triad-seed-analysis.svg")
        }
    });
    println!(
        "starting three nodes on 127.0.0.1 (files in {})",
        root.display()
    );
    // Four people, each with a key made on "their machine" (here, files
    // in the demo directory) and admitted by the operators' signed roles
    // document.
    let people = [
        ("hospital", vec![Role::Owner]),
        ("pharmacy", vec![Role::Owner]),
        ("analyst", vec![Role::Analyst]),
        ("approver", vec![Role::Approver]),
    ];
    let mut users = Vec::new();
    for (name, roles) in &people {
        let key = UserKey::generate()?;
        key.save(&root.join(format!("{name}.key")))?;
        users.push((name.to_string(), key.public().to_string(), roles.clone()));
    }
    let program = std::env::current_exe().context("locating the triad executable")?;
    let mut cluster = LocalCluster::create(
        &root.join("cluster"),
        &program,
        &users,
        &root.join("hospital.key"),
    )?;
    cluster.start(Duration::from_secs(60))?;
    let connect_as = |name: &str| -> anyhow::Result<Client> {
        let mut file = ConnectionFile::load(&cluster.connection_path())?;
        file.key = root.join(format!("{name}.key"));
        Ok(Client::connect(&file)?)
    };

    println!("\n1. the data owners upload their tables (production):");
    let tables = seed::write_demo_tables(&root, rows, seed)?;
    let mut handles = Vec::new();
    for ((csv, schema), owner) in tables.iter().zip(["hospital", "pharmacy"]) {
        let client = connect_as(owner)?;
        let table = read_table(csv, Some(&Schema::load(schema)?))?;
        let uploaded = client.upload(&table)?;
        println!(
            "  {owner}: {} ({} rows) -> handle {}",
            csv.file_name().unwrap_or_default().to_string_lossy(),
            uploaded.rows,
            uploaded.handle
        );
        handles.push(uploaded.handle);
        client.close();
    }

    let analyst = connect_as("analyst")?;
    println!("\n2. the analyst sees only public metadata:");
    for table in analyst.tables()? {
        print_table(&table);
    }
    println!("\n3. design mode: the analyst uploads dummy tables standing for them");
    let dummy_dir = root.join("dummy");
    std::fs::create_dir_all(&dummy_dir)?;
    let dummy_tables = seed::write_demo_tables(&dummy_dir, rows.clamp(1, 500), seed ^ 0xd0d0)?;
    let mut dummies = Vec::new();
    for ((csv, schema), production) in dummy_tables.iter().zip(&handles) {
        let table = read_table(csv, Some(&Schema::load(schema)?))?;
        let options = UploadOptions {
            dummy_for: Some(*production),
            approvers: Vec::new(),
        };
        let uploaded = analyst.upload_with(&table, &options)?;
        println!("  dummy {} for {production}", uploaded.handle);
        dummies.push(uploaded.handle);
    }

    println!(
        "\n4. the analyst records the seed analysis on the dummies:\n  merged = party1.merge(party2, how=inner, on={:?})\n  per month: merged[((condition_y == 1) & (month == m)).with_threshold({})][\"condition_y\"].sum()",
        seed::SEED_KEYS,
        seed::SEED_THRESHOLD
    );
    let recording = root.join("seed-analysis.recording");
    analyst.record("seed-analysis")?;
    let on_dummies = analyst.allow_errors(|| {
        seed::seed_analysis(&analyst, &dummies[0], &dummies[1], &seed::SEED_MONTHS)
    })?;
    analyst.end(&recording)?;
    print!("{}", seed::format_results(&on_dummies));
    println!("  recording written to {}", recording.display());

    println!("\n5. the approver reviews and signs it:");
    let (shown, _) = script::Recording::load(&recording)?;
    for step in &shown.steps {
        println!(
            "  step {}: reads {} tables; on dummy data {}",
            step.step,
            step.inputs.len(),
            step.dummy_output
        );
    }
    let approved = root.join("seed-analysis.approved");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    script::approve(
        &recording,
        &approved,
        &UserKey::load(&root.join("approver.key"))?,
        now + 86_400,
    )?;
    println!("  approval written to {}", approved.display());

    println!("\n6. the analyst runs the approved script unchanged on the production tables:");
    let started = Instant::now();
    analyst.load(&approved)?;
    let results = seed::seed_analysis(&analyst, &handles[0], &handles[1], &seed::SEED_MONTHS)?;
    analyst.close_script()?;
    println!(
        "  (merge stored and {} months queried in {:.1} s; results reconstructed only here)\n",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    print!("{}", seed::format_results(&results));
    let clear = seed::seed_analysis_clear(&tables[0].0, &tables[1].0, &seed::SEED_MONTHS)?;
    if clear == results {
        println!("\npolars in the clear on the generated CSVs agrees: yes");
    } else {
        println!("\npolars in the clear on the generated CSVs agrees: NO");
        print!("{}", seed::format_results(&clear));
        bail!("the secret result differs from the clear one");
    }
    seed::write_chart(&chart, &results)?;
    println!("bar chart written to {}", chart.display());

    println!("\n7. a changed script (month 6 instead of 5) is refused by the nodes:");
    analyst.load(&approved)?;
    let mut changed = seed::SEED_MONTHS;
    changed[1] = 6;
    match seed::seed_analysis(&analyst, &handles[0], &handles[1], &changed) {
        Err(error @ triad_client::ClientError::NoMatchingAuthorization { .. }) => {
            println!("  {error}");
        }
        Err(other) => return Err(other.into()),
        Ok(_) => bail!("the nodes ran a script that was not approved"),
    }
    analyst.close_script()?;

    demo_job(&root, &analyst, &dummies, &handles, &tables)?;
    analyst.close();
    cluster.stop();
    Ok(())
}

/// The demo's last part: the same analysis as a two-action pipeline run
/// as a job request, its merged table a secret output the second action
/// reads, then again with the unchanged merge skipped.
fn demo_job(
    root: &Path,
    analyst: &Client,
    dummies: &[Handle],
    handles: &[Handle],
    tables: &[(PathBuf, PathBuf)],
) -> anyhow::Result<()> {
    println!(
        "\n8. the same analysis as a pipeline (triad.yaml) run as a job request: \
         merge_tables stores the merge (highly_sensitive), monthly_sums reveals the sums \
         (moderately_sensitive, through the release policy)"
    );
    let project = root.join("project");
    std::fs::create_dir_all(&project)?;
    analyst.record("merge")?;
    let merged = analyst
        .frame(&dummies[0])?
        .merge(
            &analyst.frame(&dummies[1])?,
            triad_client::prelude::How::Inner,
            &seed::SEED_KEYS,
        )
        .store()?;
    analyst.end(&project.join("merge.recording"))?;
    analyst.record("monthly-sums")?;
    analyst.allow_errors(|| seed::monthly_sums(&analyst.frame(&merged)?, &seed::SEED_MONTHS))?;
    analyst.end(&project.join("sums.recording"))?;
    let approver = UserKey::load(&root.join("approver.key"))?;
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 86_400;
    for name in ["merge", "sums"] {
        script::approve(
            &project.join(format!("{name}.recording")),
            &project.join(format!("{name}.approved")),
            &approver,
            expires,
        )?;
    }
    let pipeline = project.join("triad.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "version: 1\nactions:\n  merge_tables:\n    script: merge.approved\n    inputs:\n      party1: {}\n      party2: {}\n    outputs:\n      highly_sensitive:\n        merged: table\n  monthly_sums:\n    script: sums.approved\n    needs: [merge_tables]\n    inputs:\n      merged: merge_tables.merged\n    outputs:\n      moderately_sensitive:\n        sums: aggregates\n",
            handles[0], handles[1]
        ),
    )?;
    println!("  {} written; two recordings approved", pipeline.display());
    let released_dir = project.join("released");
    let actions = ["monthly_sums".to_string()];
    let clear = seed::seed_analysis_clear(&tables[0].0, &tables[1].0, &seed::SEED_MONTHS)?;
    for round in ["first run", "again: the unchanged merge is skipped"] {
        let submission = jobs::submission(&pipeline, "demo", &actions, false)?;
        let job = analyst.submit_job(&submission)?;
        println!("  triad run monthly_sums --workspace demo ({round}):");
        let (job, released) = jobs::run_job(analyst, &job, &submission, &released_dir)?;
        print_job(&job, true);
        if job.status != JobStatus::Succeeded {
            bail!("job {} {}", job.id, job.status.as_str());
        }
        if released.len() != clear.len() {
            bail!(
                "{} released files for {} months",
                released.len(),
                clear.len()
            );
        }
        for (file, (month, exact)) in released.iter().zip(&clear) {
            let text = std::fs::read_to_string(&file.path)?;
            let value = text
                .lines()
                .nth(1)
                .and_then(|l| l.rsplit(',').next())
                .unwrap_or("");
            let value = value.trim_matches('"');
            // The release policy redacts sums beside counts of at most 7
            // (these sums count their rows); the others are exact.
            let expected = match exact {
                Some(v) if *v > 7 => v.to_string(),
                Some(_) => "redacted".into(),
                None => "threshold not met".into(),
            };
            let agrees = if value == expected {
                "agrees"
            } else {
                "DIFFERS"
            };
            println!("    month {month:>2}: {value} (polars {expected}: {agrees})");
            if value != expected {
                bail!("the released value for month {month} differs from polars after the policy");
            }
        }
        if let Some(rule) = released.iter().find_map(|r| r.rule.as_deref()) {
            println!("    release policy: {rule}");
        }
    }
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
