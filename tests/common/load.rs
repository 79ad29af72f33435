//! A bounded HTTP load client for the loaded-service tests: a few threads
//! of this test process send `GET /` to a server on 127.0.0.1 and check each
//! answer, until told to stop or a bound on requests or time is reached.
//! Only 127.0.0.1, only a fixed number of clients, never unbounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most requests one client sends.
pub const MAX_REQUESTS_PER_CLIENT: usize = 200_000;
/// Longest a client runs.
pub const MAX_CLIENT_TIME: Duration = Duration::from_secs(900);
/// Connect/read/write timeout of each request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct HttpLoad {
    stop: Arc<AtomicBool>,
    pub done: Arc<AtomicUsize>,
    pub errors: Arc<Mutex<Vec<String>>>,
    clients: Vec<JoinHandle<()>>,
}

impl HttpLoad {
    /// Start `clients` (at most 8) clients against 127.0.0.1:`port`.
    pub fn start(port: u16, clients: usize) -> HttpLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let clients = (0..clients.min(8))
            .map(|_| {
                let (stop, done, errors) = (stop.clone(), done.clone(), errors.clone());
                std::thread::spawn(move || {
                    let started = Instant::now();
                    for _ in 0..MAX_REQUESTS_PER_CLIENT {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > MAX_CLIENT_TIME {
                            break;
                        }
                        match get(addr) {
                            Ok(()) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => errors.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        HttpLoad {
            stop,
            done,
            errors,
            clients,
        }
    }

    /// Wait (bounded) until `n` requests have been answered.
    pub fn wait_for(&self, n: usize) {
        super::wait_until(
            "the load client's first answers",
            || self.done.load(Ordering::Relaxed),
            |&d| d >= n,
        );
    }

    /// Stop every client, wait for them, and return the errors they saw.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients.drain(..) {
            let _ = c.join();
        }
        std::mem::take(&mut *self.errors.lock().unwrap())
    }
}

impl Drop for HttpLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients.drain(..) {
            let _ = c.join();
        }
    }
}

fn get(addr: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| format!("receive: {e}"))?;
    if answer.starts_with(b"HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        ))
    }
}
