//! Parse errors: each error class reports the right line:col and names what was expected;
//! a bounded fuzz shows the parser never panics.

use mil::parse::parse_program;
use mil::Error;
use proptest::prelude::*;

const SPEC_EXAMPLE: &str = include_str!("data/spec_example.mil");

/// A program whose function body is the single line `op_line`, which sits on line 4 at column 9.
fn with_op(op_line: &str) -> String {
    format!(
        "program(1.3)\n{{\n    func main<ios18>(tensor<fp16, [1, 4]> a) {{\n        {op_line}\n    }} -> (a);\n}}\n"
    )
}

/// Column of the first `needle` in `op_line` once placed by [`with_op`].
fn col_in_op(op_line: &str, needle: &str) -> u32 {
    9 + op_line.find(needle).expect("needle in op line") as u32
}

fn parse_error(text: &str) -> (u32, u32, String) {
    match parse_program(text) {
        Err(Error::Parse { line, col, message }) => (line, col, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// Asserts that `op_line` fails at `needle` (on line 4) with a message containing `want`.
fn assert_op_error(op_line: &str, needle: &str, want: &str) {
    let (line, col, message) = parse_error(&with_op(op_line));
    assert_eq!(
        (line, col),
        (4, col_in_op(op_line, needle)),
        "position for {op_line:?}: {message}"
    );
    assert!(message.contains(want), "{message:?} lacks {want:?}");
}

#[test]
fn missing_close_paren_after_operands_names_both_tokens() {
    let line = "tensor<fp16, [1, 4]> y = relu(x = a;";
    assert_op_error(line, ";", "expected ')' after operands, found ';'");
}

#[test]
fn missing_semicolon_after_operation_is_reported_at_the_next_token() {
    let line = "tensor<fp16, [1, 4]> y = relu(x = a)[name = string(\"y\")] }";
    assert_op_error(line, "}", "expected ';' after operation, found '}'");
}

#[test]
fn unknown_dtype_names_the_identifier() {
    let line = "tensor<fp17, [1, 4]> y = relu(x = a);";
    assert_op_error(
        line,
        "fp17",
        "expected dtype such as fp16 or int32, found identifier 'fp17'",
    );
}

#[test]
fn too_few_inline_elements_point_at_the_list() {
    let line = "tensor<int32, [3]> c = const()[val = tensor<int32, [3]>([1, 2])];";
    assert_op_error(line, "[1, 2]", "expects 3 elements, found 2");
}

#[test]
fn too_many_inline_elements_point_at_the_first_extra_one() {
    let line = "tensor<int32, [2]> c = const()[val = tensor<int32, [2]>([1, 2, 3])];";
    assert_op_error(line, "3]", "expected ']' after 2 elements");
}

#[test]
fn ragged_nested_list_is_rejected() {
    let line = "tensor<int32, [2, 2]> c = const()[val = tensor<int32, [2, 2]>([[1, 2], [3]])];";
    assert_op_error(line, "[3]", "nested list expects 2 entries, found 1");
}

#[test]
fn integer_out_of_range_names_the_dtype() {
    let line = "int32 c = const()[val = int32(2147483648)];";
    assert_op_error(line, "2147483648", "out of range for int32");
    let line = "uint8 c = const()[val = uint8(-1)];";
    assert_op_error(line, "-1", "out of range for uint8");
    let line = "uint64 c = const()[val = uint64(99999999999999999999999999999999999999999)];";
    assert_op_error(line, "999", "expected uint64 integer, out of range");
}

#[test]
fn overflowing_shapes_are_errors_not_panics() {
    let line = "tensor<fp16, [99999999999999999999999]> y = relu(x = a);";
    assert_op_error(line, "999", "expected dimension (a non-negative integer)");
    let line = "tensor<fp16, [4294967296, 4294967296, 16]> y = relu(x = a);";
    assert_op_error(line, "tensor", "tensor element count overflows");
}

#[test]
fn float_expected_but_other_token_found() {
    let line = "fp16 c = const()[val = fp16(true)];";
    assert_op_error(
        line,
        "true",
        "expected fp16 number, found identifier 'true'",
    );
    let line = "fp32 c = const()[val = fp32(1.5.2)];";
    assert_op_error(line, "1.5", "expected fp32 number, found number '1.5.2'");
    let line = "bool c = const()[val = bool(1)];";
    assert_op_error(line, "1)", "expected 'true' or 'false', found number '1'");
}

#[test]
fn scalar_value_for_a_ranked_tensor_literal_asks_for_a_list() {
    let line = "tensor<fp16, [2]> c = const()[val = tensor<fp16, [2]>(1.0)];";
    assert_op_error(
        line,
        "1.0",
        "expected '[' list or BLOBFILE for a tensor literal of rank 1",
    );
}

#[test]
fn blobfile_without_offset_is_rejected() {
    let line =
        "tensor<fp16, [2]> c = const()[val = tensor<fp16, [2]>(BLOBFILE(path = string(\"w\")))];";
    assert_op_error(line, "BLOBFILE", "BLOBFILE needs both path and offset");
}

#[test]
fn bad_string_escape_and_unterminated_string() {
    let line = "string c = const()[val = string(\"a\\qb\")];";
    assert_op_error(line, "\"a", "unknown escape '\\q'");
    let line = "string c = const()[val = string(\"abc";
    assert_op_error(line, "\"abc", "unterminated string literal");
}

#[test]
fn stray_character_is_named() {
    let line = "tensor<fp16, [1, 4]> y = relu(x = @a);";
    assert_op_error(line, "@", "unexpected character '@'");
}

#[test]
fn missing_arrow_after_function_body() {
    let text = "program(1.3)\n{\n    func main<ios18>() {\n    } (y);\n}\n";
    assert_eq!(
        parse_error(text),
        (
            4,
            7,
            "expected '->' after function body, found '('".to_string()
        )
    );
}

#[test]
fn truncated_input_reports_end_of_input() {
    let cut = &SPEC_EXAMPLE[..SPEC_EXAMPLE.find("conv(").unwrap() + 5];
    let (line, col, message) = parse_error(cut);
    let last_line = cut.lines().last().unwrap();
    assert_eq!((line, col), (11, last_line.len() as u32 + 1));
    assert!(message.contains("found end of input"), "{message}");
}

#[test]
fn trailing_text_after_the_program_is_rejected() {
    let text = format!("{SPEC_EXAMPLE}extra");
    assert_eq!(
        parse_error(&text),
        (
            14,
            1,
            "expected end of input after the program, found identifier 'extra'".to_string()
        )
    );
}

#[test]
fn deeply_nested_tuples_are_an_error_not_a_stack_overflow() {
    let line = format!(
        "tensor<fp16, [1, 4]> y = concat(values = {}a);",
        "(".repeat(100_000)
    );
    let (line_no, _, message) = parse_error(&with_op(&line));
    assert_eq!(line_no, 4);
    assert!(
        message.contains("tuples nested deeper than 64"),
        "{message}"
    );
}

#[test]
fn error_display_is_line_colon_col_then_message() {
    let err = parse_program("program(1.3) x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "1:14: expected '{' to open the program body, found identifier 'x'"
    );
}

/// Token-ish fragments that are likely to push the parser into unusual states.
const FRAGMENTS: [&str; 16] = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "<",
    ">",
    ",",
    "=",
    ";",
    "\"",
    "tensor<fp16, [2]>(",
    "0x1p",
    "-",
    "BLOBFILE(",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(Error::Parse { line, col, .. }) = parse_program(&text) {
            prop_assert!(line >= 1 && col >= 1);
        }
    }

    #[test]
    fn mutated_programs_never_panic(
        edits in proptest::collection::vec((any::<usize>(), 0..4u8, any::<u8>()), 1..8)
    ) {
        let mut bytes = SPEC_EXAMPLE.as_bytes().to_vec();
        for (at, kind, b) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => { bytes.remove(at); }
                1 => bytes.insert(at, b),
                2 if at < bytes.len() => bytes[at] = b,
                _ => {
                    let frag = FRAGMENTS[usize::from(b) % FRAGMENTS.len()].as_bytes();
                    bytes.splice(at..at, frag.iter().copied());
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let lines = text.lines().count() as u32 + 1;
        if let Err(Error::Parse { line, col, .. }) = parse_program(&text) {
            prop_assert!(line >= 1 && line <= lines && col >= 1, "{}:{}", line, col);
        }
    }
}
