//! The built-in corpus generator and the byte tokenizer.

use std::collections::HashSet;
use std::time::Instant;

use train::{builtin_corpus, ByteTokenizer, STORY_SEPARATOR};

#[test]
fn same_seed_gives_same_corpus_and_other_seed_differs() {
    let a = builtin_corpus(50_000, 1);
    assert_eq!(a, builtin_corpus(50_000, 1));
    assert_ne!(a, builtin_corpus(50_000, 2));
}

#[test]
fn corpus_reaches_requested_size_with_whole_stories() {
    for bytes in [1, 1000, 123_456] {
        let text = builtin_corpus(bytes, 9);
        assert!(text.len() >= bytes, "{} < {bytes}", text.len());
        assert!(
            text.len() < bytes + 2000,
            "overshoot {}",
            text.len() - bytes
        );
        assert!(!text.ends_with('\n'), "ends mid-separator");
        assert!(
            text.ends_with('.'),
            "last story is cut: {:?}",
            &text[text.len() - 40..]
        );
    }
}

#[test]
fn stories_are_single_lines_of_plain_sentences() {
    let text = builtin_corpus(200_000, 3);
    let stories: Vec<&str> = text.split(STORY_SEPARATOR).collect();
    assert!(stories.len() > 100, "{} stories", stories.len());
    for s in &stories {
        assert!(
            !s.is_empty() && !s.contains('\n'),
            "story spans lines: {s:?}"
        );
        assert!(
            !s.contains('{') && !s.contains('}'),
            "unfilled placeholder: {s:?}"
        );
        assert!(!s.contains("  "), "double space: {s:?}");
        assert!(s.is_ascii());
        let first = s.chars().next().unwrap_or(' ');
        assert!(first.is_ascii_uppercase(), "story starts lowercase: {s:?}");
        assert!(
            (300..1600).contains(&s.len()),
            "odd story length {}: {s:?}",
            s.len()
        );
    }
}

#[test]
fn vocabulary_is_a_few_hundred_words_and_stories_vary() {
    let text = builtin_corpus(2_000_000, 5);
    let words: HashSet<String> = text
        .split(|c: char| !c.is_ascii_alphabetic() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect();
    assert!(
        (250..800).contains(&words.len()),
        "vocabulary of {} words",
        words.len()
    );
    let stories: Vec<&str> = text.split(STORY_SEPARATOR).collect();
    let distinct: HashSet<&str> = stories.iter().copied().collect();
    assert!(
        distinct.len() * 100 >= stories.len() * 99,
        "{} of {} stories are distinct",
        distinct.len(),
        stories.len()
    );
}

#[test]
fn four_megabytes_generate_in_well_under_a_second() {
    let t = Instant::now();
    let text = builtin_corpus(4 << 20, 11);
    let secs = t.elapsed().as_secs_f64();
    assert!(text.len() >= 4 << 20);
    // Unoptimized test builds are slower than release; release is several times faster still.
    assert!(secs < 2.0, "{secs:.2}s for 4 MB");
}

#[test]
fn byte_tokenizer_round_trips_text_and_marks_story_ends() {
    let tok = ByteTokenizer;
    let text = "Tom ran. Née!";
    let ids = tok.encode(text);
    assert_eq!(ids.len(), text.len());
    assert!(ids.iter().all(|&i| i < 256));
    assert_eq!(tok.decode(&ids), text);

    let corpus = "One story.\n\nTwo story.";
    let ids = tok.encode_corpus(corpus);
    let eots: Vec<usize> = ids
        .iter()
        .enumerate()
        .filter(|(_, &i)| i == ByteTokenizer::END_OF_TEXT)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(eots, [10, 21]);
    assert_eq!(tok.decode(&ids), "One story.\n\nTwo story.\n\n");
    assert_eq!(
        tok.decode(&[72, 260, 105]),
        "Hi",
        "reserved ids are dropped"
    );
    assert_eq!(ByteTokenizer::VOCAB_SIZE % 8, 0);
    assert!(ByteTokenizer::VOCAB_SIZE > ByteTokenizer::END_OF_TEXT as usize);
}

#[test]
fn sample_story_prints_and_introduces_a_named_character() {
    let text = builtin_corpus(3000, 42);
    println!("{text}");
    assert!(text.contains("named"));
}
