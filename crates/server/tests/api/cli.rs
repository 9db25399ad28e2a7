//! The `steward` command: migrate, admin create, serve with its setup link and graceful stop.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn steward(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
    c.current_dir(dir)
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_LISTEN")
        .env("STEWARD_SQLITE_DURABLE", "false");
    c
}

#[test]
fn migrate_creates_the_database_in_the_working_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = steward(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("steward.db").exists());
}

#[test]
fn admin_create_reads_the_password_from_stdin_and_refuses_a_taken_email() {
    let dir = tempfile::tempdir().unwrap();
    let create = |email: &str| {
        let mut child = steward(dir.path())
            .args(["admin", "create", "--email", email, "--role", "system_admin", "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = create("Ops@Example.com");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("created Ops@example.com"));
    let again = create("ops@example.com");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"), "{again:?}");
    let verify = steward(dir.path()).args(["audit", "verify"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
}

#[test]
fn serve_in_an_empty_folder_prints_a_setup_link_is_ready_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let mut child = steward(dir.path())
        .arg("serve")
        .env("STEWARD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut link = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with("http://") && line.contains("/setup/") {
            link = Some(line.trim().to_owned());
        }
        if line.contains("listening") {
            break;
        }
    }
    let link = link.expect("a setup link is printed when no admin exists");
    assert!(started.elapsed() < Duration::from_secs(20));
    let path = link.split_once(&format!("{port}")).unwrap().1.to_owned();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("Create the first system administrator"));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a SIGTERM stops steward cleanly: {status:?}");
}
