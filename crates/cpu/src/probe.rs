//! A memory-bandwidth probe: how fast the pool's threads can stream a buffer much larger than
//! the caches right now, the ceiling for any memory-bound kernel (decode reads every weight
//! once per token).

use std::time::Instant;

use crate::matrix::Buffer;
use crate::threads::Pool;
use crate::vector::sum;

/// Bytes of the probe buffer: far past every cache level.
const BYTES: usize = 256 << 20;

/// Read bandwidth in GB/s: the best of `passes` passes summing a 256 MB buffer (on huge pages
/// where the system has them, like the weights), split across the pool's threads.
pub fn read_gbps(pool: &Pool, passes: usize) -> f64 {
    let n = BYTES / 4;
    let data = Buffer::collect(n, (0..n).map(|i| (i % 7) as f32));
    let chunk = n.div_ceil(4 * pool.threads());
    let mut best = f64::MAX;
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        pool.chunks(n, chunk, &|r| {
            std::hint::black_box(sum(pool.cpu(), &data[r]));
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    BYTES as f64 / best / 1e9
}
