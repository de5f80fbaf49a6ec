//! `parley-bench-seed`: fill a fresh Parley database for the benchmarks in `bench/`.
//!
//! Everything goes through the same code the server uses — `parley_server::db::open` (migrations,
//! server key), `parley_server::admin` (account and API key, as `parley account create` /
//! `parley api-key create` do) and the `parley_core::store` traits (service, users, credential,
//! and bindings with `--via store`) — except the optional bulk path for bindings
//! (`bindings --via sql`): multi-row `INSERT`s of the same rows into the real `bindings` table, in
//! transactions of 100,000 rows, with foreign keys enforced. That path exists because one
//! `register_binding` call is a four-statement transaction and a million of them take longer than
//! a benchmark should spend loading; `bench/README.md` says which one each script uses.
//!
//! Output: one JSON object on stdout (SIDs, credentials in clear, counts, load rates); progress on
//! stderr. Sample files for the wrk scripts are written to `--out-dir`:
//! * `users.txt`: `USER_SID IDENTITY` per line;
//! * `bindings.txt` (bindings only): `BINDING_SID USER_SID IDENTITY` per line.
//!
//! Naming, relied on by `bench/lua/register.lua`: user `i` (0-based) has identity `user-{i}`; its
//! binding `k` has type `fcm`, endpoint `bench-ep-{i}-{k}` and address `bench-addr-{i}-{k}`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use parley_core::binding::{NewBinding, DEFAULT_MAX_BINDINGS_PER_USER, MESSAGE_TYPES};
use parley_core::credential::{Credential, CredentialSecrets, PushType};
use parley_core::service::NewService;
use parley_core::store::Store;
use parley_core::user::User;
use parley_core::{BindingSid, CredentialSid, ServiceSid, Timestamp, UserSid};
use parley_server::config::{DbConfig, Settings};
use serde::Serialize;
use sqlx::Connection as _;

/// Rows per multi-row `INSERT` in the bulk path (12 parameters each: under both backends' limits).
const BULK_ROWS_PER_STATEMENT: usize = 500;
/// Rows per transaction in the bulk path.
const BULK_ROWS_PER_TRANSACTION: usize = 100_000;

#[derive(Parser)]
#[command(about = "Seed a Parley database for the bench/ scripts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// An account, an API key, one service and `--users` users.
    Platform(Common),
    /// The same, plus one fcm credential and `--per-user` bindings for every user.
    Bindings {
        #[command(flatten)]
        common: Common,
        /// Bindings per user.
        #[arg(long, default_value_t = 10)]
        per_user: u32,
        /// How bindings are loaded: `store` (`BindingStore::register_binding`, one transaction
        /// per binding) or `sql` (bulk multi-row inserts into the real table).
        #[arg(long, value_enum, default_value_t = Via::Sql)]
        via: Via,
    },
}

#[derive(clap::Args)]
struct Common {
    /// `sqlite://PATH` or `postgres://…`, as for `parley serve`.
    #[arg(long, env = "PARLEY_DATABASE_URL")]
    database_url: String,
    /// Server key (64 hex digits); give the server the same one. Optional for SQLite (key file).
    #[arg(long, env = "PARLEY_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Users to create (identities `user-0` …).
    #[arg(long, default_value_t = 100_000)]
    users: u32,
    /// Lines in the sample files (evenly spread over the users).
    #[arg(long, default_value_t = 10_000)]
    sample: u32,
    /// Where to write `users.txt` / `bindings.txt`.
    #[arg(long)]
    out_dir: PathBuf,
    /// Concurrent store calls.
    #[arg(long, default_value_t = 8)]
    workers: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Via {
    Store,
    Sql,
}

#[derive(Serialize)]
struct Output {
    backend: &'static str,
    account_sid: String,
    auth_token: String,
    api_key_sid: String,
    api_key_secret: String,
    service_sid: String,
    credential_sid: Option<String>,
    users: u32,
    users_seconds: f64,
    users_per_sec: f64,
    bindings: u64,
    bindings_via: Option<Via>,
    bindings_seconds: Option<f64>,
    bindings_per_sec: Option<f64>,
    users_file: PathBuf,
    bindings_file: Option<PathBuf>,
}

/// What the loaders need about the service.
struct Ctx {
    store: Arc<dyn Store>,
    account: parley_core::AccountSid,
    service: ServiceSid,
    base_micros: i64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (common, bindings) = match &cli.command {
        Command::Platform(common) => (common, None),
        Command::Bindings {
            common,
            per_user,
            via,
        } => (common, Some((*per_user, *via))),
    };
    if common.users == 0 || common.workers == 0 {
        bail!("--users and --workers must be positive");
    }
    std::fs::create_dir_all(&common.out_dir)
        .with_context(|| format!("cannot create {}", common.out_dir.display()))?;

    let db = DbConfig::from_settings(&Settings {
        database_url: Some(common.database_url.clone()),
        secret_key: common.secret_key.clone(),
        ..Settings::default()
    })?;
    let (store, secrets) = parley_server::db::open(&db).await?;
    let backend = store.backend();

    let account = parley_server::admin::create_account(
        store.as_ref(),
        &secrets,
        None,
        None,
        Some("bench".to_owned()),
    )
    .await?;
    let key = parley_server::admin::create_api_key(
        store.as_ref(),
        &secrets,
        &account.sid,
        Some("bench".to_owned()),
    )
    .await?;
    let now = Timestamp::now();
    let service = store
        .create_service(&NewService::with_defaults(&account.sid, "bench", now))
        .await
        .context("cannot create the service")?;

    // Users: date_created spreads back from now, one microsecond apart, in identity order.
    let ctx = Arc::new(Ctx {
        store: store.clone(),
        account: account.sid.clone(),
        service: service.sid.clone(),
        base_micros: now.unix_micros() - 3_600_000_000,
    });
    let started = Instant::now();
    let users = create_users(
        &ctx,
        common.users,
        service.default_service_role_sid.clone(),
        common.workers,
    )
    .await?;
    let users_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "seed: {} users in {users_seconds:.1} s ({:.0}/s)",
        users.len(),
        f64::from(common.users) / users_seconds
    );
    let users_file = common.out_dir.join("users.txt");
    write_lines(
        &users_file,
        sample_indices(common.users, common.sample).map(|i| {
            let i = i as usize;
            format!("{} user-{i}", users[i])
        }),
    )?;

    let mut out = Output {
        backend,
        account_sid: account.sid.to_string(),
        auth_token: account.auth_token.clone(),
        api_key_sid: key.sid.to_string(),
        api_key_secret: key.secret.clone(),
        service_sid: service.sid.to_string(),
        credential_sid: None,
        users: common.users,
        users_seconds,
        users_per_sec: f64::from(common.users) / users_seconds,
        bindings: 0,
        bindings_via: None,
        bindings_seconds: None,
        bindings_per_sec: None,
        users_file,
        bindings_file: None,
    };

    if let Some((per_user, via)) = bindings {
        if per_user == 0 || per_user > DEFAULT_MAX_BINDINGS_PER_USER {
            bail!("--per-user must be 1..={DEFAULT_MAX_BINDINGS_PER_USER} (the server's cap)");
        }
        let secret = serde_json::to_vec(&CredentialSecrets {
            secret: Some("x".to_owned()),
            ..CredentialSecrets::default()
        })?;
        let credential = store
            .create_credential(&Credential {
                sid: CredentialSid::generate(),
                account_sid: account.sid.clone(),
                friendly_name: Some("bench fcm".to_owned()),
                credential_type: PushType::Fcm,
                sandbox: None,
                secrets_sealed: secrets.seal(&secret),
                needs_secret: false,
                date_created: now,
                date_updated: now,
            })
            .await
            .context("cannot create the credential")?;
        let started = Instant::now();
        let sampled = match via {
            Via::Store => {
                load_bindings_store(&ctx, &users, per_user, &credential.sid, common.workers).await?
            }
            Via::Sql => {
                load_bindings_sql(
                    &ctx,
                    &common.database_url,
                    &users,
                    per_user,
                    &credential.sid,
                )
                .await?
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let total = u64::from(common.users) * u64::from(per_user);
        eprintln!(
            "seed: {total} bindings via {} in {seconds:.1} s ({:.0}/s)",
            if via == Via::Store { "store" } else { "sql" },
            total as f64 / seconds
        );
        let bindings_file = common.out_dir.join("bindings.txt");
        write_lines(
            &bindings_file,
            sample_indices(common.users, common.sample).filter_map(|i| {
                let i = i as usize;
                sampled
                    .get(&i)
                    .map(|b| format!("{b} {} user-{i}", users[i]))
            }),
        )?;
        out.credential_sid = Some(credential.sid.to_string());
        out.bindings = total;
        out.bindings_via = Some(via);
        out.bindings_seconds = Some(seconds);
        out.bindings_per_sec = Some(total as f64 / seconds);
        out.bindings_file = Some(bindings_file);
    }

    if backend == "postgres" {
        // Autovacuum would analyze the freshly loaded tables within a minute anyway; doing it
        // now makes the plans (and the figures) independent of its timing.
        let mut conn = sqlx::PgConnection::connect(&common.database_url).await?;
        sqlx::query("analyze").execute(&mut conn).await?;
        conn.close().await?;
    }

    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &out)?;
    writeln!(stdout)?;
    Ok(())
}

/// `sample` indices spread evenly over `0..n` (all of them when `sample >= n`).
fn sample_indices(n: u32, sample: u32) -> impl Iterator<Item = u32> {
    let count = sample.min(n).max(1);
    (0..count).map(move |j| ((u64::from(j) * u64::from(n)) / u64::from(count)) as u32)
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Create users `0..n` with `workers` concurrent `create_user` calls; SIDs by index.
async fn create_users(
    ctx: &Arc<Ctx>,
    n: u32,
    role: Option<parley_core::RoleSid>,
    workers: u32,
) -> anyhow::Result<Vec<UserSid>> {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let ctx = ctx.clone();
        let role = role.clone();
        tasks.spawn(async move {
            let mut made = Vec::new();
            for i in (w..n).step_by(workers as usize) {
                let at = Timestamp::from_unix_micros(ctx.base_micros + i64::from(i));
                let user = User {
                    sid: UserSid::generate(),
                    account_sid: ctx.account.clone(),
                    service_sid: ctx.service.clone(),
                    identity: format!("user-{i}"),
                    friendly_name: None,
                    attributes: None,
                    role_sid: role.clone(),
                    date_created: at,
                    date_updated: at,
                };
                let user = ctx
                    .store
                    .create_user(&user, &parley_core::event::Origin::rest())
                    .await
                    .with_context(|| format!("cannot create user-{i}"))?;
                made.push((i, user.sid));
                if i % 20_000 == 0 && i > 0 {
                    eprintln!("seed: user {i}…");
                }
            }
            anyhow::Ok(made)
        });
    }
    let mut sids: Vec<Option<UserSid>> = vec![None; n as usize];
    while let Some(done) = tasks.join_next().await {
        for (i, sid) in done.context("a seeding task panicked")?? {
            sids[i as usize] = Some(sid);
        }
    }
    sids.into_iter()
        .enumerate()
        .map(|(i, s)| s.with_context(|| format!("user-{i} missing")))
        .collect()
}

/// One binding row as both loaders make it.
fn endpoint(i: usize, k: u32) -> String {
    format!("bench-ep-{i}-{k}")
}
fn address(i: usize, k: u32) -> String {
    format!("bench-addr-{i}-{k}")
}
fn message_types() -> Vec<String> {
    MESSAGE_TYPES.iter().map(|s| (*s).to_owned()).collect()
}

/// `register_binding` for every (user, k), `workers` at a time. Returns the SID of binding
/// `i % per_user` of every user (the sample file picks from these).
async fn load_bindings_store(
    ctx: &Arc<Ctx>,
    users: &[UserSid],
    per_user: u32,
    credential: &CredentialSid,
    workers: u32,
) -> anyhow::Result<std::collections::HashMap<usize, BindingSid>> {
    let users: Arc<Vec<UserSid>> = Arc::new(users.to_vec());
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers as usize {
        let (ctx, users, credential) = (ctx.clone(), users.clone(), credential.clone());
        tasks.spawn(async move {
            let mut picked = Vec::new();
            for i in (w..users.len()).step_by(workers as usize) {
                for k in 0..per_user {
                    let registered = ctx
                        .store
                        .register_binding(&NewBinding {
                            sid: BindingSid::generate(),
                            account_sid: ctx.account.clone(),
                            service_sid: ctx.service.clone(),
                            user_sid: users[i].clone(),
                            identity: format!("user-{i}"),
                            credential_sid: Some(credential.clone()),
                            binding_type: PushType::Fcm,
                            endpoint: endpoint(i, k),
                            address: address(i, k),
                            message_types: message_types(),
                            now: Timestamp::now(),
                            max_per_user: DEFAULT_MAX_BINDINGS_PER_USER,
                        })
                        .await
                        .with_context(|| format!("cannot register binding {k} of user-{i}"))?;
                    if k == i as u32 % per_user {
                        picked.push((i, registered.binding.sid));
                    }
                }
                if i % 10_000 == 0 && i > 0 {
                    eprintln!("seed: bindings of user {i}…");
                }
            }
            anyhow::Ok(picked)
        });
    }
    let mut out = std::collections::HashMap::new();
    while let Some(done) = tasks.join_next().await {
        out.extend(done.context("a seeding task panicked")??);
    }
    Ok(out)
}

/// The bulk path: the rows `register_binding` would store, inserted with multi-row `INSERT`s in
/// transactions of [`BULK_ROWS_PER_TRANSACTION`] rows on a connection of our own.
async fn load_bindings_sql(
    ctx: &Ctx,
    url: &str,
    users: &[UserSid],
    per_user: u32,
    credential: &CredentialSid,
) -> anyhow::Result<std::collections::HashMap<usize, BindingSid>> {
    let message_types = serde_json::to_string(&message_types())?;
    // (sid, user index, k, date) for every row, generated per statement.
    let per_user_usize = per_user as usize;
    let total = users.len() * per_user_usize;
    let mut picked = std::collections::HashMap::new();
    let rows = |range: std::ops::Range<usize>| -> Vec<(BindingSid, usize, u32, i64)> {
        range
            .map(|n| {
                let (i, k) = (n / per_user_usize, (n % per_user_usize) as u32);
                (BindingSid::generate(), i, k, ctx.base_micros + n as i64)
            })
            .collect()
    };
    const COLUMNS: &str = "insert into bindings (sid, account_sid, service_sid, user_sid, \
        identity, credential_sid, binding_type, endpoint, address, message_types, date_created, \
        date_updated) ";

    macro_rules! bulk {
        ($db:ty, $conn:expr) => {{
            let conn = $conn;
            let mut start = 0;
            while start < total {
                let end = (start + BULK_ROWS_PER_TRANSACTION).min(total);
                let mut tx = conn.begin().await?;
                let mut at = start;
                while at < end {
                    let stop = (at + BULK_ROWS_PER_STATEMENT).min(end);
                    let batch = rows(at..stop);
                    for (sid, i, k, _) in &batch {
                        if *k == *i as u32 % per_user {
                            picked.insert(*i, sid.clone());
                        }
                    }
                    let mut qb = sqlx::QueryBuilder::<$db>::new(COLUMNS);
                    qb.push_values(&batch, |mut b, (sid, i, k, date)| {
                        b.push_bind(sid.as_str())
                            .push_bind(ctx.account.as_str())
                            .push_bind(ctx.service.as_str())
                            .push_bind(users[*i].as_str())
                            .push_bind(format!("user-{i}"))
                            .push_bind(credential.as_str())
                            .push_bind("fcm")
                            .push_bind(endpoint(*i, *k))
                            .push_bind(address(*i, *k))
                            .push_bind(message_types.as_str())
                            .push_bind(*date)
                            .push_bind(*date);
                    });
                    qb.build()
                        .execute(&mut *tx)
                        .await
                        .context("bulk insert of bindings failed")?;
                    at = stop;
                }
                tx.commit().await?;
                eprintln!("seed: {end} bindings…");
                start = end;
            }
        }};
    }

    if url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .busy_timeout(Duration::from_secs(60))
            .foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        bulk!(sqlx::Sqlite, &mut conn);
        conn.close().await?;
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        bulk!(sqlx::Postgres, &mut conn);
        conn.close().await?;
    }
    Ok(picked)
}
