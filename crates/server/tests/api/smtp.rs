//! A small SMTP server on loopback that accepts every message and keeps it, so that tests see
//! exactly what Steward sent over a real SMTP conversation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A message as it arrived.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// The subject header.
    pub fn subject(&self) -> String {
        self.data.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or("").to_owned()
    }
    /// The first link in the body whose path starts with `prefix`, without the host.
    pub fn link_token(&self, prefix: &str) -> Option<String> {
        let body = self.data.replace("=\r\n", "").replace("=3D", "=");
        let start = body.find(prefix)? + prefix.len();
        Some(body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect())
    }
}

#[derive(Clone, Default)]
pub struct SmtpSink {
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// Starts the server; returns it with its `smtp://` URL.
    pub async fn start() -> (SmtpSink, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let sink = SmtpSink::default();
        let mails = sink.mails.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let mails = mails.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink.test ESMTP\r\n").await;
                    let mut to = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                            b"250-sink.test\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("MAIL FROM") {
                            to.clear();
                            b"250 OK\r\n"
                        } else if upper.starts_with("RCPT TO") {
                            to.push(
                                line[8..].trim().trim_start_matches(':').trim().trim_matches(['<', '>']).to_owned(),
                            );
                            b"250 OK\r\n"
                        } else if upper == "DATA" {
                            let _ = write.write_all(b"354 go ahead\r\n").await;
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push_str("\r\n");
                            }
                            mails.lock().unwrap().push(Mail { to: to.clone(), data });
                            b"250 queued\r\n"
                        } else if upper == "QUIT" {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 OK\r\n"
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        (sink, url)
    }

    /// Messages to `address` so far.
    pub fn to(&self, address: &str) -> Vec<Mail> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
            .cloned()
            .collect()
    }

    /// Waits up to five seconds for `count` messages to `address`.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<Mail> {
        for _ in 0..250 {
            let got = self.to(address);
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {count} message(s) to {address}, got {:?}", self.to(address));
    }
}
