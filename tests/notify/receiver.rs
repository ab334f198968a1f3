//! A webhook receiver on a real loopback socket that answers as a script says: 2xx, a status,
//! 429 with `Retry-After`, a hang past the sender's timeout, a dropped connection. It records
//! every request it read, with its headers and when it came.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok,
    Status(u16),
    RetryAfter(u64),
    Hang(Duration),
    Drop,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    pub answer: Answer,
}

impl Received {
    pub fn id(&self) -> &str {
        self.headers.get("webhook-id").map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Answer>>>,
    log: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Listens on a free port; answers `script` in turn, then 200 to everything.
    pub fn start(script: Vec<Answer>) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    /// Listens on a given listener (a port chosen before the receiver was needed).
    pub fn on(listener: TcpListener, script: Vec<Answer>) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, l, st) = (script.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, l) = (s.clone(), l.clone());
                std::thread::spawn(move || serve(conn, &s, &l));
            }
        });
        Receiver {
            addr,
            script,
            log,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `done` holds of what was received, or fails after `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; received {:?}",
                got.iter()
                    .map(|r| (r.id().to_owned(), r.answer.clone()))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Distinct ids in the order they first came.
pub fn first_seen(got: &[Received]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    got.iter()
        .filter(|r| (200..300).contains(&status_of(&r.answer)))
        .map(|r| r.id().to_owned())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

fn status_of(a: &Answer) -> u16 {
    match a {
        Answer::Ok => 200,
        Answer::Status(s) => *s,
        Answer::RetryAfter(_) => 429,
        Answer::Hang(_) | Answer::Drop => 0,
    }
}

fn serve(conn: TcpStream, script: &Mutex<VecDeque<Answer>>, log: &Mutex<Vec<Received>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let answer = script.lock().unwrap().pop_front().unwrap_or(Answer::Ok);
    log.lock().unwrap().push(Received {
        path,
        headers,
        body,
        at: Instant::now(),
        answer: answer.clone(),
    });
    let mut conn = conn;
    let reply = |status: u16, extra: &str| {
        format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n{extra}\r\n")
    };
    let _ = match answer {
        Answer::Ok => conn.write_all(reply(200, "").as_bytes()),
        Answer::Status(s) => conn.write_all(reply(s, "").as_bytes()),
        Answer::RetryAfter(s) => {
            conn.write_all(reply(429, &format!("retry-after: {s}\r\n")).as_bytes())
        }
        Answer::Hang(d) => {
            std::thread::sleep(d);
            conn.write_all(reply(200, "").as_bytes())
        }
        Answer::Drop => conn.shutdown(std::net::Shutdown::Both),
    };
}
