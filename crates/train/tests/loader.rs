//! The data loader: reproducible random windows, exact sequential windows, state round trips.

use train::{Batcher, DataOrder, LoaderState, Rng, TokenFile};

/// A stream where token i is i, so a window's tokens reveal its start.
fn counting(n: u32) -> TokenFile {
    TokenFile::from_tokens((0..n).collect())
}

#[test]
fn sequential_windows_are_consecutive_and_wrap_after_last_full_window() {
    // N = 23, T = 5: windows start at 0, 5, 10, 15 (W = (23 - 1) / 5 = 4), then wrap to 0.
    let mut b = Batcher::new(counting(23), 3, 5, DataOrder::Sequential).expect("loader");
    assert_eq!(b.windows_per_epoch(), 4);
    let first = b.next_batch().unwrap();
    assert_eq!(first.starts, [0, 5, 10]);
    assert_eq!(&first.inputs[..5], [0, 1, 2, 3, 4]);
    assert_eq!(&first.targets[..5], [1, 2, 3, 4, 5]);
    assert_eq!(&first.inputs[10..15], [10, 11, 12, 13, 14]);
    assert_eq!(&first.targets[10..15], [11, 12, 13, 14, 15]);
    let second = b.next_batch().unwrap();
    assert_eq!(second.starts, [15, 0, 5]);
    assert_eq!(&second.targets[..5], [16, 17, 18, 19, 20]);
    assert_eq!(
        b.state(),
        LoaderState::Sequential {
            next_window: 6,
            seq_len: 5,
            tokens: 23
        }
    );
}

#[test]
fn random_windows_follow_the_documented_draws() {
    let (n, t) = (1000u32, 16usize);
    let mut b = Batcher::new(counting(n), 4, t, DataOrder::Random { seed: 1234 }).expect("loader");
    let batch = b.next_batch().unwrap();
    // The documented rule: start = Rng(seed).below(N - T), one draw per row.
    let mut rng = Rng::new(1234);
    let want: Vec<usize> = (0..4)
        .map(|_| rng.below(n as u64 - t as u64) as usize)
        .collect();
    assert_eq!(batch.starts, want);
    for (row, &s) in batch.starts.iter().enumerate() {
        assert!(s + t < n as usize);
        assert_eq!(batch.inputs[row * t], s as u32);
        assert_eq!(batch.targets[row * t + t - 1], (s + t) as u32);
    }
}

#[test]
fn random_windows_match_independent_python_replay() {
    // tests/fixtures/make_windows.py reimplements the documented rule in Python.
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/windows.json")).expect("fixture");
    for case in fixture.as_array().expect("cases") {
        let seed = case["seed"].as_u64().expect("seed");
        let n = case["tokens"].as_u64().expect("tokens") as usize;
        let t = case["seq_len"].as_u64().expect("seq_len") as usize;
        let want: Vec<usize> = case["starts"]
            .as_array()
            .expect("starts")
            .iter()
            .map(|s| s.as_u64().expect("start") as usize)
            .collect();
        // A stream of n tokens without materializing a big one: only the length matters.
        let tokens = TokenFile::from_tokens(vec![0; n]);
        let mut b = Batcher::new(tokens, want.len(), t, DataOrder::Random { seed }).expect("l");
        assert_eq!(b.next_batch().unwrap().starts, want, "seed {seed}");
    }
}

#[test]
fn random_windows_cover_every_start_uniformly() {
    // N − T = 4 possible starts; each should appear about a quarter of the time.
    let mut b = Batcher::new(counting(12), 8, 8, DataOrder::Random { seed: 7 }).expect("loader");
    let mut counts = [0usize; 4];
    for _ in 0..500 {
        for s in b.next_batch().unwrap().starts {
            counts[s] += 1;
        }
    }
    for c in counts {
        assert!((900..1100).contains(&c), "{counts:?}");
    }
}

#[test]
fn same_seed_same_windows_and_different_seed_differs() {
    let run = |seed| {
        let mut b =
            Batcher::new(counting(5000), 2, 32, DataOrder::Random { seed }).expect("loader");
        (0..10)
            .flat_map(|_| b.next_batch().unwrap().starts)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn restored_state_continues_identically() {
    for order in [DataOrder::Random { seed: 99 }, DataOrder::Sequential] {
        let mut a = Batcher::new(counting(3000), 4, 64, order).expect("loader");
        for _ in 0..7 {
            a.next_batch().unwrap();
        }
        let saved: LoaderState =
            serde_json::from_str(&serde_json::to_string(&a.state()).expect("ser")).expect("de");
        let mut b = Batcher::new(counting(3000), 4, 64, order).expect("loader");
        b.restore(&saved).expect("restore");
        for _ in 0..20 {
            assert_eq!(
                a.next_batch().unwrap(),
                b.next_batch().unwrap(),
                "{order:?}"
            );
        }
    }
}

#[test]
fn restore_rejects_other_order_seed_or_data() {
    let mut random = Batcher::new(counting(500), 1, 8, DataOrder::Random { seed: 1 }).expect("l");
    let state = random.state();
    let mut other_seed =
        Batcher::new(counting(500), 1, 8, DataOrder::Random { seed: 2 }).expect("l");
    assert!(other_seed.restore(&state).is_err());
    let mut sequential = Batcher::new(counting(500), 1, 8, DataOrder::Sequential).expect("l");
    assert!(sequential.restore(&state).is_err());
    let mut other_len =
        Batcher::new(counting(501), 1, 8, DataOrder::Random { seed: 1 }).expect("l");
    let msg = other_len
        .restore(&state)
        .expect_err("different data")
        .to_string();
    assert!(msg.contains("500") && msg.contains("501"), "{msg}");
    random
        .restore(&state)
        .expect("same loader accepts its own state");
}

#[test]
fn loader_rejects_stream_shorter_than_one_window() {
    assert!(Batcher::new(counting(8), 1, 8, DataOrder::Sequential).is_err());
    assert!(Batcher::new(counting(9), 1, 8, DataOrder::Sequential).is_ok());
    assert!(Batcher::new(counting(9), 0, 8, DataOrder::Sequential).is_err());
    assert!(Batcher::new(counting(9), 1, 0, DataOrder::Sequential).is_err());
}

#[test]
fn state_serializes_with_order_tag() {
    let b = Batcher::new(counting(100), 1, 8, DataOrder::Sequential).expect("loader");
    let json = serde_json::to_string(&b.state()).expect("ser");
    assert_eq!(
        json,
        r#"{"order":"sequential","next_window":0,"seq_len":8,"tokens":100}"#
    );
}
