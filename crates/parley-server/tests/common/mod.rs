//! Helpers shared by the integration tests that run the `parley` binary.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A process-unique suffix for temp names.
pub fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A database the binary can be pointed at.
pub trait Db {
    /// Its `--database-url`.
    fn url(&self) -> String;
}

/// A fresh directory for a SQLite database, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new directory under the system temp dir.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("parley-cli-test-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.0.join("parley.db")
    }

    /// Every byte of every database file (main file, WAL, shared memory), not the key file.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.0).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "key") {
                continue;
            }
            all.extend(std::fs::read(&path).unwrap());
        }
        all
    }
}

impl Db for TempDir {
    fn url(&self) -> String {
        format!("sqlite://{}", self.db_path().display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean `PARLEY_*` environment.
pub fn parley_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parley"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PARLEY_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Run an admin command against `db` (`--database-url` appended).
pub fn parley(db: &impl Db, args: &[&str]) -> Output {
    parley_env(db, args, &[])
}

/// [`parley`] with extra environment variables.
pub fn parley_env(db: &impl Db, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = parley_command();
    cmd.args(args).arg("--database-url").arg(db.url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run, expect success, parse stdout as JSON.
pub fn json(db: &impl Db, args: &[&str]) -> Value {
    json_env(db, args, &[])
}

/// [`json`] with extra environment variables.
pub fn json_env(db: &impl Db, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = parley_env(db, args, env);
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed non-JSON ({e}): {}", stdout(&out)))
}

/// The sorted keys of a JSON object.
pub fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// 32 hex digits?
pub fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Does `haystack` contain `needle`?
pub fn windows_contain(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A running `parley serve`; killed on drop if still running.
pub struct Server {
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    /// `host:port` it listens on.
    pub addr: String,
}

impl Server {
    /// Start `parley serve` on port 0 and wait for its "listening on" log line.
    pub fn start(db: &impl Db, env: &[(&str, &str)]) -> Server {
        Self::start_inner(db, env, false)
    }

    /// [`Server::start`], then close the reading end of the server's stderr (as when a log
    /// shipper goes away): every later log line meets a broken pipe.
    pub fn start_then_close_stderr(db: &impl Db, env: &[(&str, &str)]) -> Server {
        Self::start_inner(db, env, true)
    }

    fn start_inner(db: &impl Db, env: &[(&str, &str)], close_stderr: bool) -> Server {
        Self::launch(parley_command(), db, &[], env, close_stderr)
    }

    /// Start `parley serve` on port 0 with extra `args`, run through `wrapper` (e.g.
    /// `["prlimit", "--nofile=1024:1024"]`, which execs the server under the same pid), and
    /// wait for its "listening on" log line.
    pub fn start_with(
        db: &impl Db,
        args: &[&str],
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Server {
        let bin = env!("CARGO_BIN_EXE_parley");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PARLEY_") {
                cmd.env_remove(key);
            }
        }
        Self::launch(cmd, db, args, env, false)
    }

    /// Run `cmd serve` on port 0 of `db` with `args` and `env`, drain its stderr into the log
    /// (or stop reading it after start-up, with `close_stderr`), and wait for "listening on".
    fn launch(
        mut cmd: Command,
        db: &impl Db,
        args: &[&str],
        env: &[(&str, &str)],
        close_stderr: bool,
    ) -> Server {
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(db.url())
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = log_writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
                drop(log);
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                    if close_stderr {
                        break; // drops the pipe's reading end
                    }
                }
                // Keep draining so the server never blocks on a full pipe.
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "server did not start; stdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                log.lock().unwrap()
            );
        };
        Server { child, log, addr }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `GET path`; the raw response.
    pub fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// An HTTP/1.1 request with HTTP Basic auth and a form body (for `POST`); returns the
    /// status and the body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        auth: (&str, &str),
        form: &[(&str, &str)],
    ) -> (u16, String) {
        use base64::Engine as _;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.0, auth.1));
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Basic {basic}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// [`Server::call`], expecting a 2xx JSON answer.
    pub fn ok(&self, method: &str, path: &str, auth: (&str, &str), form: &[(&str, &str)]) -> Value {
        let (status, body) = self.call(method, path, auth, form);
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {body}"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
    }

    /// SIGKILL (a crash: nothing is finished or released), then wait.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait; returns (exited successfully, stdout). Prints the server log when
    /// the exit was not clean.
    pub fn terminate(mut self) -> (bool, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        if !exit.success() {
            std::thread::sleep(Duration::from_millis(100));
            eprintln!(
                "server exited with {exit}; log:\n{}",
                self.log.lock().unwrap()
            );
        }
        (exit.success(), out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// [`Server::call`] with extra request headers, expecting a 2xx JSON answer.
    pub fn ok_with_headers(
        &self,
        method: &str,
        path: &str,
        auth: (&str, &str),
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Value {
        let (status, body) = self.call_with_headers(method, path, auth, headers, form);
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {body}"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
    }

    /// [`Server::call`] with extra request headers: the status and the body.
    pub fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        auth: (&str, &str),
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> (u16, String) {
        use base64::Engine as _;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.0, auth.1));
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Basic {basic}\r\n{extra}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status: u16 = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}
