//! The writing side: primitives, top-level values, struct values and the definitions of
//! the protocol's user types, each byte for byte as Go's encoder writes it.

use super::{BYTES, INT, STRING, UINT, WT_MAP, WT_SLICE, WT_STRUCT};

/// Number of bytes `put_uint` writes for `v`.
pub fn uint_len(v: u64) -> usize {
    if v < 0x80 { 1 } else { 1 + (8 - v.leading_zeros() as usize / 8) }
}

/// Appends an unsigned integer in gob's minimal encoding.
pub fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        let n = 8 - v.leading_zeros() as usize / 8;
        out.push((256 - n) as u8);
        out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
    }
}

/// Maps a signed integer onto gob's unsigned form.
pub fn int_to_uint(i: i64) -> u64 {
    if i < 0 { ((!i as u64) << 1) | 1 } else { (i as u64) << 1 }
}

/// Appends a signed integer.
pub fn put_int(out: &mut Vec<u8>, i: i64) {
    put_uint(out, int_to_uint(i));
}

/// Appends a bool.
pub fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(b as u8);
}

/// Appends a string or byte slice: length, then the bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends one message whose body `body` writes, prefixed by the body's length.
pub fn put_message(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    // Write the body after room for the longest prefix, then slide it down once.
    const MAX_PREFIX: usize = 9;
    let start = out.len();
    out.resize(start + MAX_PREFIX, 0);
    body(out);
    let len = (out.len() - start - MAX_PREFIX) as u64;
    let mut prefix = Vec::with_capacity(MAX_PREFIX);
    put_uint(&mut prefix, len);
    let n = prefix.len();
    out[start..start + n].copy_from_slice(&prefix);
    out.copy_within(start + MAX_PREFIX.., start + n);
    out.truncate(out.len() - (MAX_PREFIX - n));
}

/// Appends a top-level value of a built-in scalar kind whose encoding is `n` bytes
/// produced by `value`; the length is computed up front so nothing moves.
fn put_top_scalar(out: &mut Vec<u8>, type_id: i64, encoded_len: usize, value: impl FnOnce(&mut Vec<u8>)) {
    // body = type id (1 byte for built-ins) + 00 marker + value
    put_uint(out, (2 + encoded_len) as u64);
    put_int(out, type_id);
    out.push(0);
    value(out);
}

/// Appends a top-level `uint` message.
pub fn put_top_uint(out: &mut Vec<u8>, v: u64) {
    put_top_scalar(out, UINT, uint_len(v), |o| put_uint(o, v));
}

/// Appends a top-level `int` message.
pub fn put_top_int(out: &mut Vec<u8>, v: i64) {
    let u = int_to_uint(v);
    put_top_scalar(out, INT, uint_len(u), |o| put_uint(o, u));
}

/// Appends a top-level `string` message.
pub fn put_top_string(out: &mut Vec<u8>, s: &[u8]) {
    put_top_scalar(out, STRING, uint_len(s.len() as u64) + s.len(), |o| put_bytes(o, s));
}

/// Appends a top-level `[]byte` message.
pub fn put_top_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_top_scalar(out, BYTES, uint_len(b.len() as u64) + b.len(), |o| put_bytes(o, b));
}

/// Appends a top-level `[]byte` message of exactly `len` bytes that `write` appends in
/// place, so a large payload is not built elsewhere and copied. Returns false (and
/// leaves `out` as it was) if `write` appended a different number of bytes.
pub fn put_top_bytes_with(out: &mut Vec<u8>, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> bool {
    let start = out.len();
    let mut body_at = 0;
    put_top_scalar(out, BYTES, uint_len(len as u64) + len, |o| {
        put_uint(o, len as u64);
        body_at = o.len();
        write(o);
    });
    if out.len() - body_at != len {
        out.truncate(start);
        return false;
    }
    true
}

/// Writes the fields of a struct value in increasing order, omitting zero values.
pub struct StructWriter<'o> {
    out: &'o mut Vec<u8>,
    last: i64,
}

impl<'o> StructWriter<'o> {
    /// Starts a struct encoding at the end of `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        StructWriter { out, last: -1 }
    }

    fn delta(&mut self, field: i64) {
        debug_assert!(field > self.last, "struct fields must be written in order");
        put_uint(self.out, (field - self.last) as u64);
        self.last = field;
    }

    /// Field `field` as a uint; omitted when zero.
    pub fn uint(&mut self, field: i64, v: u64) -> &mut Self {
        if v != 0 {
            self.delta(field);
            put_uint(self.out, v);
        }
        self
    }

    /// Field `field` as an int; omitted when zero.
    pub fn int(&mut self, field: i64, v: i64) -> &mut Self {
        if v != 0 {
            self.delta(field);
            put_int(self.out, v);
        }
        self
    }

    /// Field `field` as a bool; omitted when false.
    pub fn bool(&mut self, field: i64, v: bool) -> &mut Self {
        if v {
            self.delta(field);
            put_bool(self.out, v);
        }
        self
    }

    /// Field `field` as a string or byte slice; omitted when empty.
    pub fn bytes(&mut self, field: i64, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            self.delta(field);
            put_bytes(self.out, v);
        }
        self
    }

    /// Field `field` as a nested struct written by `body` (never omitted: the protocol's
    /// nested structs live in type definitions and are never empty).
    pub fn nested(&mut self, field: i64, body: impl FnOnce(&mut StructWriter<'_>)) -> &mut Self {
        self.delta(field);
        let mut inner = StructWriter::new(self.out);
        body(&mut inner);
        inner.end();
        self
    }

    /// Field `field` as a slice of nested structs; omitted when empty.
    pub fn struct_slice<T>(
        &mut self,
        field: i64,
        items: &[T],
        mut each: impl FnMut(&mut StructWriter<'_>, &T),
    ) -> &mut Self {
        if !items.is_empty() {
            self.delta(field);
            put_uint(self.out, items.len() as u64);
            for item in items {
                let mut inner = StructWriter::new(self.out);
                each(&mut inner, item);
                inner.end();
            }
        }
        self
    }

    /// Ends the struct.
    pub fn end(&mut self) {
        self.out.push(0);
    }
}

/// The `CommonType` every definition starts with: the type's name (empty for unnamed
/// map and slice types, as in Go) and its id.
fn common_type(w: &mut StructWriter<'_>, name: &[u8], id: i64) {
    w.bytes(0, name).int(1, id);
}

/// Appends the definition message of a map type.
pub fn put_map_definition(out: &mut Vec<u8>, id: i64, key: i64, elem: i64) {
    put_message(out, |o| {
        put_int(o, -id);
        StructWriter::new(o)
            .nested(WT_MAP as i64, |m| {
                m.nested(0, |c| common_type(c, b"", id)).int(1, key).int(2, elem);
            })
            .end();
    });
}

/// Appends the definition message of a slice type.
pub fn put_slice_definition(out: &mut Vec<u8>, id: i64, elem: i64) {
    put_message(out, |o| {
        put_int(o, -id);
        StructWriter::new(o)
            .nested(WT_SLICE as i64, |s| {
                s.nested(0, |c| common_type(c, b"", id)).int(1, elem);
            })
            .end();
    });
}

/// Appends the definition message of a struct type named `name` with `fields`
/// (field name, field type id) in declaration order.
pub fn put_struct_definition(out: &mut Vec<u8>, id: i64, name: &str, fields: &[(&str, i64)]) {
    put_message(out, |o| {
        put_int(o, -id);
        StructWriter::new(o)
            .nested(WT_STRUCT as i64, |s| {
                s.nested(0, |c| common_type(c, name.as_bytes(), id)).struct_slice(
                    1,
                    fields,
                    |f, (fname, fid)| {
                        f.bytes(0, fname.as_bytes()).int(1, *fid);
                    },
                );
            })
            .end();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::gob::Reader;

    fn enc_uint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_uint(&mut out, v);
        out
    }

    #[test]
    fn uint_encoding_boundaries() {
        assert_eq!(enc_uint(0), [0x00]);
        assert_eq!(enc_uint(127), [0x7f]);
        assert_eq!(enc_uint(128), [0xff, 0x80]);
        assert_eq!(enc_uint(256), [0xfe, 0x01, 0x00]);
        assert_eq!(enc_uint(u64::MAX), [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        for v in [0, 1, 127, 128, 255, 256, 65535, 1 << 40, u64::MAX] {
            assert_eq!(uint_len(v), enc_uint(v).len());
            assert_eq!(Reader::new(&enc_uint(v)).uint().unwrap(), v);
        }
    }

    #[test]
    fn put_message_prefixes_long_bodies() {
        let mut out = vec![0xaa];
        put_message(&mut out, |o| o.extend(std::iter::repeat_n(7u8, 300)));
        assert_eq!(&out[..4], &[0xaa, 0xfe, 0x01, 0x2c]);
        assert_eq!(out.len(), 4 + 300);
    }

    #[test]
    fn map_definition_matches_go() {
        let mut out = Vec::new();
        put_map_definition(&mut out, 65, STRING, STRING);
        assert_eq!(hex::encode(out), "0eff81040102ff8200010c010c0000");
    }
}
