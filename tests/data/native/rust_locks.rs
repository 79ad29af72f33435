//! Rust std lock deadlocks for lockdump's tests. Mode (argv[1]):
//! - `static`: AB-BA over two `static Mutex<()>`;
//! - `arc`: AB-BA over two `Arc<Mutex<Vec<u8>>>`;
//! - `rwlock`: t1 write-locks RW then locks M; t2 locks M then RW.write().
//! main joins t1. A short-lived reporter thread prints
//! `READY main=TID t1=TID t2=TID a=ADDR b=ADDR` once both workers hold their
//! first lock, then exits, so that no surviving thread keeps copies of the
//! lock addresses on its stack except those that really use the locks.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::thread;

static LOCK_A: Mutex<()> = Mutex::new(());
static LOCK_B: Mutex<()> = Mutex::new(());
static RW: RwLock<u64> = RwLock::new(0);
static TIDS: [AtomicI32; 2] = [AtomicI32::new(0), AtomicI32::new(0)];
static HOLDING: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

extern "C" {
    fn gettid() -> i32;
}

fn tid() -> i32 {
    unsafe { gettid() }
}

/// Record our TID, mark that we hold our first lock, and wait for the other thread to hold its.
fn rendezvous(me: usize, barrier: &Barrier) {
    TIDS[me].store(tid(), SeqCst);
    HOLDING[me].store(true, SeqCst);
    barrier.wait();
}

#[inline(never)]
fn lock_then<T, U>(first: &Mutex<T>, second: &Mutex<U>, me: usize, barrier: &Barrier) {
    let g1 = first.lock().unwrap();
    rendezvous(me, barrier);
    let g2 = second.lock().unwrap();
    drop(g2);
    drop(g1);
}

#[inline(never)]
fn write_then_lock(rw: &RwLock<u64>, m: &Mutex<()>, barrier: &Barrier) {
    let w = rw.write().unwrap();
    rendezvous(0, barrier);
    let g = m.lock().unwrap();
    drop(g);
    drop(w);
}

#[inline(never)]
fn lock_then_write(m: &Mutex<()>, rw: &RwLock<u64>, barrier: &Barrier) {
    let g = m.lock().unwrap();
    rendezvous(1, barrier);
    let w = rw.write().unwrap();
    drop(w);
    drop(g);
}

type Addresses = Box<dyn Fn() -> (usize, usize) + Send>;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let barrier = Arc::new(Barrier::new(2));
    // The reporter thread computes the addresses itself so that main's stack
    // holds no copies of them.
    let (addresses, t1, t2): (Addresses, thread::JoinHandle<()>, thread::JoinHandle<()>) = match mode.as_str() {
        "static" => {
            let (b1, b2) = (barrier.clone(), barrier.clone());
            let t1 = thread::Builder::new().name("rust-1".into()).spawn(move || lock_then(&LOCK_A, &LOCK_B, 0, &b1));
            let t2 = thread::Builder::new().name("rust-2".into()).spawn(move || lock_then(&LOCK_B, &LOCK_A, 1, &b2));
            let addrs = || (&LOCK_A as *const _ as usize, &LOCK_B as *const _ as usize);
            (Box::new(addrs), t1.unwrap(), t2.unwrap())
        }
        "arc" => {
            let a = Arc::new(Mutex::new(vec![1u8]));
            let b = Arc::new(Mutex::new(vec![2u8]));
            let (a1, b1, x1) = (a.clone(), b.clone(), barrier.clone());
            let (a2, b2, x2) = (a.clone(), b.clone(), barrier.clone());
            let t1 = thread::Builder::new().name("rust-1".into()).spawn(move || lock_then(&a1, &b1, 0, &x1));
            let t2 = thread::Builder::new().name("rust-2".into()).spawn(move || lock_then(&b2, &a2, 1, &x2));
            let addrs = move || (&*a as *const _ as usize, &*b as *const _ as usize);
            (Box::new(addrs), t1.unwrap(), t2.unwrap())
        }
        "rwlock" => {
            let (b1, b2) = (barrier.clone(), barrier.clone());
            let t1 = thread::Builder::new().name("rust-1".into()).spawn(move || write_then_lock(&RW, &LOCK_A, &b1));
            let t2 = thread::Builder::new().name("rust-2".into()).spawn(move || lock_then_write(&LOCK_A, &RW, &b2));
            let addrs = || (&RW as *const _ as usize, &LOCK_A as *const _ as usize);
            (Box::new(addrs), t1.unwrap(), t2.unwrap())
        }
        other => panic!("unknown mode {other:?}"),
    };
    let main_tid = tid();
    thread::spawn(move || {
        while !(HOLDING[0].load(SeqCst) && HOLDING[1].load(SeqCst)) {
            thread::sleep(std::time::Duration::from_millis(1));
        }
        let (a, b) = addresses();
        println!(
            "READY main={main_tid} t1={} t2={} a={a:#x} b={b:#x}",
            TIDS[0].load(SeqCst),
            TIDS[1].load(SeqCst)
        );
    })
    .join()
    .unwrap();
    t1.join().unwrap();
    t2.join().unwrap();
}
