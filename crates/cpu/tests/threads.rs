//! The thread pool: every chunk runs exactly once on any number of threads, and a panic in a
//! job — on a worker or on the calling thread — reaches the caller as a panic, without a hang,
//! after every thread has left the job, and leaves the pool usable.

use cpu::{Cpu, Pool};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it does not finish within a minute (a
/// hang would otherwise stall the whole test run).
fn within_a_minute(name: &str, f: impl FnOnce() + Send + 'static) {
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    assert!(
        wait.recv_timeout(Duration::from_secs(60)).is_ok(),
        "{name}: hung or died"
    );
}

#[test]
fn every_chunk_runs_once_for_any_thread_count() {
    for threads in [1, 2, 3, 5] {
        let pool = Pool::with_cpu(Cpu::PORTABLE, threads);
        let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        for chunk in [1, 7, 1000, 5000] {
            pool.chunks(1000, chunk, &|r| {
                for i in r {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        assert!(
            hits.iter().all(|h| h.load(Ordering::Relaxed) == 4),
            "{threads} threads"
        );
    }
}

/// A job over 64 chunks that panics in the chunks `bad` picks, after sleeping a little in
/// every chunk so that both threads hold chunks when it does; returns the panic message.
fn panicking_job(pool: &Pool, bad: impl Fn(usize) -> bool + Sync) -> String {
    let ran = AtomicUsize::new(0);
    let result = catch_unwind(AssertUnwindSafe(|| {
        pool.chunks(64, 1, &|r| {
            std::thread::sleep(Duration::from_millis(1));
            ran.fetch_add(1, Ordering::SeqCst);
            if bad(r.start) {
                panic!("chunk {} failed", r.start);
            }
        })
    }));
    let payload = result.expect_err("the job's panic must reach the caller");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.starts_with("chunk "), "{message}");
    message
}

#[test]
fn a_panic_on_any_thread_reaches_the_caller_and_the_pool_keeps_working() {
    within_a_minute("panicking jobs", || {
        let pool = Pool::with_cpu(Cpu::PORTABLE, 2);
        let caller = std::thread::current().id();
        // Panics wherever chunk 10 runs, and on whichever thread runs the caller's chunks.
        panicking_job(&pool, |i| i == 10);
        panicking_job(&pool, |_| std::thread::current().id() == caller);
        // Panics on the worker only.
        panicking_job(&pool, |_| std::thread::current().id() != caller);
        // Every chunk panics.
        panicking_job(&pool, |_| true);
        // The pool still runs whole jobs afterwards, on both threads.
        let count = AtomicUsize::new(0);
        for _ in 0..100 {
            pool.chunks(64, 1, &|r| {
                count.fetch_add(r.len(), Ordering::SeqCst);
            });
        }
        assert_eq!(count.load(Ordering::SeqCst), 6400);
    });
}

#[test]
fn a_worker_never_runs_a_job_after_the_caller_returned_from_it() {
    // The job borrows a local that dies when `chunks` returns or unwinds; a worker still in
    // the job then would read freed memory. Each job counts its chunks into a local; a late
    // worker would be caught adding to a counter after the check.
    within_a_minute("borrowed jobs", || {
        let pool = Pool::with_cpu(Cpu::PORTABLE, 3);
        for round in 0..200 {
            let local = AtomicUsize::new(0);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                pool.chunks(32, 1, &|r| {
                    local.fetch_add(1, Ordering::SeqCst);
                    if round % 2 == 1 && r.start == 31 {
                        panic!("late chunk");
                    }
                })
            }));
            assert_eq!(outcome.is_err(), round % 2 == 1);
            let seen = local.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(50));
            assert_eq!(
                local.load(Ordering::SeqCst),
                seen,
                "a thread ran on after the job ended"
            );
            assert_eq!(seen, 32, "round {round}: chunks lost");
        }
    });
}
