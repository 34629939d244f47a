//! A persistent worker pool with spin-then-park handoff, cheap enough to split each of the
//! ~100 matrix-vector products of one decode step across threads.
//!
//! A job is a range of work cut into chunks that threads claim one at a time. Workers join a
//! job only while it is open; the caller closes it once every chunk is claimed and waits only
//! for the workers that joined, so a worker the OS has not scheduled never holds the caller up.
//! Waiting threads spin for a short while, which keeps a handoff within a microsecond or so on
//! an idle machine, then yield and at last park, giving their core to whoever has work.
//!
//! A panic in a job, on a worker or on the caller, is caught where it happens; the caller
//! waits for every worker that joined (so the borrowed closure outlives every use) and then
//! resumes the panic on its own thread. Workers survive it and the pool stays usable.
//!
//! A pool also carries the [`Cpu`] level its jobs' kernels run at.

use std::any::Any;
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crate::Cpu;

/// The most threads a pool may have: far past any CPU Orion runs on, and low enough that a
/// mistyped count is refused instead of spawning thousands of threads.
pub const MAX_THREADS: usize = 256;

/// How long a waiting thread only spins.
const SPIN_ONLY: Duration = Duration::from_micros(20);

/// How long a waiting thread spins or yields before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// A job: the caller's closure with its lifetime erased; valid until `run` returns.
type Job = *const (dyn Fn() + Sync);

/// The bit of `Shared::gate` that closes the current job to late workers.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// The current job and the thread waiting for it.
#[derive(Clone)]
struct Posted {
    job: Job,
    caller: Thread,
}

// SAFETY: the closure is `Sync` and `Pool::run` keeps it alive until every worker is done.
unsafe impl Send for Posted {}

struct Shared {
    /// Bumped once per job (and once at shutdown); workers run a job when it changes.
    epoch: AtomicUsize,
    /// Workers that joined the current job (low bits) and whether it is closed (`CLOSED`).
    gate: AtomicUsize,
    /// Workers that have finished the current job.
    done: AtomicUsize,
    /// Whether the caller is parked waiting for `done`.
    caller_sleeping: AtomicBool,
    shutdown: AtomicBool,
    posted: Mutex<Option<Posted>>,
    /// The first panic a worker caught in the current job.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

struct Worker {
    handle: Option<JoinHandle<()>>,
    thread: Thread,
    sleeping: Arc<AtomicBool>,
}

/// `threads - 1` persistent workers plus the calling thread, running kernels at one level.
pub struct Pool {
    cpu: Cpu,
    shared: Arc<Shared>,
    workers: Vec<Worker>,
}

impl Pool {
    /// A pool running jobs on `threads` threads (the caller counts as one; 0 means 1) at the
    /// process's level ([`Cpu::active`]).
    pub fn new(threads: usize) -> Pool {
        Pool::with_cpu(Cpu::active(), threads)
    }

    /// A pool running jobs on `threads` threads at level `cpu`.
    pub fn with_cpu(cpu: Cpu, threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            gate: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            caller_sleeping: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            posted: Mutex::new(None),
            panic: Mutex::new(None),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let sleeping = Arc::new(AtomicBool::new(false));
                let (s, z) = (Arc::clone(&shared), Arc::clone(&sleeping));
                let handle = thread::Builder::new()
                    .name(format!("host-worker-{index}"))
                    .spawn(move || worker_loop(&s, &z))
                    .unwrap_or_else(|e| panic!("spawning a host worker thread: {e}"));
                Worker {
                    thread: handle.thread().clone(),
                    handle: Some(handle),
                    sleeping,
                }
            })
            .collect();
        Pool {
            cpu,
            shared,
            workers,
        }
    }

    /// The level the pool's kernels run at.
    pub fn cpu(&self) -> Cpu {
        self.cpu
    }

    /// Number of threads a job runs on.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(range)` over `0..n` cut into ranges of `chunk` (the last shorter), each
    /// claimed by whichever thread is free next, and returns when all are done.
    pub fn chunks(&self, n: usize, chunk: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        let chunk = chunk.max(1);
        if self.workers.is_empty() || n <= chunk {
            f(0..n);
            return;
        }
        let next = AtomicUsize::new(0);
        self.run(&|| loop {
            let start = next.fetch_add(1, Ordering::Relaxed) * chunk;
            if start >= n {
                break;
            }
            f(start..(start + chunk).min(n));
        });
    }

    /// Runs `f` on the caller and on every worker that joins before the caller's own call
    /// returns; `f` must claim its work from shared state, so it does all of it on any subset
    /// of threads. A panic of `f` on any thread is resumed here once no thread runs `f`.
    fn run(&self, f: &(dyn Fn() + Sync)) {
        // SAFETY: only the lifetime is erased; workers run the job only after joining while it
        // is open, and this function waits for every worker that joined before returning or
        // unwinding (the caller's own panic is caught first).
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn() + Sync), Job>(f) };
        let shared = &self.shared;
        *lock(&shared.posted) = Some(Posted {
            job,
            caller: thread::current(),
        });
        // `done` first: a worker joining through the reopened gate counts only afterwards.
        shared.done.store(0, Ordering::SeqCst);
        shared.gate.store(0, Ordering::SeqCst);
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        for w in &self.workers {
            if w.sleeping.load(Ordering::SeqCst) {
                w.thread.unpark();
            }
        }
        let own = catch_unwind(AssertUnwindSafe(f));
        let joined = shared.gate.fetch_or(CLOSED, Ordering::SeqCst) & !CLOSED;
        wait_until(&shared.caller_sleeping, || {
            shared.done.load(Ordering::SeqCst) >= joined
        });
        // No thread runs the job any more: forget the pointer to the closure.
        *lock(&shared.posted) = None;
        let worker = lock(&shared.panic).take();
        if let Err(payload) = own {
            resume_unwind(payload);
        }
        if let Some(payload) = worker {
            resume_unwind(payload);
        }
    }
}

/// Waits until `ready()`: spins for [`SPIN_ONLY`], then yields the core between checks until
/// [`SPIN`], then parks with `sleeping` raised; whoever makes `ready()` true must then unpark
/// this thread if `sleeping` is set.
fn wait_until(sleeping: &AtomicBool, ready: impl Fn() -> bool) {
    let started = Instant::now();
    let mut spins = 0u32;
    while !ready() {
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) {
            std::hint::spin_loop();
            continue;
        }
        let waited = started.elapsed();
        if waited < SPIN_ONLY {
            continue;
        }
        if waited < SPIN {
            thread::yield_now();
            continue;
        }
        sleeping.store(true, Ordering::SeqCst);
        if !ready() {
            thread::park();
        }
        sleeping.store(false, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker_loop(shared: &Shared, sleeping: &AtomicBool) {
    let mut seen = 0usize;
    loop {
        wait_until(sleeping, || shared.epoch.load(Ordering::SeqCst) != seen);
        seen = shared.epoch.load(Ordering::SeqCst);
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if shared.gate.fetch_add(1, Ordering::SeqCst) & CLOSED != 0 {
            continue;
        }
        let posted = lock(&shared.posted).clone();
        if let Some(p) = &posted {
            // SAFETY: this worker joined the open job, so `Pool::run` keeps the closure alive
            // until `done` counts it (also when the job panics: the panic is caught here).
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*p.job)() }));
            if let Err(payload) = result {
                lock(&shared.panic).get_or_insert(payload);
            }
        }
        shared.done.fetch_add(1, Ordering::SeqCst);
        if shared.caller_sleeping.load(Ordering::SeqCst) {
            if let Some(p) = posted {
                p.caller.unpark();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        for w in &mut self.workers {
            w.thread.unpark();
            if let Some(h) = w.handle.take() {
                // A worker that panicked has nothing left to clean up.
                let _ = h.join();
            }
        }
    }
}

/// A mutable slice shared by the threads of one job, each writing a disjoint range.
pub struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: `range` hands out non-overlapping parts only (the caller's contract), and `T: Send`.
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    /// Wraps `s` for the duration of a job.
    pub fn new(s: &'a mut [T]) -> Self {
        Disjoint {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: PhantomData,
        }
    }

    /// The first element, for writers of strided disjoint parts.
    pub fn as_ptr(&self) -> *mut T {
        self.ptr
    }

    /// The elements `r`.
    ///
    /// # Safety
    /// No two live results may overlap.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, r: Range<usize>) -> &mut [T] {
        assert!(r.start <= r.end && r.end <= self.len, "range out of bounds");
        std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.end - r.start)
    }
}
