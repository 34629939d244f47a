//! GPT-2 byte-level BPE against HF `tokenizers` (tests/fixtures/make_fixture.py).

mod common;

use std::sync::OnceLock;

use common::{data, fixture, ids, stream_decode};
use proptest::prelude::*;
use tokenizer::{Gpt2Tokenizer, Tokenizer};

fn gpt2() -> &'static Gpt2Tokenizer {
    static TOK: OnceLock<Gpt2Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        Gpt2Tokenizer::from_files(data("gpt2-vocab.json"), data("gpt2-merges.txt")).unwrap()
    })
}

#[test]
fn encode_matches_hf_tokenizers_on_every_fixture_case() {
    let fixture = fixture();
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(gpt2().encode(text), ids(&case["gpt2"]), "text {text:?}");
    }
}

#[test]
fn decode_matches_hf_tokenizers_and_round_trips() {
    let fixture = fixture();
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let decoded = gpt2().decode(&ids(&case["gpt2"])).unwrap();
        assert_eq!(decoded, case["gpt2_decoded"].as_str().unwrap());
        assert_eq!(decoded, text);
    }
    for case in fixture["gpt2_decode"].as_array().unwrap() {
        let expected = case["text"].as_str().unwrap();
        assert_eq!(
            gpt2().decode(&ids(&case["ids"])).unwrap(),
            expected,
            "{:?}",
            case["ids"]
        );
    }
}

#[test]
fn streaming_decode_equals_whole_decode() {
    let fixture = fixture();
    let cases = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["gpt2"]));
    let extra = fixture["gpt2_decode"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["ids"]));
    for ids in cases.chain(extra) {
        assert_eq!(
            stream_decode(gpt2(), &ids),
            gpt2().decode(&ids).unwrap(),
            "{ids:?}"
        );
    }
}

#[test]
fn streaming_holds_back_a_character_split_across_tokens() {
    let ids = gpt2().encode("😀");
    assert!(
        ids.len() > 1,
        "😀 should take several byte tokens, got {ids:?}"
    );
    let mut decoder = tokenizer::StreamDecoder::new(gpt2());
    let pieces: Vec<String> = ids.iter().map(|&id| decoder.push(id).unwrap()).collect();
    assert!(
        pieces[..ids.len() - 1].iter().all(String::is_empty),
        "{pieces:?}"
    );
    assert_eq!(pieces.last().unwrap(), "😀");
}

#[test]
fn end_of_text_is_bos_and_eos_and_is_not_parsed_in_text() {
    assert_eq!(gpt2().vocab_size(), 50257);
    assert_eq!(gpt2().eos(), Some(50256));
    assert_eq!(gpt2().bos(), Some(50256));
    assert_eq!(gpt2().token_id("<|endoftext|>"), Some(50256));
    assert!(!gpt2().encode("<|endoftext|>").contains(&50256));
}

#[test]
fn decode_rejects_an_out_of_range_id() {
    let err = gpt2().decode(&[50257]).unwrap_err();
    assert!(err.to_string().contains("50257"), "{err}");
}

#[test]
fn tokenizer_json_loads_the_same_model() {
    let vocab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("gpt2-vocab.json")).unwrap()).unwrap();
    let merges: Vec<serde_json::Value> = std::fs::read_to_string(data("gpt2-merges.txt"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            let (a, b) = l.split_once(' ').unwrap();
            if i % 2 == 0 {
                serde_json::json!(l)
            } else {
                serde_json::json!([a, b])
            }
        })
        .collect();
    let json = serde_json::json!({
        "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "special": true}],
        "model": {"type": "BPE", "vocab": vocab, "merges": merges},
    });
    let path = std::env::temp_dir().join(format!("gpt2-tokenizer-{}.json", std::process::id()));
    std::fs::write(&path, json.to_string()).unwrap();
    let from_json = Gpt2Tokenizer::from_tokenizer_json(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let fixture = fixture();
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(from_json.encode(text), ids(&case["gpt2"]), "text {text:?}");
    }
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
    let ids = gpt2().encode(&text);
    let elapsed = start.elapsed();
    println!("{} bytes -> {} ids in {elapsed:?}", text.len(), ids.len());
    assert!(elapsed.as_secs_f64() < 0.5, "took {elapsed:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_inverts_encode_on_arbitrary_unicode(text in any::<String>()) {
        let ids = gpt2().encode(&text);
        prop_assert_eq!(gpt2().decode(&ids).unwrap(), text.clone());
        prop_assert_eq!(stream_decode(gpt2(), &ids), text);
    }

    /// Byte tokens (ids below 256 and the multi-byte-fragment tokens) split characters.
    #[test]
    fn streaming_decode_equals_whole_decode_on_arbitrary_ids(
        ids in prop::collection::vec(prop_oneof![3 => 0u32..256, 1 => 0u32..50257], 0..24)
    ) {
        prop_assert_eq!(stream_decode(gpt2(), &ids), gpt2().decode(&ids).unwrap());
    }
}
