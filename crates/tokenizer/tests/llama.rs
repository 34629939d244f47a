//! Llama SentencePiece against the `sentencepiece` package (tests/fixtures/make_fixture.py),
//! from both tokenizer.model and llama2.c's tokenizer.bin.

mod common;

use std::sync::OnceLock;

use common::{data, fixture, ids, stream_decode};
use proptest::prelude::*;
use tokenizer::{PieceType, SentencePieceTokenizer, Tokenizer};

fn llama() -> &'static SentencePieceTokenizer {
    static TOK: OnceLock<SentencePieceTokenizer> = OnceLock::new();
    TOK.get_or_init(|| SentencePieceTokenizer::from_model(data("llama2-tokenizer.model")).unwrap())
}

fn llama2c() -> &'static SentencePieceTokenizer {
    static TOK: OnceLock<SentencePieceTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        SentencePieceTokenizer::from_llama2c_bin(data("llama2c-tokenizer.bin")).unwrap()
    })
}

#[test]
fn encode_matches_sentencepiece_on_every_fixture_case() {
    let fixture = fixture();
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(llama().encode(text), ids(&case["llama"]), "text {text:?}");
    }
}

#[test]
fn llama2c_bin_encodes_like_sentencepiece_on_every_fixture_case() {
    let fixture = fixture();
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(llama2c().encode(text), ids(&case["llama"]), "text {text:?}");
    }
}

#[test]
fn llama2c_bin_maps_onto_the_same_pieces_scores_and_types() {
    assert_eq!(llama2c().vocab_size(), llama().vocab_size());
    for id in 0..llama().vocab_size() as u32 {
        assert_eq!(llama2c().piece(id), llama().piece(id), "piece {id}");
    }
    assert_eq!(llama().piece(1), Some(("<s>", 0.0, PieceType::Control)));
    assert_eq!(llama().piece(0x41 + 3).map(|p| p.2), Some(PieceType::Byte));
}

#[test]
fn run_c_differs_only_by_stopping_at_nul() {
    let fixture = fixture();
    let mut differing = 0;
    for case in fixture["cases"].as_array().unwrap() {
        if case["llama2c_run_c"].is_null() {
            continue;
        }
        let text = case["text"].as_str().unwrap();
        let before_nul = text.split('\0').next().unwrap();
        assert_ne!(
            before_nul, text,
            "run.c differs on {text:?}, which has no NUL"
        );
        assert_eq!(llama2c().encode(before_nul), ids(&case["llama2c_run_c"]));
        differing += 1;
    }
    assert!(
        differing > 0,
        "the fixture should record run.c's NUL divergence"
    );
}

#[test]
fn decode_matches_sentencepiece() {
    let fixture = fixture();
    for case in fixture["cases"].as_array().unwrap() {
        let ids = ids(&case["llama"]);
        assert_eq!(
            llama().decode(&ids).unwrap(),
            case["llama_decoded"].as_str().unwrap()
        );
        assert_eq!(
            llama2c().decode(&ids).unwrap(),
            case["llama_decoded"].as_str().unwrap()
        );
    }
    for case in fixture["llama_decode"].as_array().unwrap() {
        let ids = ids(&case["ids"]);
        assert_eq!(
            llama().decode(&ids).unwrap(),
            case["text"].as_str().unwrap(),
            "{ids:?}"
        );
    }
}

#[test]
fn decode_inverts_encode_on_every_fixture_case() {
    let fixture = fixture();
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            case["llama_decoded"].as_str().unwrap(),
            text,
            "sentencepiece normalized"
        );
        assert_eq!(llama().decode(&llama().encode(text)).unwrap(), text);
    }
}

#[test]
fn streaming_decode_equals_whole_decode() {
    let fixture = fixture();
    let cases = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["llama"]));
    let extra = fixture["llama_decode"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["ids"]));
    for ids in cases.chain(extra) {
        assert_eq!(
            stream_decode(llama(), &ids),
            llama().decode(&ids).unwrap(),
            "{ids:?}"
        );
    }
}

#[test]
fn encode_with_bos_prepends_bos_and_special_ids_are_llamas() {
    assert_eq!(llama().bos(), Some(1));
    assert_eq!(llama().eos(), Some(2));
    assert_eq!(llama().encode_with_bos("Hello"), [1, 15043]);
    assert_eq!(llama().encode_with_bos(""), [1]);
    assert_eq!(llama().piece_id("\u{2581}Hello"), Some(15043));
}

#[test]
fn decode_rejects_an_out_of_range_id() {
    let err = llama().decode(&[32000]).unwrap_err();
    assert!(err.to_string().contains("32000"), "{err}");
}

#[test]
#[ignore = "timing; run with --release -- --ignored"]
fn encodes_a_megabyte_of_english_in_well_under_a_second() {
    let fixture = fixture();
    let prose: String = fixture["cases"].as_array().unwrap()[11..14]
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let text = prose.repeat(1_000_000 / prose.len() + 1);
    let start = std::time::Instant::now();
    let ids = llama().encode(&text);
    let elapsed = start.elapsed();
    println!("{} bytes -> {} ids in {elapsed:?}", text.len(), ids.len());
    assert!(elapsed.as_secs_f64() < 0.5, "took {elapsed:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The Llama model's normalizer is the identity, so no character is rewritten.
    #[test]
    fn decode_inverts_encode_on_arbitrary_unicode(text in any::<String>()) {
        let ids = llama().encode(&text);
        prop_assert_eq!(llama().decode(&ids).unwrap(), text.clone());
        prop_assert_eq!(stream_decode(llama(), &ids), text);
    }

    /// Mostly control, unknown and byte ids, which carry the tricky decode rules.
    #[test]
    fn streaming_decode_equals_whole_decode_on_arbitrary_ids(
        ids in prop::collection::vec(prop_oneof![3 => 0u32..300, 1 => 0u32..32000], 0..24)
    ) {
        prop_assert_eq!(stream_decode(llama(), &ids), llama().decode(&ids).unwrap());
    }
}
