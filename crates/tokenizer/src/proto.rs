//! A minimal protobuf reader for SentencePiece's `ModelProto` (`tokenizer.model`).
//!
//! Only the fields the encoder needs are decoded; every other field is skipped by wire type.
//! Field numbers follow `sentencepiece_model.proto`.

use crate::sentencepiece::{ModelSpec, Piece, PieceType};

/// A protobuf wire-format cursor over one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A decoded field value.
enum Value<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Fixed64,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len());
        let end =
            end.ok_or_else(|| format!("field of {len} bytes runs past the end of the data"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next (field number, value), or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(format!("unsupported wire type {w} at byte {}", self.pos)),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn text(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

/// Parses a serialized `ModelProto`.
pub(crate) fn parse_model(data: &[u8]) -> Result<ModelSpec, String> {
    let mut spec = ModelSpec::default();
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => spec.pieces.push(parse_piece(b)?),
            (2, Value::Bytes(b)) => parse_trainer(b, &mut spec)?,
            (3, Value::Bytes(b)) => parse_normalizer(b, &mut spec)?,
            (1..=3, _) => return Err(format!("ModelProto field {field} has the wrong wire type")),
            _ => {}
        }
    }
    if spec.pieces.is_empty() {
        return Err("not a SentencePiece model: no pieces found".into());
    }
    Ok(spec)
}

fn parse_piece(data: &[u8]) -> Result<Piece, String> {
    let mut piece = Piece {
        text: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => piece.text = text(b, "piece")?,
            (2, Value::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Value::Varint(v)) => {
                piece.kind = PieceType::from_proto(v).ok_or(format!("unknown piece type {v}"))?
            }
            _ => {}
        }
    }
    Ok(piece)
}

fn as_id(v: u64) -> Option<u32> {
    u32::try_from(v as i32).ok()
}

fn parse_trainer(data: &[u8], spec: &mut ModelSpec) -> Result<(), String> {
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (3, Value::Varint(v)) => spec.model_type = v,
            (24, Value::Varint(v)) => spec.whitespace_as_suffix = v != 0,
            (35, Value::Varint(v)) => spec.byte_fallback = v != 0,
            (40, Value::Varint(v)) => spec.unk_id = as_id(v),
            (41, Value::Varint(v)) => spec.bos_id = as_id(v),
            (42, Value::Varint(v)) => spec.eos_id = as_id(v),
            (44, Value::Bytes(b)) => spec.unk_surface = text(b, "unk_surface")?,
            _ => {}
        }
    }
    Ok(())
}

fn parse_normalizer(data: &[u8], spec: &mut ModelSpec) -> Result<(), String> {
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => spec.normalizer = text(b, "normalizer name")?,
            (2, Value::Bytes(b)) => spec.has_charsmap = !b.is_empty(),
            (3, Value::Varint(v)) => spec.add_dummy_prefix = v != 0,
            (4, Value::Varint(v)) => spec.remove_extra_whitespaces = v != 0,
            (5, Value::Varint(v)) => spec.escape_whitespaces = v != 0,
            _ => {}
        }
    }
    Ok(())
}
