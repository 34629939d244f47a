//! A persistent worker pool with spin-then-park handoff, cheap enough to split each of the
//! ~100 matrix-vector products of one decode step across threads.
//!
//! Waiting threads (workers between jobs, the caller until the workers finish) spin for a
//! short while, which keeps a handoff within a microsecond or so on an idle machine, then yield
//! and at last park, so that on a machine busy with other work they give their core to the
//! thread that has work.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long a waiting thread only spins.
const SPIN_ONLY: Duration = Duration::from_micros(20);

/// How long a waiting thread spins or yields before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// A job: the caller's closure with its lifetime erased; valid until `run` returns.
type Job = *const (dyn Fn(usize) + Sync);

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
    /// Workers that have finished the current job.
    done: AtomicUsize,
    /// Whether the caller is parked waiting for `done`.
    caller_sleeping: AtomicBool,
    shutdown: AtomicBool,
    posted: Mutex<Option<Posted>>,
}

struct Worker {
    handle: Option<JoinHandle<()>>,
    thread: Thread,
    sleeping: Arc<AtomicBool>,
}

/// `threads - 1` persistent workers plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<Worker>,
}

impl Pool {
    /// A pool running jobs on `threads` threads (the caller counts as one; 0 means 1).
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            caller_sleeping: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            posted: Mutex::new(None),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let sleeping = Arc::new(AtomicBool::new(false));
                let (s, z) = (Arc::clone(&shared), Arc::clone(&sleeping));
                let handle = thread::Builder::new()
                    .name(format!("host-worker-{index}"))
                    .spawn(move || worker_loop(&s, &z, index))
                    .unwrap_or_else(|e| panic!("spawning a host worker thread: {e}"));
                Worker {
                    thread: handle.thread().clone(),
                    handle: Some(handle),
                    sleeping,
                }
            })
            .collect();
        Pool { shared, workers }
    }

    /// Number of threads a job runs on.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(i)` for every thread index `i` in `0..threads()`, the caller taking index 0,
    /// and returns when all are done.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            f(0);
            return;
        }
        // SAFETY: only the lifetime is erased; this function waits for every worker to finish
        // with the job before returning, so the closure outlives all uses.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f) };
        *lock(&self.shared.posted) = Some(Posted {
            job,
            caller: thread::current(),
        });
        self.shared.done.store(0, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        for w in &self.workers {
            if w.sleeping.load(Ordering::SeqCst) {
                w.thread.unpark();
            }
        }
        f(0);
        let (shared, n) = (&self.shared, self.workers.len());
        wait_until(&shared.caller_sleeping, || {
            shared.done.load(Ordering::SeqCst) >= n
        });
    }

    /// Runs `f(range)` over `0..n` split into `threads()` contiguous ranges whose bounds are
    /// multiples of `align` (except the end).
    pub fn split(&self, n: usize, align: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        let t = self.threads();
        if t == 1 || n <= align {
            f(0..n);
            return;
        }
        self.run(&|i| {
            let r = chunk(n, t, align, i);
            if !r.is_empty() {
                f(r);
            }
        });
    }

    /// Runs `f(range)` over `0..n` cut into ranges of `chunk` (the last shorter), handed out
    /// to whichever thread is free next, so a thread slowed by other load on the machine
    /// holds up the others by one chunk at most.
    pub fn chunks(&self, n: usize, chunk: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        let chunk = chunk.max(1);
        if self.threads() == 1 || n <= chunk {
            f(0..n);
            return;
        }
        let next = AtomicUsize::new(0);
        self.run(&|_| loop {
            let start = next.fetch_add(1, Ordering::Relaxed) * chunk;
            if start >= n {
                break;
            }
            f(start..(start + chunk).min(n));
        });
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

/// The `i`-th of `t` contiguous ranges covering `0..n`, bounds rounded to `align`.
pub fn chunk(n: usize, t: usize, align: usize, i: usize) -> Range<usize> {
    let blocks = n.div_ceil(align);
    let bound = |k: usize| ((blocks * k / t) * align).min(n);
    bound(i)..bound(i + 1)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker_loop(shared: &Shared, sleeping: &AtomicBool, index: usize) {
    let mut seen = 0usize;
    loop {
        wait_until(sleeping, || shared.epoch.load(Ordering::SeqCst) != seen);
        seen = shared.epoch.load(Ordering::SeqCst);
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let posted = lock(&shared.posted).clone();
        if let Some(Posted { job, caller }) = posted {
            // SAFETY: `Pool::run` keeps the closure alive until `done` counts this worker.
            unsafe { (*job)(index) };
            shared.done.fetch_add(1, Ordering::SeqCst);
            if shared.caller_sleeping.load(Ordering::SeqCst) {
                caller.unpark();
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
