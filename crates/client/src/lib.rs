//! A small blocking HTTP/1.1 client for the CLI's `--server URL` mode (export, import, and the
//! agents' helpers). Plain `http://host:port` only: the server is meant to sit behind a proxy
//! for anything else. The token comes from `MC_LEDGER_TOKEN`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

pub struct Client {
    host: String,
    token: Option<String>,
}

pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(url: &str) -> anyhow::Result<Client> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("--server must be http://host:port, not {url:?}"))?;
        let host = rest.trim_end_matches('/').to_owned();
        if host.is_empty() || host.contains('/') {
            bail!("--server must be http://host:port, not {url:?}");
        }
        Ok(Client {
            host,
            token: std::env::var("MC_LEDGER_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Response> {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.send("POST", path, Some(body))
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Response> {
        let mut stream = TcpStream::connect(&self.host)
            .with_context(|| format!("cannot reach the server at http://{}", self.host))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.host
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if method != "GET" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP response: {status_line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut raw = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
                if n == 0 || raw.len() + n > RESPONSE_BYTES_MAX {
                    break;
                }
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk)?;
                raw.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = length {
            if n > RESPONSE_BYTES_MAX {
                bail!("response of {n} bytes is too large");
            }
            raw.resize(n, 0);
            reader.read_exact(&mut raw)?;
        } else {
            reader
                .take(u64::try_from(RESPONSE_BYTES_MAX).unwrap_or(u64::MAX))
                .read_to_end(&mut raw)?;
        }
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        Ok(Response { status, body })
    }
}

impl Response {
    /// The body of a success, or the server's problem detail as an error.
    pub fn ok(self) -> anyhow::Result<Value> {
        if self.status < 300 {
            return Ok(self.body);
        }
        let detail = self.body["detail"].as_str().unwrap_or("no detail");
        let code = self.body["code"].as_str().unwrap_or("error");
        bail!("server answered {} {code}: {detail}", self.status)
    }
}
